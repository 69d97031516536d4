import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { VERIFICATION_SOP_CLASS } from '../../src/dicom/sop-classes.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { ScuAssociation } from '../../src/forward/scu.js';
import { controlGet } from '../../src/health/control-server.js';
import { datasetBytes } from '../helpers/dcmtk.js';
import { run } from '../helpers/processes.js';

/**
 * What the fault tests (test/faults/) share: a seeded PRNG whose seed is printed and can be
 * replayed, a C-ECHO probe, the gateway's status, a storescp that can be SIGKILLed together
 * with its forked children, and the comparison of what the PACS holds with what was sent.
 */

/** The seed of this run: `PACS_EDGE_FAULT_SEED` when set (to replay a run), else a fresh one. */
export function faultSeed(): number {
  const env = process.env.PACS_EDGE_FAULT_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0) throw new Error(`PACS_EDGE_FAULT_SEED must be a non-negative integer, not ${env}`);
    return n >>> 0;
  }
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** mulberry32: small, fast, good enough to spread fault instants; same seed, same sequence. */
export function prng(seed: number): { next: () => number; between: (lo: number, hi: number) => number } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, between: (lo, hi) => lo + (hi - lo) * next() };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One C-ECHO to `port` (gateway's own SCU, no process spawned); true on Success. */
export async function echoOk(port: number, calledAeTitle: string): Promise<boolean> {
  let a: ScuAssociation | undefined;
  try {
    a = await ScuAssociation.open({
      host: '127.0.0.1',
      port,
      callingAeTitle: 'FAULT_PROBE',
      calledAeTitle,
      contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian] }],
      maxPduLength: 16384,
      connectTimeoutMs: 2000,
      acseTimeoutMs: 2000,
      dimseTimeoutMs: 2000,
    });
    const ctx = a.contextFor(VERIFICATION_SOP_CLASS, TS.ExplicitVRLittleEndian) ?? a.contextFor(VERIFICATION_SOP_CLASS, TS.ImplicitVRLittleEndian);
    if (ctx === undefined) return false;
    return (await a.echo(ctx)) === 0;
  } catch {
    return false;
  } finally {
    await a?.release().catch(() => a?.abort());
  }
}

export interface GatewayStatus {
  spool: { compressAtRest?: { compressed: number } };
  destinations: { name: string; pending: number; deadLetter: number; sent?: number; state?: string; retries?: number }[];
}

/** The running gateway's status over its control socket (undefined when it does not answer). */
export async function gatewayStatus(spoolDir: string): Promise<GatewayStatus | undefined> {
  return (await controlGet(path.join(spoolDir, 'control.sock'), '/status').catch(() => undefined)) as GatewayStatus | undefined;
}

/**
 * DCMTK storescp (bit-preserving, `--fork`, one file per reception: `+uf`) started as the leader
 * of its own process group, so that `kill()` SIGKILLs the listener *and* the children serving
 * associations, as a PACS host that crashes would. (A SIGKILL of the listener alone leaves its
 * forked children finishing their receptions.)
 */
export async function startKillableStorescp(dir: string, aeTitle: string, port: number): Promise<{ proc: ChildProcess; kill: () => Promise<void>; stop: () => Promise<void> }> {
  const args = ['+B', '+xa', '-aet', aeTitle, '-od', dir, '+uf', '-fe', '.dcm', '-pm', '--fork', String(port)];
  const proc = spawn('storescp', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, TCP_NODELAY: '1' } });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-proc.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`storescp exited at start: ${err}`);
    const r = await run('echoscu', ['-aec', aeTitle, '127.0.0.1', String(port)], { timeoutMs: 5000 });
    if (r.code === 0) break;
    if (Date.now() > deadline) {
      group('SIGKILL');
      throw new Error(`storescp did not start on port ${port}: ${err}`);
    }
    await sleep(50);
  }
  return {
    proc,
    kill: async () => {
      group('SIGKILL');
      await exited;
    },
    stop: async () => {
      group('SIGKILL');
      await exited;
    },
  };
}

export interface PacsContents {
  /** SOP Instance UID → complete receptions whose data set equals the sent one. */
  complete: Map<string, number>;
  /** Files cut short by a killed reception: their data set is a strict prefix of the sent one (or no File Meta yet). */
  partial: number;
  /** Files for an instance that was never sent (must be none). */
  foreign: string[];
  /** Files whose data set is neither the sent one nor a prefix of it (must be none). */
  differing: string[];
}

/**
 * Sort what storescp wrote (one file per reception) against what the modality sent
 * (`sent`: SOP Instance UID → fixture file). storescp in bit-preserving mode writes the File Meta
 * and then each data PDV as it arrives, so a reception killed part-way leaves a file that is
 * a *prefix* of the complete one. Such a file is not an object the PACS stored (it never
 * answered C-STORE for it; the gateway retried) and is only counted; anything else that is not
 * byte-identical to what was sent is a damaged delivery.
 */
export function pacsContents(dir: string, sent: ReadonlyMap<string, string>): PacsContents {
  const out: PacsContents = { complete: new Map(), partial: 0, foreign: [], differing: [] };
  const cache = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const buf = readFileSync(file);
    const h = readPart10Header(buf);
    if (!h) {
      out.partial++;
      continue;
    }
    const src = sent.get(h.sopInstanceUid);
    if (!src) {
      out.foreign.push(name);
      continue;
    }
    let want = cache.get(src);
    if (!want) cache.set(src, (want = datasetBytes(src)));
    const got = buf.subarray(h.datasetOffset);
    if (got.equals(want)) out.complete.set(h.sopInstanceUid, (out.complete.get(h.sopInstanceUid) ?? 0) + 1);
    else if (got.length < want.length && want.subarray(0, got.length).equals(got)) out.partial++;
    else out.differing.push(name);
  }
  return out;
}

/**
 * A slow link to the PACS: a loopback TCP proxy that passes what the gateway sends on at no
 * more than `bytesPerSecond` (all connections together), and the answers back at once. With
 * the PACS slower than the modality, objects wait in the spool long enough to be compressed at
 * rest, as they do on a real WAN. A connection cut on one side is cut on the other (a SIGKILLed
 * gateway leaves the PACS with a reset association, as without the proxy).
 */
export async function startSlowLink(targetPort: number, bytesPerSecond: number): Promise<{ port: number; setRate: (bytesPerSecond: number) => void; close: () => Promise<void> }> {
  let rate = bytesPerSecond;
  let free = 0; // when the link has sent everything queued so far (performance.now() ms)
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    client.setNoDelay(true);
    sockets.add(client).add(up);
    const cut = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', cut).on('close', cut);
    up.on('error', cut).on('close', cut);
    client.on('close', () => sockets.delete(client));
    up.on('close', () => sockets.delete(up));
    up.on('data', (d: Buffer) => client.write(d));
    up.on('end', () => client.end());
    const later = (fn: () => void) => setTimeout(fn, Math.max(0, free - performance.now()));
    client.on('data', (d: Buffer) => {
      client.pause();
      free = Math.max(free, performance.now()) + (d.length / rate) * 1000;
      later(() => {
        if (!up.destroyed) up.write(d);
        client.resume();
      });
    });
    client.on('end', () => later(() => up.end()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** A new rate from now on (`Infinity`: as fast as loopback). */
    setRate: (r: number) => {
      rate = r;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
