import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { createLogger } from '../log.js';
import { DeviceKey } from '../security/device-key.js';
import { INBOX_DIR } from './chain.js';
import { auditKeyFile } from './index.js';
import type { SecurityAlertType } from './messages.js';
import { AuditTrail } from './trail.js';
import { describe, verifyTrail, type VerifyReport } from './verify.js';

/** Exit code of `audit verify` when the trail is not intact. */
export const EXIT_NOT_INTACT = 3;

/**
 * `pacs-edge audit verify --config FILE [--json]`: check the chain, print the result, then
 * record the reading (110101 Audit Log Used) — directly when no gateway holds the trail, or
 * through the running gateway's inbox. Exit 0 intact, 3 not intact, 1 cannot check (no key,
 * unreadable directory), 2 usage.
 */
export async function auditCommand(config: GatewayConfig, args: string[]): Promise<number> {
  const action = args.find((a) => !a.startsWith('-') && a !== args[args.indexOf('--config') + 1]);
  if (action !== 'verify') {
    console.error(`pacs-edge audit: unknown or missing action${action ? ` "${action}"` : ''} (usage: pacs-edge audit verify --config FILE [--json])`);
    return 2;
  }
  const json = args.includes('--json');
  const dir = config.audit.dir;
  const keyFile = auditKeyFile(config);
  let key: DeviceKey;
  try {
    key = DeviceKey.load(keyFile);
  } catch (err) {
    console.error(`pacs-edge audit verify: cannot read the device key ${keyFile}: ${(err as Error).message}`);
    return 1;
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
  | { kind: 'security-alert'; type: SecurityAlertType; detail: string; failure: boolean };

/**
 * Record what a command did (read the log, export the keys in a backup): straight into the
 * trail when no gateway holds it, else through the running gateway's inbox.
 */
export async function recordOffline(config: GatewayConfig, key: DeviceKey, event: OfflineEvent): Promise<string> {
  // stderr: stdout carries the report (--json).
  const log = createLogger({ level: 'warn', deviceId: config.device.id, destination: pino.destination({ dest: 2, sync: true }) });
  let trail: AuditTrail;
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
    if ((err as { code?: string }).code !== 'AUDIT_LOCKED') return `not recorded: ${(err as Error).message}`;
    const inbox = path.join(config.audit.dir, INBOX_DIR);
    await mkdir(inbox, { recursive: true });
    const name = `${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(path.join(inbox, `${name}.tmp`), JSON.stringify(event));
    await rename(path.join(inbox, `${name}.tmp`), path.join(inbox, `${name}.json`));
    return 'handed to the running gateway';
  }
  const seq = trail.record(event.kind === 'audit-log-read' ? { kind: 'audit-log-read', by: event.by, logUri: trail.uri, outcome: event.outcome } : event);
  await trail.stop();
  return seq === undefined ? 'not recorded (see the log)' : `seq ${seq}`;
}
