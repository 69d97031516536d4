import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, run, waitFor } from './processes.js';

/** Debian's Orthanc (package `orthanc`, installed by `make deps`). */
export const ORTHANC = '/usr/sbin/Orthanc';
/** How to get it, for test/helpers/requirements.ts. */
export const ORTHANC_HOW = 'apt-get install orthanc; make deps installs it';

/** A running Orthanc: a full PACS for the end-to-end tests, reached over DICOM and its REST API. */
export interface Orthanc {
  aeTitle: string;
  /** Its DICOM port. */
  port: number;
  /** GET a REST path as JSON (POST when a body is given). */
  rest: (p: string, body?: string) => Promise<unknown>;
  /** GET a REST path's raw bytes (a preview PNG, a stored file). */
  restBytes: (p: string) => Promise<Buffer>;
  /** How many instances it holds (its /statistics). */
  storedCount: () => Promise<number>;
  stop: () => Promise<void>;
}

/**
 * Orthanc with its built-in defaults (SQLite index, storage in `dir`, no plugins) on two fresh
 * loopback ports, accepting any caller; `extra` adds or overrides configuration keys (e.g.
 * `OverwriteInstances`, `DicomModalities`). Resolves once both its REST API and C-ECHO answer.
 */
export async function startOrthanc(dir: string, extra: Record<string, unknown> = {}): Promise<Orthanc> {
  const port = await freePort();
  const httpPort = await freePort();
  const storage = path.join(dir, 'storage');
  const config = {
    Name: 'pacs-edge-test',
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
  const proc: ChildProcess = spawn(ORTHANC, [configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TCP_NODELAY: '1' } });
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-65536));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const stop = async () => {
    if (gone()) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  };

  const get = async (p: string, body?: string): Promise<Response> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${p}`, { signal: AbortSignal.timeout(10_000), ...(body === undefined ? {} : { method: 'POST', body }) });
    if (!res.ok) throw new Error(`Orthanc ${p}: HTTP ${res.status}`);
    return res;
  };
  const rest = async (p: string, body?: string) => (await get(p, body)).json() as Promise<unknown>;
  try {
    await waitFor(
      async () => {
        if (gone()) throw new Error(`Orthanc exited while starting; output:\n${output.slice(-3000)}`);
        if (!(await rest('/system').catch(() => undefined))) return undefined;
        return (await run('echoscu', ['-aec', 'ORTHANC', '127.0.0.1', String(port)], { timeoutMs: 10_000 })).code === 0 || undefined;
      },
      { what: `Orthanc on DICOM port ${port} and HTTP port ${httpPort}`, timeoutMs: 60_000, intervalMs: 200 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    aeTitle: 'ORTHANC',
    port,
    rest,
    restBytes: async (p) => Buffer.from(await (await get(p)).arrayBuffer()),
    storedCount: async () => ((await rest('/statistics')) as { CountInstances: number }).CountInstances,
    stop,
  };
}
