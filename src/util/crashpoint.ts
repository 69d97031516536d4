/**
 * Fault injection for the crash tests: `PACS_EDGE_CRASHPOINT=<name>:<n>` makes the process
 * SIGKILL itself the n-th time execution reaches `crashpoint(<name>)`. This is how the suite
 * proves the commit order at the exact instants between fsyncs that an external `kill -9`
 * would only hit by luck. Inert (one string compare) when the variable is not set.
 */
const spec = process.env.PACS_EDGE_CRASHPOINT;
const [target, nth] = spec ? [spec.split(':')[0], Number(spec.split(':')[1] ?? 1)] : [undefined, 0];
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
  | 'migrate-step';

export function crashpoint(name: CrashpointName): void {
  if (name !== target) return;
  if (++hits >= nth) process.kill(process.pid, 'SIGKILL');
}
