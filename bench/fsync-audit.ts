import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { sleep, startChild } from './proc.js';

/**
 * Records the flush-to-disk system calls a receiver makes while it receives a few objects, and
 * on what, by attaching `strace -f -y` to it (all its threads) for the duration of one storescu
 * run. A separate, untimed pass: tracing slows the receiver, so no throughput figure comes from it.
 */
export const SYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range', 'syncfs', 'sync', 'msync'] as const;

export interface SyncTrace {
  /** Calls per system call name. */
  calls: Record<string, number>;
  /** Calls per target (path relative to the receiver's directory, generalized) and system call. */
  targets: Record<string, Record<string, number>>;
}

export async function traceSyncCalls(pid: number, outFile: string, baseDir: string, work: () => Promise<void>): Promise<SyncTrace> {
  const tracer = startChild('strace', ['-f', '-y', '-qq', '-o', outFile, '-e', `trace=${SYNC_CALLS.join(',')}`, '-p', String(pid)]);
  try {
    // strace attaches to every thread before it starts reporting; give it a moment.
    await sleep(1000);
    if (tracer.proc.exitCode !== null) throw new Error(`strace could not attach: ${tracer.output().slice(-500)}`);
    await work();
  } finally {
    tracer.proc.kill('SIGINT'); // detach
    const t = setTimeout(() => tracer.proc.kill('SIGKILL'), 10_000);
    await tracer.exited;
    clearTimeout(t);
  }
  return parseStrace(readFileSync(outFile, 'utf8'), baseDir);
}

/**
 * Lines of `strace -f -y`: "PID fsync(26</dir/objects/0001.part>) = 0", possibly split into
 * "<unfinished ...>" / "<... fsync resumed>" halves (counted once, on the first half). Paths are
 * made relative to `baseDir` and generalized: every hexadecimal name part becomes `*`, and a
 * directory gets a trailing `/`.
 */
export function parseStrace(text: string, baseDir: string): SyncTrace {
  const calls: Record<string, number> = Object.fromEntries(SYNC_CALLS.map((c) => [c, 0]));
  const targets: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const m = /^(?:\d+\s+)?([a-z_0-9]+)\((?:\d+<([^>]*)>)?/.exec(line);
    if (!m || !(m[1]! in calls)) continue;
    const call = m[1]!;
    calls[call]!++;
    const target = m[2] === undefined ? '(no file)' : generalize(m[2], baseDir);
    const t = (targets[target] ??= {});
    t[call] = (t[call] ?? 0) + 1;
  }
  return { calls, targets };
}

function generalize(p: string, baseDir: string): string {
  let isDir = false;
  try {
    isDir = statSync(p).isDirectory();
  } catch {
    /* gone already (renamed or deleted): a file */
  }
  const rel = path.relative(baseDir, p);
  const shown = rel.startsWith('..') ? p : rel || '.';
  const general = shown
    .split('/')
    .map((seg) => seg.split('.').map((part) => (/^[0-9a-f-]{2,}$/i.test(part) ? '*' : part)).join('.'))
    .join('/');
  return isDir ? `${general}/` : general;
}
