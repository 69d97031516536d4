import { readFileSync, rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/** What a watchdog kill leaves behind for the next start (JSON, in `<spool.dir>/watchdog-stall.json`). */
export interface StallMarker {
  /** How long the event loop had not run when the process was killed. */
  stalledSeconds: number;
  /** When it was killed (ISO). */
  killedAt: string;
  pid: number;
  /** The limit it broke (watchdog.stallSeconds). */
  stallSeconds: number;
  /** Left by the unit's ExecStopPost= when systemd's own watchdog (WatchdogSec=) killed the process: "watchdog <exit code> <exit status>". */
  systemd?: string | undefined;
}

export const STALL_MARKER = 'watchdog-stall.json';

/**
 * The worker's code (plain JS: it must run without the main thread's module loader, and while the
 * main thread is stuck). It loads the durable writer at once, so a stall needs no import; then
 * reads the heartbeat every `checkMs`. Past the limit it writes the marker durably (synchronous:
 * temporary file, fsync, rename, directory fsync) and sends SIGKILL to its own process, which no
 * handler and no stuck loop can delay; systemd's Restart= starts the gateway again.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
(async () => {
  const { writeDurableSync } = await import(workerData.durableModule);
  const beat = new BigInt64Array(workerData.beat);
  setInterval(() => {
    const stalledMs = Number(process.hrtime.bigint() - Atomics.load(beat, 0)) / 1e6;
    if (stalledMs < workerData.stallMs) return;
    const marker = { stalledSeconds: Math.round(stalledMs / 100) / 10, killedAt: new Date().toISOString(), pid: process.pid, stallSeconds: workerData.stallMs / 1000 };
    try {
      writeDurableSync(workerData.markerFile, JSON.stringify(marker) + '\\n', { mode: 0o600 });
    } finally {
      // fd 2 directly: a worker's process.stderr goes through the main thread, which is stuck.
      require('node:fs').writeSync(2, JSON.stringify({ level: 60, msg: 'WATCHDOG: the event loop has not run for ' + marker.stalledSeconds + ' s; killing the process (SIGKILL) so that it is restarted', stalledSeconds: marker.stalledSeconds }) + '\\n');
      process.kill(process.pid, 'SIGKILL');
    }
  }, workerData.checkMs);
})();
`;

function durableModuleUrl(): string {
  const here = import.meta.url;
  // Under the test runner this file is TypeScript: the worker loads the compiled module.
  return (here.endsWith('.ts') ? new URL('../../dist/src/util/durable-write.js', here) : new URL('./durable-write.js', here)).href;
}

/**
 * The in-process watchdog, the line that works without systemd: the main thread writes the time
 * into a SharedArrayBuffer every `tickMs` (a timer: it runs only while the event loop turns), and
 * a worker thread, which keeps running when the main loop is stuck (a busy loop, a synchronous
 * call that never returns), kills the process once the heartbeat is older than `stallMs`, leaving
 * a {@link StallMarker}. Returns a stop function.
 */
export function startLoopWatchdog(o: { stallMs: number; markerFile: string; tickMs?: number; checkMs?: number }): () => void {
  const tickMs = o.tickMs ?? 1000;
  const shared = new SharedArrayBuffer(8);
  const beat = new BigInt64Array(shared);
  // The monotonic clock (one for every thread of the process), never the wall clock: a board
  // without a real-time clock boots at an old time and NTP then jumps it forward by days, which
  // must not look like a stalled loop.
  Atomics.store(beat, 0, process.hrtime.bigint());
  const tick = setInterval(() => Atomics.store(beat, 0, process.hrtime.bigint()), tickMs);
  tick.unref();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    // The source is a CommonJS script whatever flags the process was started with (--input-type=module).
    execArgv: [],
    workerData: { beat: shared, stallMs: o.stallMs, markerFile: o.markerFile, checkMs: o.checkMs ?? Math.min(1000, o.stallMs / 4), durableModule: durableModuleUrl() },
  });
  worker.unref();
  return () => {
    clearInterval(tick);
    void worker.terminate();
  };
}

/** The marker an earlier run left, or undefined; a marker that does not parse still counts (stalledSeconds 0). */
export function readStallMarker(file: string): StallMarker | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // systemd/pacs-edge.service ExecStopPost=: "systemd <SERVICE_RESULT> <EXIT_CODE> <EXIT_STATUS> <time>".
  const sd = /^systemd (\S+) (\S*) ?(\S*) ?(\S*)/.exec(text.trim());
  if (sd) return { stalledSeconds: 0, killedAt: sd[4] ?? '', pid: 0, stallSeconds: 0, systemd: [sd[1], sd[2], sd[3]].filter(Boolean).join(' ') };
  try {
    const m = JSON.parse(text) as Partial<StallMarker>;
    return { stalledSeconds: Number(m.stalledSeconds) || 0, killedAt: String(m.killedAt ?? ''), pid: Number(m.pid) || 0, stallSeconds: Number(m.stallSeconds) || 0 };
  } catch {
    return { stalledSeconds: 0, killedAt: '', pid: 0, stallSeconds: 0 };
  }
}

export function removeStallMarker(file: string): void {
  rmSync(file, { force: true });
}
