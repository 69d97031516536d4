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
import { checkDeviceKeyFits } from '../spool/key-check.js';
import { INBOX_DIR } from '../audit/chain.js';
import { auditKeyFile } from '../audit/index.js';
import type { SecurityAlertType } from '../audit/messages.js';
import { AuditTrail } from '../audit/trail.js';
import { describe, verifyTrail, type VerifyReport } from '../audit/verify.js';

/** Exit code of `audit verify` when the trail is not intact. */
export const EXIT_NOT_INTACT = 3;

/**
 * `pacs-edge audit verify --config FILE [--json]`: check the chain, print the result, then
 * record the reading (110101 Audit Log Used) — directly when no gateway holds the trail, or
 * through the running gateway's inbox. Exit 0 intact, 3 not intact, 1 cannot check (no key,
 * unreadable directory), 2 usage.
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
    key = DeviceKey.load(keyFile);
  } catch (err) {
    const denied = (err as { code?: string }).code === 'EACCES' || (err as { cause?: { code?: string } }).cause?.code === 'EACCES';
    console.error(`pacs-edge audit verify: cannot read the device key ${keyFile}: ${(err as Error).message}${denied ? ' (the gateway is stopped: checking its files directly is for root or the state owner; an auditor verifies through the running gateway)' : ''}`);
    return denied ? EXIT.roleDenied : 1;
  }
  let report: VerifyReport;
  try {
    report = await verifyTrail(dir, key.derive('audit-chain'));
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
  return report.ok ? 0 : EXIT_NOT_INTACT;
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
  return recordOffline(config, key, { kind: 'audit-log-read', by, ...(outcome ? { outcome } : {}) });
}

/** An event recorded by a command (not the gateway): `audit-log-read`, or a `security-alert`. */
export type OfflineEvent =
  | { kind: 'audit-log-read'; by: string; outcome?: string }
  | { kind: 'security-alert'; type: SecurityAlertType; detail: string; failure: boolean }
  | { kind: 'purged' | 'instances-requeued'; by: string; studyUid: string; count: number; reason: string };

/**
 * Record what a command did (read the log, export the keys in a backup): straight into the
 * trail when no gateway holds it, else through the running gateway's inbox.
 */
export async function recordOffline(config: GatewayConfig, key: DeviceKey, event: OfflineEvent | readonly OfflineEvent[]): Promise<string> {
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
      });
    } catch (err) {
      if ((err as { code?: string }).code !== Code.AUDIT_LOCKED) return `not recorded: ${(err as Error).message}`;
      if (waited < 3000 && !(await gatewayAnswers(config))) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const inbox = path.join(config.audit.dir, INBOX_DIR);
      await mkdir(inbox, { recursive: true });
      for (const e of events) {
        const name = `${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`;
        await writeDurable(path.join(inbox, `${name}.json`), JSON.stringify(e), { tmp: path.join(inbox, `${name}.tmp`) });
      }
      return 'handed to the running gateway';
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

/** True when a gateway answers on the control socket (it holds the trail for as long as it runs). */
async function gatewayAnswers(config: GatewayConfig): Promise<boolean> {
  return controlAnswers(config.control.socket);
}
