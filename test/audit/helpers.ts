import path from 'node:path';
import { Writable } from 'node:stream';
import { AuditTrail, type AuditAlarm, type AuditTrailOptions } from '../../src/audit/trail.js';
import { createLogger } from '../../src/log.js';
import { DeviceKey } from '../../src/security/device-key.js';

export const SOURCE = { deviceId: 'edge-test', aeTitle: 'PACS_EDGE', host: '127.0.0.1', pid: 1234 };

/** A logger whose lines are kept in memory. */
export function memoryLogger(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', deviceId: 'edge-test', destination: dest }), lines };
}

/** Open a trail in `<base>/audit` with the key in `<base>/keys/device.key`, collecting alarms. */
export async function openTrail(base: string, over: Partial<AuditTrailOptions> = {}) {
  const key = DeviceKey.loadOrCreate(path.join(base, 'keys', 'device.key'));
  const alarms: AuditAlarm[] = [];
  const { log, lines } = memoryLogger();
  const trail = await AuditTrail.open({
    dir: path.join(base, 'audit'),
    retentionDays: 180,
    maxBytes: 1024 ** 3,
    key,
    log,
    source: SOURCE,
    onAlarm: (a) => alarms.push(a),
    ...over,
  });
  return { trail, key, chainKey: key.derive('audit-chain'), alarms, logs: lines, dir: path.join(base, 'audit') };
}

export const start = { kind: 'application-start' } as const;
export const received = (n: number) =>
  ({ kind: 'instances-received', callingAe: 'CT01', address: '127.0.0.1', studyUid: `1.2.3.${n}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', count: n }) as const;
