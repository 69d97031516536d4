/**
 * Fault injection for the crash tests: `PACS_EDGE_CRASHPOINT=<name>:<n>` makes the process
 * SIGKILL itself the n-th time execution reaches `crashpoint(<name>)`. This is how the suite
 * proves the commit order at the exact instants between fsyncs that an external `kill -9`
 * would only hit by luck. Inert (one string compare) when the variable is not set.
 *
 * A point reached for many files (the steps of a durable write, src/util/durable-write.ts) is
 * called with a scope, the file's name: `<name>@<scope>:<n>` counts only the calls for that
 * file, `<name>:<n>` counts them all.
 */
const spec = process.env.PACS_EDGE_CRASHPOINT;
const [point, nth] = spec ? [spec.split(':')[0]!, Number(spec.split(':')[1] ?? 1)] : [undefined, 0];
const [target, targetScope] = point === undefined ? [undefined, undefined] : point.includes('@') ? [point.slice(0, point.indexOf('@')), point.slice(point.indexOf('@') + 1)] : [point, undefined];
let hits = 0;

export type CrashpointName =
  | 'mid-data'
  | 'after-first-write'
  | 'after-data-fsync'
  | 'after-index'
  | 'before-response'
  | 'after-response'
  | 'rewrite-after-intent'
  | 'rewrite-after-rename'
  | 'migrate-step'
  /** Durable write: the temporary file is written, not yet fsynced. */
  | 'durable-written'
  /** Durable write: the temporary file is fsynced, not yet renamed over the target. */
  | 'durable-synced'
  /** Durable write: renamed over the target, the directory not yet fsynced. */
  | 'durable-renamed'
  /** Durable write: the directory is fsynced (the write is complete). */
  | 'durable-done';

export function crashpoint(name: CrashpointName, scope?: string): void {
  if (name !== target) return;
  if (targetScope !== undefined && scope !== targetScope) return;
  if (++hits >= nth) process.kill(process.pid, 'SIGKILL');
}
