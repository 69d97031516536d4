import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { type Child, echo, freePort, startChild, waitUntil } from './proc.js';

/** Wait for readiness; a receiver that never becomes ready is stopped before the error propagates. */
async function ready(what: string, child: Child, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  try {
    await waitUntil(what, probe, { child, timeoutMs });
  } catch (err) {
    await child.stop(2000);
    throw err;
  }
}

export const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const DCMJS_SCP = path.join(import.meta.dirname, 'dcmjs-dimse-scp.js');
export const ORTHANC = '/usr/sbin/Orthanc';

/** A receiver under test, listening on 127.0.0.1:port, started fresh for one scenario. */
export interface Receiver {
  kind: ReceiverKind;
  aeTitle: string;
  port: number;
  pid: number;
  child: Child;
  /** How many objects the receiver holds now (its own view: files on disk or its index). */
  storedCount: () => Promise<number>;
  /** Warnings/errors it logged (gateway only: pino level ≥ warn). */
  problems: () => string[];
  stop: () => Promise<void>;
  /** Orthanc only: GET a REST path (POST when a body is given), JSON; or GET its raw bytes. */
  rest?: (path: string, body?: string) => Promise<unknown>;
  restBytes?: (path: string) => Promise<Buffer>;
}

export type ReceiverKind = 'gateway' | 'storescp' | 'orthanc' | 'dcmjs-dimse';

export async function startReceiver(kind: ReceiverKind, dir: string, opts: { parallel?: boolean } = {}): Promise<Receiver> {
  mkdirSync(dir, { recursive: true });
  switch (kind) {
    case 'gateway':
      return startGateway(dir);
    case 'storescp':
      // Parallel senders get storescp --fork (one process per association), as a PACS serves
      // several modalities at once; alone, one process serves them one after another.
      return startStorescp(dir, { fork: opts.parallel === true });
    case 'orthanc':
      return startOrthanc(dir);
    case 'dcmjs-dimse':
      return startDcmjsDimse(dir);
  }
}

const countFiles = (dir: string, ext: string): number => readdirSync(dir).filter((f) => f.endsWith(ext)).length;

/**
 * The `Environment=` settings of the systemd unit (systemd/pacs-edge.service): the gateway is
 * measured as it runs when installed (e.g. MALLOC_ARENA_MAX).
 */
export function unitEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path.join(ROOT, 'systemd/pacs-edge.service'), 'utf8').split('\n')) {
    const m = /^Environment=([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/**
 * The pacs-edge gateway: fsync of each object (and of its directory entry) before C-STORE-RSP Success.
 * `extra` adds config (e.g. forward[]; a `spool` object replaces the default one); `opts.env` adds to
 * the gateway's environment (e.g. OPENSSL_ia32cap to mask CPU crypto instructions).
 */
export async function startGateway(dir: string, extra: Record<string, unknown> = {}, fixedPort?: number, opts: { env?: Record<string, string> } = {}): Promise<Receiver> {
  const port = fixedPort ?? (await freePort());
  const spoolDir = path.join(dir, 'spool');
  const config = {
    device: { id: 'edge-bench' },
    receive: { aeTitle: 'PACS_EDGE', host: '127.0.0.1', port, callers: [{ aeTitle: '*' }] },
    spool: { dir: spoolDir, minFreeBytes: '64MiB' },
    forward: [],
    log: { level: 'warn' },
    ...extra,
  };
  const configFile = path.join(dir, 'gateway.yaml');
  writeFileSync(configFile, stringify(config));
  const child = startChild(process.execPath, [CLI, 'run', '--config', configFile], { env: { ...process.env, ...unitEnvironment(), ...opts.env } });
  const problems: string[] = [];
  child.onLine((line) => {
    try {
      const l = JSON.parse(line) as { level?: string; msg?: string };
      if (l.level === 'warn' || l.level === 'error' || l.level === 'fatal') problems.push(line);
    } catch {
      if (line.trim()) problems.push(line);
    }
  });
  // With log.level "warn" the "gateway listening" line (info) is not printed: a C-ECHO is the readiness probe.
  await ready('gateway', child, () => echo(port, 'PACS_EDGE'));
  return {
    kind: 'gateway',
    aeTitle: 'PACS_EDGE',
    port,
    pid: child.pid,
    child,
    storedCount: async () => countFiles(path.join(spoolDir, 'objects'), '.dcm'),
    problems: () => problems,
    stop: async () => {
      const code = await child.stop();
      if (code !== 0) problems.push(`gateway exited with code ${code}`);
    },
  };
}

/** DCMTK storescp, bit-preserving; `fork`: one process per association (else they are served one at a time). No fsync. */
export async function startStorescp(dir: string, opts: { fork?: boolean } = {}): Promise<Receiver> {
  const port = await freePort();
  const out = path.join(dir, 'out');
  mkdirSync(out);
  const args = ['-od', out, '+B', '-pm', '+xa', ...(opts.fork ? ['--fork'] : []), String(port)];
  const child = startChild('storescp', args, { env: { ...process.env, TCP_NODELAY: '1' } });
  await ready('storescp', child, () => echo(port, 'STORESCP'));
  return {
    kind: 'storescp',
    aeTitle: 'STORESCP',
    port,
    pid: child.pid,
    child,
    storedCount: async () => readdirSync(out).length,
    problems: () => [],
    stop: async () => {
      await child.stop();
    },
  };
}

/** Debian's Orthanc with its built-in defaults (SyncStorageArea, SQLite index), no plugins, storage in `dir`. Also used by the tests as a second, full PACS. */
export async function startOrthanc(dir: string, extra: Record<string, unknown> = {}): Promise<Receiver> {
  const port = await freePort();
  const httpPort = await freePort();
  const storage = path.join(dir, 'storage');
  const config = {
    Name: 'bench',
    StorageDirectory: storage,
    IndexDirectory: storage,
    Plugins: [],
    DicomAet: 'ORTHANC',
    DicomPort: port,
    HttpPort: httpPort,
    DicomCheckCalledAet: false,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomAlwaysAllowStore: true,
    ...extra,
  };
  const configFile = path.join(dir, 'orthanc.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child = startChild(ORTHANC, [configFile], { env: { ...process.env, TCP_NODELAY: '1' } });
  const http = async (p: string, body?: string): Promise<unknown> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${p}`, { signal: AbortSignal.timeout(5000), ...(body === undefined ? {} : { method: 'POST', body }) });
    if (!res.ok) throw new Error(`Orthanc ${p}: HTTP ${res.status}`);
    return res.json();
  };
  await ready('Orthanc HTTP /system', child, async () => Boolean(await http('/system')), 60_000);
  await ready('Orthanc DICOM', child, () => echo(port, 'ORTHANC'));
  return {
    kind: 'orthanc',
    aeTitle: 'ORTHANC',
    port,
    pid: child.pid,
    child,
    storedCount: async () => ((await http('/statistics')) as { CountInstances: number }).CountInstances,
    rest: http,
    restBytes: async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${httpPort}${p}`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`Orthanc ${p}: HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    },
    problems: () => child.output().split('\n').filter((l) => /^E\d{4}/.test(l)),
    stop: async () => {
      await child.stop(30_000);
    },
  };
}

/** dcmjs-dimse 0.3.3 used as its README shows (see dcmjs-dimse-scp.ts). No fsync. */
async function startDcmjsDimse(dir: string): Promise<Receiver> {
  const port = await freePort();
  const out = path.join(dir, 'out');
  mkdirSync(out);
  const child = startChild(process.execPath, [DCMJS_SCP, '--port', String(port), '--out', out]);
  await ready('dcmjs-dimse SCP', child, () => echo(port, 'DCMJS'));
  return {
    kind: 'dcmjs-dimse',
    aeTitle: 'DCMJS',
    port,
    pid: child.pid,
    child,
    storedCount: async () => countFiles(out, '.dcm'),
    problems: () => child.output().split('\n').filter((l) => /error|failed [1-9]/i.test(l)),
    stop: async () => {
      await child.stop();
    },
  };
}
