import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { CrashpointName } from '../../src/util/crashpoint.js';
import { storescu, type StorescuResult } from './dcmtk.js';
import type { GatewayProcess } from './processes.js';

/** Where a crash test kills the gateway: an exact instant of the commit sequence, or a moment. */
export interface CrashPoint {
  name: string;
  /** PACS_EDGE_CRASHPOINT value: the gateway SIGKILLs itself there (src/util/crashpoint.ts). */
  crashpoint?: string;
  /**
   * External `kill -9` as soon as the gateway has logged this many objects stored: it lands at
   * whatever instant the gateway has reached by then, but always while the transfer is going on
   * (a kill timed in milliseconds could come after a fast transfer had ended, or before it began).
   */
  killAfterStored?: number;
}

const DESCRIBE: Record<CrashpointName, (n: number) => string> = {
  'mid-data': (n) => `mid-data of object ${n}`,
  'after-first-write': (n) => `after the first data write of object ${n} hits the file`,
  'after-data-fsync': (n) => `after the file + directory fsync of object ${n}`,
  'after-index': (n) => `after the index commit of object ${n}`,
  'before-response': (n) => `just before the C-STORE-RSP of object ${n}`,
  'after-response': (n) => `just after the C-STORE-RSP of object ${n}`,
  'rewrite-after-intent': (n) => `compression at rest of object ${n}: after its intent, before the rename`,
  'rewrite-after-rename': (n) => `compression at rest of object ${n}: after the rename, before the record update`,
  'migrate-step': (n) => `spool format migration step ${n}: after its start is recorded, before it runs`,
  'durable-written': (n) => `durable write ${n}: the temporary file written, not fsynced`,
  'durable-synced': (n) => `durable write ${n}: the temporary file fsynced, not renamed`,
  'durable-renamed': (n) => `durable write ${n}: renamed over the target, the directory not fsynced`,
  'durable-done': (n) => `durable write ${n}: complete`,
};

/** Crash points at the named instants (on the given object) and external kills once so many objects were stored. */
export function crashPoints(at: [CrashpointName, number][], killAfterStored: number[]): CrashPoint[] {
  return [...at.map(([name, n]) => ({ name: DESCRIBE[name](n), crashpoint: `${name}:${n}` })), ...killAfterStored.map(externalKill)];
}

/** An external `kill -9` once `n` objects were stored. */
export function externalKill(n: number): CrashPoint {
  return { name: `external kill -9 once ${n} objects were stored`, killAfterStored: n };
}

/** What a crash test saw of a transfer the gateway was killed in. */
export interface KilledTransfer {
  /** storescu's view: which messages got Success before the connection died. */
  sent: StorescuResult;
  /** Objects the gateway had logged as stored when the external kill was sent (crash points: at its death). */
  storedAtKill: number;
}

/**
 * Sends `files` to `gw` with storescu and kills the gateway at `point`: a crash point kills
 * itself (PACS_EDGE_CRASHPOINT, set when it was started); an external kill is sent once the
 * gateway has logged `killAfterStored` objects stored. The gateway must log at debug (its
 * `stored` lines are counted). Resolves once storescu and the gateway have both ended.
 */
export async function sendAndKill(gw: GatewayProcess, point: CrashPoint, files: string[]): Promise<KilledTransfer> {
  const stored = () => gw.logs.filter((l) => l.msg === 'stored').length;
  const sending = storescu({ port: gw.port, files, timeoutMs: 60_000 });
  let storedAtKill: number;
  if (point.killAfterStored !== undefined) {
    const n = point.killAfterStored;
    await gw.waitForLog((l) => l.msg === 'stored' && stored() >= n, 30_000);
    storedAtKill = stored();
    await gw.kill();
  } else {
    await gw.exited;
    storedAtKill = stored();
  }
  const sent = await sending;
  await gw.exited;
  return { sent, storedAtKill };
}

/**
 * The kill landed while data was in flight: objects had been acknowledged before it, and
 * storescu had not finished (fewer acknowledgements than files sent).
 */
export function expectKilledInFlight(t: KilledTransfer, total: number): void {
  expect(t.sent.acked.length, 'objects acknowledged before the kill (it landed after data had arrived)').toBeGreaterThan(0);
  expect(t.sent.acked.length, 'objects acknowledged before the kill (it landed before the transfer ended)').toBeLessThan(total);
}

/**
 * The report of a `make chaos` crash run (PACS_EDGE_CHAOS_OUT), written only when every crash
 * point passed: a report never shows a run with a failed point. Without `out` nothing is written.
 */
export function writeChaosReport(out: string | undefined, r: { title: string; description: string[]; results: string[]; points: number }): void {
  if (!out) return;
  if (r.results.length !== r.points) {
    console.error(`${out} not written: ${r.points - r.results.length} of ${r.points} crash points did not pass`);
    return;
  }
  writeFileSync(out, [r.title, '', ...r.description, '', ...r.results.map((x) => `- ${x}`), ''].join('\n'));
}
