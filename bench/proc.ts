import { type ChildProcess, spawn, type SpawnOptions, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * Child-process bookkeeping for the benchmark: every process started through {@link startChild}
 * is remembered until it exits, so `killAll()` (called from a finally block and from signal
 * handlers) can leave nothing running behind.
 */
const live = new Set<ChildProcess>();

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Last ~64 KiB of stdout+stderr. */
  output: () => string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<number | null>;
  onLine: (fn: (line: string) => void) => void;
}

export function startChild(cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (proc.pid === undefined) {
    proc.once('error', () => undefined); // reported by the throw below
    throw new Error(`could not start ${cmd}`);
  }
  live.add(proc);
  let tail = '';
  const lineFns: ((line: string) => void)[] = [];
  // One line buffer per stream, so stdout and stderr text never splice into one line.
  const reader = (): ((t: string) => void) => {
    let partial = '';
    return (t) => {
      tail = (tail + t).slice(-65536);
      partial += t;
      let i;
      while ((i = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, i);
        partial = partial.slice(i + 1);
        for (const fn of lineFns) fn(line);
      }
    };
  };
  proc.stdout?.setEncoding('utf8').on('data', reader());
  proc.stderr?.setEncoding('utf8').on('data', reader());
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      resolve(code ?? (signal ? -1 : null));
    });
    proc.once('error', () => {
      live.delete(proc);
      resolve(-1);
    });
  });
  const stop = async (graceMs = 10_000): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return exited;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  return { proc, pid: proc.pid, output: () => tail, exited, stop, onLine: (fn) => lineFns.push(fn) };
}

export function killAll(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/** Run a command to completion with a hard time limit (SIGKILL at the limit). */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-65536)));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-65536)));
    const t = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    p.on('error', (err) => {
      stderr += String(err);
    });
    p.on('close', (code) => {
      clearTimeout(t);
      live.delete(p);
      resolve({ code, stdout, stderr, timedOut, ms: performance.now() - t0 });
    });
  });
}

/** A loopback TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Peak (VmHWM) and current (VmRSS) resident set size of a live process, in bytes. */
export function memoryOf(pid: number): { hwm: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

let clockTicks: number | undefined;

/** User + system CPU time of a live process (all its threads), in seconds, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const rest = statFields(pid);
  return (Number(rest[11]) + Number(rest[12])) / ticks();
}

/**
 * CPU seconds of a process and every child it forked: its own time, the time of the children it
 * has reaped (cutime, cstime) and that of children still running or not yet reaped (a zombie
 * keeps its times until then). What `storescp --fork` spends serving parallel senders is in
 * its children; a child reaped between two readings moves from one sum to the other.
 */
export function treeCpuSecondsOf(pid: number): number {
  const rest = statFields(pid);
  let t = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === pid) continue;
    let f: string[];
    try {
      f = statFields(Number(d));
    } catch {
      continue; // gone meanwhile
    }
    // ppid is field 4; a child's own reaped children are already in its cutime.
    if (Number(f[1]) === pid) t += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return t / ticks();
}

function ticks(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clockTicks = Number(r.stdout.trim());
    if (!Number.isFinite(clockTicks) || clockTicks <= 0) throw new Error('getconf CLK_TCK failed');
  }
  return clockTicks;
}

/** Fields of /proc/PID/stat from field 3 on (the command name may contain spaces): utime is [11], stime [12], cutime [13], cstime [14]. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `probe` until it returns true, the child exits, or the deadline passes. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, opts: { timeoutMs?: number; child?: Child } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let exited = false;
  void opts.child?.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what}: process exited while starting; output:\n${opts.child?.output().slice(-3000)}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what}: not ready after ${opts.timeoutMs ?? 30_000} ms; output:\n${opts.child?.output().slice(-3000) ?? ''}`);
}

/** C-ECHO with DCMTK echoscu: true when the SCP answered. */
export async function echo(port: number, calledAe: string): Promise<boolean> {
  const r = await run('echoscu', ['-aet', 'BENCH', '-aec', calledAe, '127.0.0.1', String(port)], { timeoutMs: 10_000, env: { TCP_NODELAY: '1' } });
  return r.code === 0;
}
