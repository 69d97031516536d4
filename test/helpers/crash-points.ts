import type { CrashpointName } from '../../src/util/crashpoint.js';

/** Where a crash test kills the gateway: an exact instant of the commit sequence, or a moment. */
export interface CrashPoint {
  name: string;
  /** PACS_EDGE_CRASHPOINT value: the gateway SIGKILLs itself there (src/util/crashpoint.ts). */
  crashpoint?: string;
  /** External `kill -9` this long after the transfer starts. */
  killAfterMs?: number;
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

/** Crash points at the named instants (on the given object) and external kills at the given times. */
export function crashPoints(at: [CrashpointName, number][], killAfterMs: number[]): CrashPoint[] {
  return [
    ...at.map(([name, n]) => ({ name: DESCRIBE[name](n), crashpoint: `${name}:${n}` })),
    ...killAfterMs.map((ms) => ({ name: `external kill -9 at ${ms} ms`, killAfterMs: ms })),
  ];
}
