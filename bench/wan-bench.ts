/**
 * WAN benchmark (part of `make bench`, needs root): does compressing before forwarding pay off
 * on a slow link? Two network namespaces joined by a veth pair shaped to 20 Mbit/s with tbf in
 * both directions stand for the hospital (side A: modality and gateway) and the remote PACS
 * (side B: DCMTK storescp). The same 100-instance CT study is sent
 *
 * 1. direct: storescu (side A) → PACS over the link;
 * 2. through the gateway with `forward[].compression: jpeg-ls` and the default spool (which
 *    also compresses at rest, `spool.compressAtRest`): storescu → gateway on loopback (side A),
 *    gateway → PACS over the link; this is the figure held against the ≤ 0.35× target;
 * 3. the same with `spool.compressAtRest: false` (compression before forwarding alone);
 * 4. `compression: none`, `spool.compressAtRest: false` (plain store and forward, the control).
 *
 * A section of `make bench` (bench/run-all.ts, which skips it when not root); runs alone too
 * (`node dist/bench/wan-bench.js` prints its section). Every figure comes from the run. The namespaces, veth pair,
 * processes and temporary files are removed on exit, on failure and on SIGINT/SIGTERM, and
 * leftovers of an earlier run with the same names are removed first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { envInt, isMain, QUICK, runStandalone } from './standalone.js';
import type { BenchSection } from './targets.js';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AtRestStats } from '../src/compress/at-rest.js';
import type { CompressionStats } from '../src/forward/destination.js';
import { type Child, killAll, run, type RunResult, sleep, startChild } from './proc.js';
import { ROOT } from './receivers.js';
import { median } from './report.js';
import { buildStudy } from './study.js';

let COUNT = 100;
let REPS = 3;
const RATE = '20mbit';
const TBF = ['rate', RATE, 'burst', '32kbit', 'latency', '400ms'];
const TARGET = 0.35;
const NS_A = 'pe-wan-a';
const NS_B = 'pe-wan-b';
const VETH_A = 'pe-wan-va';
const VETH_B = 'pe-wan-vb';
const IP_A = '192.0.2.1';
const IP_B = '192.0.2.2';
const PACS_PORT = 11113;
const PACS_AE = 'PACS';
const GW_PORT = 11112;
const GW_AE = 'PACS_EDGE';
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const log = (s: string) => console.log(`[wan-bench] ${s}`);

// ---------------------------------------------------------------- processes and namespaces

/** Process groups this bench started (children spawned detached: storescp --fork children included). */
const groups = new Set<number>();

function startGroup(cmd: string, args: string[], env: Record<string, string> = {}): Child {
  const child = startChild(cmd, args, { detached: true, env: { ...process.env, ...env } });
  groups.add(child.pid);
  void child.exited.then(() => {
    // The leader is gone; forked children (storescp --fork) may outlive it for a moment.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* group empty */
    }
    groups.delete(child.pid);
  });
  return child;
}

async function stopGroup(child: Child, graceMs = 10_000): Promise<number | null> {
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, graceMs);
  const code = await child.exited;
  clearTimeout(t);
  return code;
}

function killGroups(): void {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  groups.clear();
}

async function must(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs: 30_000, ...opts });
  if (r.code !== 0 || r.timedOut) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).slice(-500)}`);
  return r;
}

const inNs = (ns: string, cmd: string, ...args: string[]): [string, string[]] => ['ip', ['netns', 'exec', ns, cmd, ...args]];

/** Remove the namespaces and the veth pair (synchronous: also used from signal handlers). Errors ignored: they may not exist. */
function teardownNet(): void {
  for (const ns of [NS_A, NS_B]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
  // A veth left in the root namespace by a set-up interrupted before it was moved.
  for (const dev of [VETH_A, VETH_B]) spawnSync('ip', ['link', 'del', dev], { stdio: 'ignore', timeout: 10_000 });
}

async function setupNet(): Promise<void> {
  teardownNet();
  await must('ip', ['netns', 'add', NS_A]);
  await must('ip', ['netns', 'add', NS_B]);
  await must('ip', ['link', 'add', VETH_A, 'type', 'veth', 'peer', 'name', VETH_B]);
  await must('ip', ['link', 'set', VETH_A, 'netns', NS_A]);
  await must('ip', ['link', 'set', VETH_B, 'netns', NS_B]);
  for (const [ns, dev, addr] of [
    [NS_A, VETH_A, IP_A],
    [NS_B, VETH_B, IP_B],
  ] as const) {
    await must('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev]);
    await must('ip', ['-n', ns, 'link', 'set', dev, 'mtu', '1500', 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await must(...inNs(ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', ...TBF));
    const q = await must(...inNs(ns, 'tc', 'qdisc', 'show', 'dev', dev));
    if (!/qdisc tbf .*rate 20Mbit/.test(q.stdout)) throw new Error(`tbf not in place on ${dev}: ${q.stdout}`);
  }
}

interface LinkCounters {
  /** Bytes sent A → B (tx of the A end of the veth pair; Ethernet frames as counted by the kernel). */
  aToB: number;
  /** Bytes sent B → A. */
  bToA: number;
}

async function linkCounters(): Promise<LinkCounters> {
  const r = await must('ip', ['-n', NS_A, '-s', '-j', 'link', 'show', 'dev', VETH_A]);
  const s = (JSON.parse(r.stdout) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[])[0]!.stats64;
  return { aToB: s.tx.bytes, bToA: s.rx.bytes };
}

const diff = (a: LinkCounters, b: LinkCounters): LinkCounters => ({ aToB: b.aToB - a.aToB, bToA: b.bToA - a.bToA });

async function tcStats(): Promise<string> {
  const out: string[] = [];
  for (const [ns, dev] of [
    [NS_A, VETH_A],
    [NS_B, VETH_B],
  ] as const) {
    const r = await run(...inNs(ns, 'tc', '-s', 'qdisc', 'show', 'dev', dev), { timeoutMs: 10_000 });
    out.push(`${dev}: ${r.stdout.replace(/\s+/g, ' ').trim()}`);
  }
  return out.join(' | ');
}

// ---------------------------------------------------------------- link check

const SINK = `
import net from 'node:net';
const s = net.createServer((c) => { let n = 0; c.on('data', (d) => (n += d.length)); c.on('end', () => c.end(String(n))); });
s.listen(Number(process.argv[1]), process.argv[2] ?? '0.0.0.0', () => console.log('listening'));
`;
const SOURCE = `
import net from 'node:net';
const [port, host, n] = [Number(process.argv[1]), process.argv[2], Number(process.argv[3])];
const t0 = performance.now();
const c = net.connect(port, host, () => c.end(Buffer.alloc(n, 0x5a)));
let r = '';
c.setEncoding('utf8').on('data', (d) => (r += d));
c.on('end', () => console.log(JSON.stringify({ bytes: Number(r), seconds: (performance.now() - t0) / 1000 })));
c.on('error', (e) => { console.error(String(e)); process.exit(1); });
`;

interface LinkCheck {
  /** Bulk TCP transfers A → B: payload Mbit/s per run. */
  tcpMbitS: number[];
  tcpBytes: number;
  /** Frame-level rate (veth tx bytes / time) of the same transfers. */
  frameMbitS: number[];
  /** storescu sending one uncompressed file A → B: seconds per run, and payload Mbit/s (file bytes / wall time). */
  storescuOneFileSeconds: number[];
  storescuOneFileMbitS: number[];
}

async function checkLink(file: string, work: string): Promise<LinkCheck> {
  const port = 9009;
  const sink = startGroup(...inNs(NS_B, process.execPath, '--input-type=module', '-e', SINK, String(port), IP_B));
  const out: LinkCheck = { tcpMbitS: [], tcpBytes: 8_000_000, frameMbitS: [], storescuOneFileSeconds: [], storescuOneFileMbitS: [] };
  try {
    await waitFor('link-check sink', async () => sink.output().includes('listening'), 10_000);
    for (let i = 0; i < 3; i++) {
      const c0 = await linkCounters();
      const r = await must(...inNs(NS_A, process.execPath, '--input-type=module', '-e', SOURCE, String(port), IP_B, String(out.tcpBytes)), { timeoutMs: 60_000 });
      const c1 = await linkCounters();
      const res = JSON.parse(r.stdout.trim()) as { bytes: number; seconds: number };
      if (res.bytes !== out.tcpBytes) throw new Error(`link check: sink received ${res.bytes} of ${out.tcpBytes} bytes`);
      out.tcpMbitS.push((res.bytes * 8) / res.seconds / 1e6);
      out.frameMbitS.push((diff(c0, c1).aToB * 8) / res.seconds / 1e6);
    }
  } finally {
    await stopGroup(sink, 2000);
  }
  // One uncompressed CT file with storescu, as the scenarios send them.
  const size = readFileSync(file).length;
  for (let i = 0; i < 3; i++) {
    const pacs = await startPacs(mkdtempSync(path.join(work, 'linkcheck-')));
    try {
      const s = await storescu(IP_B, PACS_PORT, PACS_AE, [file]);
      out.storescuOneFileSeconds.push(s);
      out.storescuOneFileMbitS.push((size * 8) / s / 1e6);
    } finally {
      await pacs.stop();
    }
  }
  return out;
}

// ---------------------------------------------------------------- DICOM helpers

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not reached within ${timeoutMs} ms`);
}

async function echoIn(ns: string, host: string, port: number, ae: string): Promise<boolean> {
  const r = await run(...inNs(ns, 'echoscu', '-aet', 'BENCH', '-aec', ae, host, String(port)), { timeoutMs: 10_000, env: { TCP_NODELAY: '1' } });
  return r.code === 0;
}

/** storescu in namespace A; returns its wall time in seconds. */
async function storescu(host: string, port: number, ae: string, files: string[]): Promise<number> {
  const r = await run(...inNs(NS_A, 'storescu', '-R', '-aet', 'MODALITY', '-aec', ae, host, String(port), ...files), { timeoutMs: 300_000, env: { TCP_NODELAY: '1' } });
  if (r.code !== 0 || r.timedOut) throw new Error(`storescu → ${host}:${port} exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(-500)}`);
  return r.ms / 1000;
}

/** Transfer Syntax UID (0002,0010) from the File Meta of a Part 10 file. */
function transferSyntaxOf(file: string): string {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(4096);
  const n = readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  if (n < 144 || buf.toString('latin1', 128, 132) !== 'DICM') throw new Error(`${file}: not a Part 10 file`);
  let p = 132;
  while (p + 8 <= n && buf.readUInt16LE(p) === 0x0002) {
    const elem = buf.readUInt16LE(p + 2);
    const vr = buf.toString('latin1', p + 4, p + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    const len = long ? buf.readUInt32LE(p + 8) : buf.readUInt16LE(p + 6);
    const vo = p + (long ? 12 : 8);
    if (elem === 0x0010) return buf.toString('latin1', vo, vo + len).replace(/[\0 ]+$/, '');
    p = vo + len;
  }
  throw new Error(`${file}: no (0002,0010) in the File Meta`);
}

/** Native (OW/OB) Pixel Data: the last (7FE0,0010) element of a file in explicit VR little endian. */
function nativePixelData(buf: Buffer): Buffer {
  for (const vr of ['OW', 'OB']) {
    const tag = Buffer.from([0xe0, 0x7f, 0x10, 0x00, vr.charCodeAt(0), vr.charCodeAt(1), 0, 0]);
    const at = buf.lastIndexOf(tag);
    if (at >= 0) {
      const len = buf.readUInt32LE(at + 8);
      return buf.subarray(at + 12, at + 12 + len);
    }
  }
  throw new Error('no native Pixel Data');
}

// ---------------------------------------------------------------- receivers in the namespaces

interface Pacs {
  out: string;
  /** One empty file per object storescp finished writing (its --exec-on-reception). */
  marks: string;
  child: Child;
  stop: () => Promise<void>;
}

/**
 * The PACS, on side B: storescp bit-preserving, JPEG-LS lossless preferred (+xt), --fork (one
 * process per association, as a PACS serves several at once: the gateway opens two per
 * destination by default). `-xcr` touches a marker once an object is written completely
 * (with +B storescp writes into the final file while it receives, so a file existing does not
 * mean it is complete).
 */
async function startPacs(dir: string): Promise<Pacs> {
  const out = path.join(dir, 'out');
  const marks = path.join(dir, 'marks');
  mkdirSync(out, { recursive: true });
  mkdirSync(marks, { recursive: true });
  const child = startGroup(
    ...inNs(NS_B, 'storescp', '+B', '+xt', '-pm', '--fork', '-aet', PACS_AE, '-od', out, '-xcr', `touch ${marks}/#f`, String(PACS_PORT)),
    { TCP_NODELAY: '1' },
  );
  let exited = false;
  void child.exited.then(() => (exited = true));
  await waitFor(
    'storescp (C-ECHO from side A over the link)',
    async () => {
      if (exited) throw new Error(`storescp exited: ${child.output().slice(-1000)}`);
      return echoIn(NS_A, IP_B, PACS_PORT, PACS_AE);
    },
    30_000,
    200,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; storescp output: ${child.output().slice(-1000)}`);
  });
  return {
    out,
    marks,
    child,
    stop: async () => {
      await stopGroup(child, 5000);
    },
  };
}

interface Gateway {
  configFile: string;
  child: Child;
  problems: string[];
  stop: () => Promise<number | null>;
}

/** `compressAtRest` undefined: the gateway's default (`spool.compressAtRest` not written). */
async function startGatewayInA(dir: string, compression: string, compressAtRest: boolean | undefined): Promise<Gateway> {
  mkdirSync(dir, { recursive: true });
  const config = {
    device: { id: 'edge-wan-bench' },
    receive: { aeTitle: GW_AE, host: '127.0.0.1', port: GW_PORT, callers: [{ aeTitle: '*' }] },
    spool: { dir: path.join(dir, 'spool'), minFreeBytes: '64MiB', ...(compressAtRest === undefined ? {} : { compressAtRest }) },
    forward: [{ name: 'pacs', aeTitle: PACS_AE, host: IP_B, port: PACS_PORT, compression }],
    forwarding: { idleReleaseSeconds: 5 },
    log: { level: 'warn' },
  };
  const configFile = path.join(dir, 'gateway.yaml');
  writeFileSync(configFile, stringify(config));
  const child = startGroup(...inNs(NS_A, process.execPath, CLI, 'run', '--config', configFile));
  const problems: string[] = [];
  child.onLine((line) => {
    if (!line.trim()) return;
    try {
      const l = JSON.parse(line) as { level?: string | number };
      if (l.level === 'warn' || l.level === 'error' || l.level === 'fatal' || (typeof l.level === 'number' && l.level >= 40)) problems.push(line);
    } catch {
      problems.push(line);
    }
  });
  let exited = false;
  void child.exited.then(() => (exited = true));
  await waitFor(
    'gateway (C-ECHO in namespace A)',
    async () => {
      if (exited) throw new Error(`gateway exited: ${child.output().slice(-2000)}`);
      return echoIn(NS_A, '127.0.0.1', GW_PORT, GW_AE);
    },
    30_000,
    200,
  );
  return { configFile, child, problems, stop: () => stopGroup(child, 15_000) };
}

interface DestStatus {
  name: string;
  pending: number;
  deadLetter: number;
  sent?: number;
  compression?: CompressionStats;
}

/** `spool.compressAtRest` figures of `status --json` (absent when the feature is off). */
type AtRest = AtRestStats;

interface GatewayStatus {
  running: boolean;
  dest: DestStatus;
  atRest?: AtRest;
}

async function gatewayStatus(configFile: string): Promise<GatewayStatus> {
  const r = await must(...inNs(NS_A, process.execPath, CLI, 'status', '--config', configFile, '--json'), { timeoutMs: 20_000 });
  const s = JSON.parse(r.stdout) as { running: boolean; destinations: DestStatus[]; spool?: { compressAtRest?: AtRest } };
  const dest = s.destinations.find((d) => d.name === 'pacs');
  if (!dest) throw new Error(`status: no destination "pacs": ${r.stdout.slice(0, 500)}`);
  return { running: s.running, dest, atRest: s.spool?.compressAtRest };
}

// ---------------------------------------------------------------- scenarios

type Scenario = 'direct' | 'gateway-jpeg-ls' | 'gateway-jpeg-ls-no-at-rest' | 'gateway-none';

/** The gateway variants: forward[].compression and spool.compressAtRest (undefined = the default, on). */
const VARIANTS: Record<Exclude<Scenario, 'direct'>, { compression: 'jpeg-ls' | 'none'; compressAtRest: boolean | undefined }> = {
  'gateway-jpeg-ls': { compression: 'jpeg-ls', compressAtRest: undefined },
  'gateway-jpeg-ls-no-at-rest': { compression: 'jpeg-ls', compressAtRest: false },
  'gateway-none': { compression: 'none', compressAtRest: false },
};

interface RunFigures {
  scenario: Scenario;
  rep: number;
  /** Start of storescu → last object complete at the PACS. */
  seconds: number;
  /** storescu wall time (for the gateway scenarios: modality → gateway on loopback). */
  storescuSeconds: number;
  /** Start of storescu → 100th file present in the PACS directory (may still be being written). */
  filesPresentSeconds: number;
  wire: LinkCounters;
  storedFiles: number;
  transferSyntaxes: Record<string, number>;
  gatewayStatus?: DestStatus;
  /** `spool.compressAtRest` figures (status --json), when on. */
  gatewayAtRest?: AtRest;
  gatewayExitCode?: number | null;
  gatewayProblems?: string[];
  losslessChecked?: number;
}

async function untilCount(dir: string, n: number, t0: number, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (readdirSync(dir).length >= n) return (performance.now() - t0) / 1000;
    if (Date.now() > deadline) throw new Error(`${dir}: ${readdirSync(dir).length}/${n} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

function syntaxesIn(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of readdirSync(dir)) {
    const ts = transferSyntaxOf(path.join(dir, f));
    out[ts] = (out[ts] ?? 0) + 1;
  }
  return out;
}

async function direct(files: string[], dir: string, rep: number): Promise<RunFigures> {
  const pacs = await startPacs(dir);
  try {
    const c0 = await linkCounters();
    const t0 = performance.now();
    const storescuSeconds = await storescu(IP_B, PACS_PORT, PACS_AE, files);
    const c1 = await linkCounters();
    // storescp answers each C-STORE after writing the file; the markers follow within milliseconds.
    await untilCount(pacs.marks, files.length, t0, 30_000);
    const filesPresentSeconds = await untilCount(pacs.out, files.length, t0, 1000);
    const stored = readdirSync(pacs.out).length;
    const ts = syntaxesIn(pacs.out);
    if (stored !== files.length) throw new Error(`direct: PACS holds ${stored} files, expected ${files.length}`);
    if (ts[EXPLICIT_LE] !== files.length) throw new Error(`direct: unexpected transfer syntaxes ${JSON.stringify(ts)}`);
    return { scenario: 'direct', rep, seconds: storescuSeconds, storescuSeconds, filesPresentSeconds, wire: diff(c0, c1), storedFiles: stored, transferSyntaxes: ts };
  } finally {
    await pacs.stop();
  }
}

async function viaGateway(files: string[], dir: string, rep: number, scenario: Exclude<Scenario, 'direct'>, template: Buffer): Promise<RunFigures> {
  const { compression, compressAtRest } = VARIANTS[scenario];
  const pacs = await startPacs(path.join(dir, 'pacs'));
  let gw: Gateway | undefined;
  try {
    gw = await startGatewayInA(path.join(dir, 'gw'), compression, compressAtRest);
    const c0 = await linkCounters();
    const t0 = performance.now();
    const filesPresent = untilCount(pacs.out, files.length, t0);
    filesPresent.catch(() => undefined); // awaited below; never an unhandled rejection
    const storescuSeconds = await storescu('127.0.0.1', GW_PORT, GW_AE, files);
    const seconds = await untilCount(pacs.marks, files.length, t0);
    const c1 = await linkCounters();
    const filesPresentSeconds = await filesPresent;
    // The gateway's own view: nothing pending, nothing set aside.
    let status: GatewayStatus | undefined;
    await waitFor(
      'gateway status pending 0',
      async () => {
        status = await gatewayStatus(gw!.configFile);
        return status.running && status.dest.pending === 0;
      },
      30_000,
      250,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last status ${JSON.stringify(status)}`);
    });
    const dest = status!.dest;
    if (dest.deadLetter !== 0) throw new Error(`${scenario}: ${dest.deadLetter} dead letter(s)`);
    const stored = readdirSync(pacs.out).length;
    const ts = syntaxesIn(pacs.out);
    const want = compression === 'jpeg-ls' ? JPEG_LS_LOSSLESS : EXPLICIT_LE;
    if (stored !== files.length) throw new Error(`${scenario}: PACS holds ${stored} files, expected ${files.length}`);
    if (ts[want] !== files.length) throw new Error(`${scenario}: expected all in ${want}, got ${JSON.stringify(ts)}`);
    // Lossless check: decode every delivered JPEG-LS object with DCMTK and compare its pixels with the source's.
    let losslessChecked = 0;
    if (compression === 'jpeg-ls') {
      const want = nativePixelData(template);
      const dec = path.join(dir, 'decoded.dcm');
      for (const name of readdirSync(pacs.out)) {
        await must('dcmdjpls', [path.join(pacs.out, name), dec], { timeoutMs: 30_000 });
        if (!nativePixelData(readFileSync(dec)).equals(want)) throw new Error(`${scenario}: ${name} decodes to pixels different from the source`);
        losslessChecked++;
      }
    }
    const gatewayExitCode = await gw.stop();
    const gatewayProblems = gw.problems;
    gw = undefined;
    return {
      scenario,
      rep,
      seconds,
      storescuSeconds,
      filesPresentSeconds,
      wire: diff(c0, c1),
      storedFiles: stored,
      transferSyntaxes: ts,
      gatewayStatus: dest,
      gatewayAtRest: status!.atRest,
      gatewayExitCode,
      gatewayProblems,
      losslessChecked,
    };
  } finally {
    if (gw) await gw.stop();
    await pacs.stop();
  }
}

// ---------------------------------------------------------------- main

let work: string | undefined;

/** Kills what this bench started and removes its namespaces and files; synchronous (also run from signal handlers). */
export function wanCleanupSync(): void {
  killGroups();
  killAll();
  teardownNet();
  if (work) rmSync(work, { recursive: true, force: true });
  work = undefined;
}

export function wanOptionsFromEnv(): { reps: number; count: number } {
  return { reps: envInt('PACS_EDGE_WAN_REPS', QUICK ? 1 : 3), count: envInt('PACS_EDGE_WAN_COUNT', QUICK ? 20 : 100) };
}

/** Needs root (network namespaces, tc); the caller checks. */
export async function runWanBench(opts: { reps: number; count: number }): Promise<BenchSection> {
  COUNT = opts.count;
  REPS = opts.reps;
  try {
    return await wanBench();
  } finally {
    wanCleanupSync();
  }
}

async function wanBench(): Promise<BenchSection> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, tc)');
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: build first (npx tsc -p tsconfig.json)`);
  const corpus = path.resolve(ROOT, process.env.PACS_EDGE_CORPUS ?? '../shared/corpus/public');
  const templateFile = path.join(corpus, '693_UNCR.dcm');
  if (!existsSync(templateFile)) throw new Error(`template ${templateFile} not found (set PACS_EDGE_CORPUS)`);
  const started = Date.now();
  work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-wanbench-'));
  const study = buildStudy({ template: templateFile, dir: path.join(work, 'study'), count: COUNT });
  const template = readFileSync(templateFile);
  log(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB`);

  await setupNet();
  log(`link: ${NS_A} ${IP_A} ⇄ ${NS_B} ${IP_B}, veth MTU 1500, tbf ${TBF.join(' ')} on both ends`);
  const link = await checkLink(study.files[0]!, work);
  const linkMbit = median(link.tcpMbitS)!;
  log(
    `link check: TCP bulk ${link.tcpMbitS.map((x) => x.toFixed(2)).join(', ')} Mbit/s payload (frames ${link.frameMbitS.map((x) => x.toFixed(2)).join(', ')}); ` +
      `storescu 1 file ${link.storescuOneFileSeconds.map((x) => x.toFixed(3)).join(', ')} s`,
  );
  if (linkMbit < 15 || linkMbit > 21) throw new Error(`link runs at ${linkMbit.toFixed(1)} Mbit/s, not ~20: tbf misbehaves`);

  const runs: RunFigures[] = [];
  const gatewayScenarios = Object.keys(VARIANTS) as Exclude<Scenario, 'direct'>[];
  for (let rep = 1; rep <= REPS; rep++) {
    const dir = mkdtempSync(path.join(work, `rep${rep}-`));
    const d = await direct(study.files, path.join(dir, 'direct'), rep);
    runs.push(d);
    log(`rep ${rep}: direct ${d.seconds.toFixed(2)} s, ${(d.wire.aToB / 1e6).toFixed(1)} MB A→B`);
    for (const sc of gatewayScenarios) {
      const g = await viaGateway(study.files, path.join(dir, sc), rep, sc, template);
      runs.push(g);
      log(`rep ${rep}: ${sc} ${g.seconds.toFixed(2)} s (storescu ${g.storescuSeconds.toFixed(2)} s), ${(g.wire.aToB / 1e6).toFixed(1)} MB A→B`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  const tc = await tcStats();

  const of = (s: Scenario) => runs.filter((r) => r.scenario === s);
  const med = (s: Scenario, f: (r: RunFigures) => number) => median(of(s).map(f))!;
  const scenarios: Scenario[] = ['direct', ...gatewayScenarios];
  const medians = Object.fromEntries(
    scenarios.map((sc) => [
      sc,
      { seconds: med(sc, (r) => r.seconds), storescuSeconds: med(sc, (r) => r.storescuSeconds), wireAToB: med(sc, (r) => r.wire.aToB), wireBToA: med(sc, (r) => r.wire.bToA) },
    ]),
  ) as Record<Scenario, { seconds: number; storescuSeconds: number; wireAToB: number; wireBToA: number }>;
  const ratio = (sc: Scenario) => medians[sc].seconds / medians.direct.seconds;
  const ratioJls = ratio('gateway-jpeg-ls');
  const pass = ratioJls <= TARGET;
  const unexpected = runs.flatMap((r) => (r.gatewayProblems ?? []).filter((l) => !/receive\.callers accepts any calling AE/.test(l)));
  const result = {
    generatedAt: new Date().toISOString(),
    count: COUNT,
    reps: REPS,
    studyBytes: study.bytes,
    link: { shaping: `tbf ${TBF.join(' ')} on both veth ends`, mtu: 1500, addresses: [IP_A, IP_B], ...link, medianTcpMbitS: linkMbit, tcStatsAtEnd: tc },
    variants: VARIANTS,
    runs,
    medians,
    ratios: Object.fromEntries(gatewayScenarios.map((sc) => [sc, ratio(sc)])),
    target: { scenario: 'gateway-jpeg-ls', overDirectAtMost: TARGET, measured: ratioJls, pass },
    unexpectedGatewayLogLines: unexpected,
  };

  const s2 = (x: number) => x.toFixed(2);
  const mb = (x: number) => (x / 1e6).toFixed(1);
  const per = (sc: Scenario) => of(sc).map((r) => s2(r.seconds)).join(', ');
  const label: Record<Scenario, string> = {
    direct: 'direct storescu → PACS',
    'gateway-jpeg-ls': 'modality → gateway → PACS, `compression: jpeg-ls`, default spool (compress at rest on)',
    'gateway-jpeg-ls-no-at-rest': 'modality → gateway → PACS, `compression: jpeg-ls`, `spool.compressAtRest: false`',
    'gateway-none': 'modality → gateway → PACS, `compression: none`, `spool.compressAtRest: false` (control)',
  };
  const row = (sc: Scenario) => {
    const x = medians[sc];
    return `| ${label[sc]} | ${s2(x.seconds)} | ${per(sc)} | ${s2(ratio(sc))} | ${mb(x.wireAToB)} | ${mb(x.wireBToA)} | ${s2(x.storescuSeconds)} |`;
  };
  // Where the JPEG-LS objects came from, per jpeg-ls run: encoded on the way out, or already compressed at rest in the spool.
  const origin = (sc: Scenario) => {
    const each = of(sc).map((r) => {
        const z = r.gatewayStatus?.compression;
        const a = r.gatewayAtRest;
      return `${z ? `${z.compressed} encoded while forwarding (${mb(z.bytesIn)} → ${mb(z.bytesOut)} MB, ${z.verifyFailures} verify failures, ${z.codecErrors} codec errors)` : 'no forward compression figures'}` + (a ? `, ${a.compressed} compressed at rest (${mb(a.bytesIn)} → ${mb(a.bytesOut)} MB; ${a.deliveredFirst} left as received: already being sent)` : '');
    });
    return new Set(each).size === 1 ? `${each[0]} (the same in all ${each.length} runs)` : each.join('; ');
  };
  const noneDecoded = of('gateway-none').map((r) => r.gatewayStatus?.compression?.decoded ?? 0);
  const section = [
    '## Forwarding over a slow WAN link (compression)',
    '',
    `${REPS} repetition(s), medians (needs root).`,
    '',
    `**Link.** Two network namespaces joined by a veth pair: \`${NS_A}\` (${IP_A}/24, the hospital side: modality and gateway) and \`${NS_B}\` (${IP_B}/24, the remote PACS). ` +
      `Both ends of the pair have MTU 1500 and \`tc qdisc … root tbf ${TBF.join(' ')}\`, so each direction is limited to 20 Mbit/s (netem is not available on this kernel: no added delay or loss; the round trip is sub-millisecond). ` +
      `Measured before the scenarios, A → B: bulk TCP ${link.tcpMbitS.map((x) => x.toFixed(2)).join(', ')} Mbit/s of payload (${link.tcpBytes / 1e6} MB each; ${link.frameMbitS.map((x) => x.toFixed(2)).join(', ')} Mbit/s of Ethernet frames), ` +
      `and storescu sending one ${mb(study.templateBytes)} MB uncompressed CT file in ${link.storescuOneFileSeconds.map((x) => x.toFixed(3)).join(', ')} s (${link.storescuOneFileMbitS.map((x) => x.toFixed(1)).join(', ')} Mbit/s including association set-up).`,
    '',
    `**Data.** ${COUNT} copies of the corpus CT \`693_UNCR.dcm\` (512×512, 16 bits, explicit VR little endian), new UIDs per copy (bench/study.ts): ${mb(study.bytes)} MB.`,
    `**PACS.** DCMTK \`storescp +B +xt -pm --fork -aet PACS\` (TCP_NODELAY=1) in \`${NS_B}\`: it accepts JPEG-LS lossless first (\`+xt\`) and writes what it receives bit for bit; \`--fork\` because the gateway opens two associations per destination by default. ` +
      'An object counts as delivered when storescp has finished writing it (its `--exec-on-reception` hook touches a marker file; with `+B` the file itself appears when reception starts).',
    '',
    `- **direct**: storescu (TCP_NODELAY=1, \`-R\`) in \`${NS_A}\` sends the ${COUNT} files straight to the PACS over the link; time = storescu wall time.`,
    `- **gateway**: the gateway runs in \`${NS_A}\` (\`forward: [{ host: ${IP_B}, compression: … }]\`, default 2 associations, \`forwarding.idleReleaseSeconds: 5\`, \`log.level: warn\`); storescu sends the files to it on 127.0.0.1; ` +
      'the gateway stores each object (fsync) and forwards it. Time = from the start of storescu to the last object written by the PACS. ' +
      `With \`compression: jpeg-ls\` the PACS receives JPEG-LS lossless (${JPEG_LS_LOSSLESS}): encoded while forwarding, or, with the default \`spool.compressAtRest\`, taken as already compressed in the spool. ` +
      'Three gateway configurations: the default spool with jpeg-ls (the target), jpeg-ls with compression at rest off (compression before forwarding alone), and `compression: none` with compression at rest off (plain store and forward, the control).',
    `- **checks** after every gateway run: \`pacs-edge status --json\` (in \`${NS_A}\`) shows 0 pending and 0 dead letters; the PACS holds exactly ${COUNT} files, all in JPEG-LS lossless (jpeg-ls runs) or explicit VR little endian (control); ` +
      'every delivered JPEG-LS file is decoded with `dcmdjpls` and its pixels compared with the source: identical in every run (a difference fails the bench).',
    `- **wire bytes**: \`${VETH_A}\` tx/rx byte counters (Ethernet frames) in \`${NS_A}\` over the timed interval.`,
    '',
    '| | time (s) | per run (s) | × direct | A → B on the wire (MB) | B → A (MB) | modality done (s) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...scenarios.map(row),
    '',
    '"modality done" is the storescu wall time: with the gateway, the modality is free once the gateway has stored the study locally, long before the PACS has it.',
    `Where the JPEG-LS objects came from (status counters, per run): default spool: ${origin('gateway-jpeg-ls')}. Compression at rest off: ${origin('gateway-jpeg-ls-no-at-rest')}.`,
    ...(noneDecoded.some((n) => n > 0) ? [`Control runs decoded ${noneDecoded.join(', ')} objects (expected 0 with compression at rest off).`] : []),
    '',
    '| Target | Measured | Result |',
    '| --- | --- | --- |',
    `| gateway with \`compression: jpeg-ls\` (default configuration otherwise): time to the PACS ≤ ${TARGET}× direct storescu over a 20 Mbit/s link | ${s2(medians['gateway-jpeg-ls'].seconds)} s vs ${s2(medians.direct.seconds)} s = **${s2(ratioJls)}×** | ${pass ? 'PASS' : 'FAIL'} |`,
    `| the same with \`spool.compressAtRest: false\` | ${s2(medians['gateway-jpeg-ls-no-at-rest'].seconds)} s = **${s2(ratio('gateway-jpeg-ls-no-at-rest'))}×** direct | for information |`,
    `| gateway with \`compression: none\` (control) | ${s2(medians['gateway-none'].seconds)} s = **${s2(ratio('gateway-none'))}×** direct | for information |`,
    ...(unexpected.length ? ['', `Gateway log lines at warn or above (besides the wildcard-caller warning): ${unexpected.length}; see the JSON.`] : []),
  ].join('\n');
  log(
    `${scenarios.map((sc) => `${sc} ${s2(medians[sc].seconds)} s (${s2(ratio(sc))}×)`).join(', ')}: ${pass ? 'PASS' : 'FAIL'} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  // The ≤ 0.35× line is an earlier issue's, not issue 17's: its table stays in this section.
  return { markdown: section, raw: result, targets: [] };
}

if (isMain(import.meta.url)) runStandalone('wan', () => runWanBench(wanOptionsFromEnv()), wanCleanupSync);
