import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Code } from '../errors.js';
import type { GatewayConfig } from '../config/types.js';
import { actAsStateOwner } from '../security/state-owner.js';
import { controlAnswers, controlRequest } from '../health/control-server.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { createLogger } from '../log.js';
import { writeDurable } from '../util/durable-write.js';
import { DeviceKey } from '../security/device-key.js';
import { deviceKeyFor } from '../security/spool-key.js';
import { patientPseudonym, PATIENT_PSEUDONYM_PURPOSE } from '../security/patient-pseudonym.js';
import { checkDeviceKeyFits } from '../spool/key-check.js';
import { ANCHOR_PURPOSE, anchorFileOf } from '../audit/anchor.js';
import { INBOX_DIR } from '../audit/chain.js';
import { auditKeyFile } from '../audit/index.js';
import type { SecurityAlertType } from '../audit/messages.js';
import { AuditTrail } from '../audit/trail.js';
import { describe, verifyTrail, type VerifyReport } from '../audit/verify.js';

/** Exit code of `audit verify` when the trail is not intact. */
export const EXIT_NOT_INTACT = EXIT.auditNotIntact;

/**
 * `pacs-edge audit verify --config FILE [--json]`: check the chain and its anchor, print the
 * result, then record the reading (110101 Audit Log Used) through the inbox: the running gateway
 * records it within a second, a stopped one at its next start. Verify never writes the trail
 * itself: opening it would repair what it should report (a missing head rebuilt, a torn line
 * cut). Exit 0 intact, 3 not intact, 1 cannot check (no key, unreadable directory), 2 usage.
 */
export async function auditCommand(config: GatewayConfig, json: boolean): Promise<number> {
  // A running gateway checks its own trail for the administrator or an auditor (the key stays
  // with it) and records the reading with the proven account; an operator is refused there.
  let remote: (VerifyReport & { text: string; recorded: string }) | undefined;
  try {
    remote = (await controlRequest(config.control.socket, 'POST', '/audit/verify', {})) as typeof remote;
  } catch (err) {
    console.error(`pacs-edge audit verify: ${(err as Error).message}`);
    return exitCodeFor(err);
  }
  if (remote) {
    if (json) console.log(JSON.stringify(remote));
    else console.log(`${remote.text}\nreading recorded: ${remote.recorded}`);
    return remote.ok ? 0 : EXIT_NOT_INTACT;
  }
  // Stopped: the trail and the key are files only root and the state owner may read. The reading
  // is appended to the trail: as the trail's owner, even under sudo.
  actAsStateOwner(config);
  const dir = config.audit.dir;
  const keyFile = auditKeyFile(config);
  let key: DeviceKey;
  try {
    key = config.spool.encryption.keyCredential ? deviceKeyFor(config, { create: false }) : DeviceKey.load(keyFile);
  } catch (err) {
    const denied = (err as { code?: string }).code === 'EACCES' || (err as { cause?: { code?: string } }).cause?.code === 'EACCES';
    console.error(`pacs-edge audit verify: cannot read the device key ${keyFile}: ${(err as Error).message}${denied ? ' (the gateway is stopped: checking its files directly is for root or the state owner; an auditor verifies through the running gateway)' : ''}`);
    return denied ? EXIT.roleDenied : 1;
  }
  let report: VerifyReport;
  try {
    report = await verifyTrail(dir, key.derive('audit-chain'), { anchor: { file: anchorFileOf(config.spool.dir), key: key.derive(ANCHOR_PURPOSE) } });
  } catch (err) {
    console.error(`pacs-edge audit verify: cannot read ${dir}: ${(err as Error).message}`);
    return 1;
  }
  const by = `${safeUser()} (pacs-edge audit verify)`;
  const outcome = report.ok ? undefined : describe(report);
  const recorded = existsSync(dir) ? await recordRead(config, key, by, outcome) : 'nothing to record: no audit directory';
  if (json) console.log(JSON.stringify({ ...report, recorded }));
  else {
    console.log(describe(report));
    console.log(`reading recorded: ${recorded}`);
  }
  return report.ok ? EXIT.ok : EXIT.auditNotIntact;
}

export function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** Append 110101 Audit Log Used: to the trail when it is free, else via the running gateway's inbox. */
async function recordRead(config: GatewayConfig, key: DeviceKey, by: string, outcome: string | undefined): Promise<string> {
  return recordOffline(config, key, { kind: 'audit-log-read', by, ...(outcome ? { outcome } : {}) }, { readOnly: true });
}

/** An event recorded by a command (not the gateway): `audit-log-read`, or a `security-alert`. */
export type OfflineEvent =
  | { kind: 'audit-log-read'; by: string; outcome?: string }
  | { kind: 'security-alert'; type: SecurityAlertType; detail: string; failure: boolean }
  | { kind: 'purged' | 'instances-requeued'; by: string; studyUid: string; count: number; reason: string };

/**
 * Record what a command did: straight into the trail when no gateway holds it, else through the
 * running gateway's inbox. `readOnly` (verify, backup: commands that only read): always through
 * the inbox, so the trail's files are left exactly as they are; a stopped gateway records the
 * events at its next start.
 */
export async function recordOffline(config: GatewayConfig, key: DeviceKey, event: OfflineEvent | readonly OfflineEvent[], opts: { readOnly?: boolean } = {}): Promise<string> {
  const events = Array.isArray(event) ? (event as readonly OfflineEvent[]) : [event as OfflineEvent];
  if (events.length === 0) return 'nothing to record';
  // Records chained under a key the trail rejects would break it for the right key: append nothing.
  try {
    await checkDeviceKeyFits(config, key, { audit: true, spool: false });
  } catch (err) {
    return `not recorded: ${(err as Error).message}`;
  }
  // stderr: stdout carries the report (--json).
  const log = createLogger({ level: 'warn', deviceId: config.device.id, destination: pino.destination({ dest: 2, sync: true }) });
  let trail: AuditTrail | undefined;
  if (opts.readOnly) {
    await toInbox(config, events);
    return (await gatewayAnswers(config)) ? 'handed to the running gateway' : 'queued in the audit inbox: the gateway records it at its next start';
  }
  // Another command may hold the trail for a moment; a running gateway holds it for good.
  for (let waited = 0; !trail; waited += 200) {
    try {
      trail = await AuditTrail.open({
        dir: config.audit.dir,
        retentionDays: config.audit.retentionDays,
        maxBytes: config.audit.maxBytes,
        key,
        log,
        source: { deviceId: config.device.id, aeTitle: config.receive.aeTitle, host: config.receive.host, pid: process.pid },
        anchorFile: anchorFileOf(config.spool.dir),
      });
    } catch (err) {
      if ((err as { code?: string }).code !== Code.AUDIT_LOCKED) return `not recorded: ${(err as Error).message}`;
      if (waited < 3000 && !(await gatewayAnswers(config))) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      return toInbox(config, events);
    }
  }
  const seqs: number[] = [];
  for (const e of events) {
    const seq = trail.record(e.kind === 'audit-log-read' ? { kind: 'audit-log-read', by: e.by, logUri: trail.uri, outcome: e.outcome } : e);
    if (seq !== undefined) seqs.push(seq);
  }
  await trail.stop();
  return seqs.length === 0 ? 'not recorded (see the log)' : seqs.length === 1 ? `seq ${seqs[0]}` : `seq ${seqs[0]}–${seqs[seqs.length - 1]}`;
}

/** Drop events in the trail's inbox (inbox.ts): the gateway that holds, or next opens, the trail records them. */
async function toInbox(config: GatewayConfig, events: readonly OfflineEvent[]): Promise<string> {
  const inbox = path.join(config.audit.dir, INBOX_DIR);
  await mkdir(inbox, { recursive: true });
  for (const e of events) {
    const name = `${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeDurable(path.join(inbox, `${name}.json`), JSON.stringify(e), { tmp: path.join(inbox, `${name}.tmp`) });
  }
  return 'handed to the running gateway';
}

/** True when a gateway answers on the control socket (it holds the trail for as long as it runs). */
async function gatewayAnswers(config: GatewayConfig): Promise<boolean> {
  return controlAnswers(config.control.socket);
}

/**
 * `pacs-edge audit pseudonym --config FILE`: the Patient ID comes on stdin (not an argument:
 * arguments show in process lists and shell histories), the pseudonym the audit trail names that
 * patient by goes to stdout (src/security/patient-pseudonym.ts), so an auditor can search the
 * trail or the syslog collector for one patient. Needs the device key (the trail's owner or root).
 * That it was used is recorded (Security Alert, Use of Restricted Function), without the ID.
 */
export async function pseudonymCommand(config: GatewayConfig): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (chunks.reduce((n, b) => n + b.length, 0) > 4096) break;
  }
  // The first line; a Patient ID (LO) is at most 64 characters.
  const id = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!.trim();
  if (!id || id.length > 64) {
    console.error('pacs-edge audit pseudonym: give one Patient ID (1-64 characters) on stdin');
    return EXIT.usage;
  }
  let key: DeviceKey;
  try {
    key = DeviceKey.load(auditKeyFile(config));
  } catch (err) {
    console.error(`pacs-edge audit pseudonym: cannot read the device key ${auditKeyFile(config)}: ${(err as Error).message}`);
    return EXIT.failed;
  }
  console.log(patientPseudonym(key.derive(PATIENT_PSEUDONYM_PURPOSE), Buffer.from(id, 'utf8')));
  if (config.audit.patientId !== 'pseudonym') console.error(`note: audit.patientId is ${config.audit.patientId}: the trail does not name patients by this pseudonym`);
  if (existsSync(config.audit.dir)) {
    actAsStateOwner(config);
    const recorded = await recordOffline(
      config,
      key,
      { kind: 'security-alert', type: 'use-of-restricted-function', detail: `a Patient ID pseudonym was computed by ${safeUser()} (pacs-edge audit pseudonym)`, failure: false },
      { readOnly: true },
    );
    console.error(`audit: ${recorded}`);
  }
  return EXIT.ok;
}
