import { readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { type AuditEvent, SECURITY_ALERT_TYPES, type SecurityAlertType } from './messages.js';

/**
 * The audit inbox (`<audit.dir>/inbox/`): while the gateway holds the trail's lock, a command
 * (`pacs-edge audit verify`, an offline dead-letter purge) cannot append to the chain itself, so
 * it leaves its event here as a JSON file (written durably, src/cli/audit.ts) and the gateway
 * records it. Only the events a command may hand in are taken, each field checked; anything
 * else is logged and removed, so the inbox cannot be used to forge other kinds of record.
 */
export async function drainInbox(dir: string, h: { record(e: AuditEvent): unknown; logUri: string; log: Logger }): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return;
  }
  for (const n of names) {
    const full = path.join(dir, n);
    try {
      const o = JSON.parse(await readFile(full, 'utf8')) as { kind?: unknown; by?: unknown; outcome?: unknown; type?: unknown; detail?: unknown; failure?: unknown; studyUid?: unknown; count?: unknown; reason?: unknown };
      const str = (x: unknown) => (typeof x === 'string' && x.length > 0 && x.length <= 512 ? x : undefined);
      const uid = (x: unknown) => (typeof x === 'string' && /^[0-9.]{0,64}$/.test(x) ? x : undefined);
      const count = Number.isInteger(o.count) && (o.count as number) >= 0 ? (o.count as number) : undefined;
      if ((o.kind === 'purged' || o.kind === 'instances-requeued') && str(o.by) && uid(o.studyUid) !== undefined && count !== undefined && str(o.reason)) {
        // An operator's change to the queue, made by a command while the trail was held by another.
        h.record({ kind: o.kind, by: str(o.by)!, studyUid: uid(o.studyUid)!, count, reason: str(o.reason)! });
      } else if (o.kind === 'audit-log-read' && str(o.by)) {
        h.record({ kind: 'audit-log-read', by: str(o.by)!, logUri: h.logUri, outcome: str(o.outcome) });
      } else if (o.kind === 'security-alert' && typeof o.type === 'string' && o.type in SECURITY_ALERT_TYPES && str(o.detail)) {
        h.record({ kind: 'security-alert', type: o.type as SecurityAlertType, detail: str(o.detail)!, failure: o.failure === true });
      } else {
        h.log.warn({ file: n }, 'audit inbox: ignored an entry that is not an event a command may hand in');
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      h.log.warn({ file: n, err: (err as Error).message }, 'audit inbox: unreadable entry removed');
    }
    await unlink(full).catch(() => {});
  }
}
