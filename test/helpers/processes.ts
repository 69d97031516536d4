import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { controlGet } from '../../src/health/control-server.js';
import { stringify } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'dist/src/cli/main.js');

/** A fresh temporary directory under the OS temp dir; removed by the returned cleanup. */
export function tempDir(prefix = 'pacs-edge-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Ports this test process has handed out: never twice (a gateway restarted on its port keeps it). */
const handedOut = new Set<number>();

/**
 * A loopback TCP port nobody listens on right now, chosen below the kernel's ephemeral range
 * (32768–60999): a port the kernel picked for listen(0) is also where it puts the source ports
 * of outgoing connections, and a gateway restarted on "its" port could then find it taken by
 * some other test's connection (seen in CI: EADDRINUSE on a restart).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found in 20000-31999');
}

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export interface GatewayProcess {
  port: number;
  spoolDir: string;
  configFile: string;
  proc: ChildProcess;
  logs: LogLine[];
  /** Raw stdout+stderr text, for the no-patient-data checks. */
  output: () => string;
  waitForLog: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
  stop: () => Promise<number | null>;
  kill: () => Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Follow a gateway process's JSON log lines (stdout and stderr): the lines so far, its raw
 * output, its exit, and a wait for a line that fails early when the process exits first.
 */
export function watchGateway(proc: ChildProcess): {
  logs: LogLine[];
  output: () => string;
  exited: Promise<number | null>;
  waitForLog: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
} {
  const logs: LogLine[] = [];
  let raw = '';
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buf = '';
  const onText = (t: string) => {
    raw += t;
    buf += t;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const l = JSON.parse(line) as LogLine;
        logs.push(l);
        for (const w of [...waiters]) {
          if (w.pred(l)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(l);
          }
        }
      } catch {
        /* non-JSON output (stderr text) is kept in raw */
      }
    }
  };
  proc.stdout!.setEncoding('utf8').on('data', onText);
  proc.stderr!.setEncoding('utf8').on('data', onText);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; output so far:\n${raw.slice(-3000)}`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
      void exited.then(() => {
        clearTimeout(t);
        reject(new Error(`gateway exited before the expected log line; output:\n${raw.slice(-3000)}`));
      });
    });
  };
  return { logs, output: () => raw, exited, waitForLog };
}

export interface GatewayConfigOptions {
  dir: string;
  config?: Record<string, unknown>;
  receive?: Record<string, unknown>;
  spool?: Record<string, unknown>;
  port?: number;
}

/** Write a gateway configuration for a test (loopback, any caller, spool under `dir`); returns where it is and what it says. */
export async function writeGatewayConfig(opts: GatewayConfigOptions): Promise<{ configFile: string; port: number; spoolDir: string }> {
  const port = opts.port ?? (await freePort());
  const spoolDir = path.join(opts.dir, 'spool');
  const config = {
    device: { id: 'edge-test' },
    receive: { aeTitle: 'PACS_EDGE', host: '127.0.0.1', port, callers: [{ aeTitle: '*' }], ...opts.receive },
    // Delivered objects leave at once (the tests were written for that; the product keeps them
    // 48 h by default, for `pacs-edge resend`: tests of that set it themselves).
    spool: { dir: spoolDir, minFreeBytes: '64MiB', keepForwardedHours: 0, ...opts.spool },
    forward: [],
    log: { level: 'debug' },
    ...opts.config,
  };
  const configFile = path.join(opts.dir, `gateway-${port}.yaml`);
  writeFileSync(configFile, stringify(config));
  return { configFile, port, spoolDir };
}

/** Start the real gateway (`node dist/src/cli/main.js run`) with a generated configuration. */
export async function startGateway(opts: GatewayConfigOptions & { env?: Record<string, string> }): Promise<GatewayProcess> {
  const { configFile, port, spoolDir } = await writeGatewayConfig(opts);
  return runGateway(configFile, { port, spoolDir, ...(opts.env ? { env: opts.env } : {}) });
}

/**
 * Start the real gateway (`node dist/src/cli/main.js run`) on an existing configuration file and
 * wait until it listens. `port` and `spoolDir` are what that file configures (for the caller).
 */
export async function runGateway(configFile: string, opts: { port: number; spoolDir: string; env?: Record<string, string> }): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, [CLI, 'run', '--config', configFile], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { logs, output, exited, waitForLog } = watchGateway(proc);
  await waitForLog((l) => l.msg === 'gateway listening');
  return {
    port: opts.port,
    spoolDir: opts.spoolDir,
    configFile,
    proc,
    logs,
    output,
    waitForLog,
    exited,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion with a hard time limit; `input` is written to its stdin. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string>; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (opts.input !== undefined) p.stdin!.end(opts.input);
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Poll `check` until it returns a value (not undefined/false) or the time runs out. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, opts: { timeoutMs?: number; what?: string; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'a condition'}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/**
 * True once no destination of the running gateway has anything pending (delivered or
 * dead-lettered), asked over its control socket; undefined otherwise, for {@link waitFor}.
 * A PACS answers C-STORE only after writing the object, so its files are then complete.
 */
export async function nothingPending(spoolDir: string): Promise<true | undefined> {
  const s = (await controlGet(path.join(spoolDir, 'control.sock'), '/status')) as { destinations: { pending: number }[] };
  return s.destinations.every((d) => d.pending === 0) || undefined;
}
