import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { topLevelElements } from '../../src/dicom/elements.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { readSpoolFile } from './spool-files.js';
import { freePort, run, type RunResult, waitFor } from './processes.js';

/**
 * DCMTK as the real peer: `storescu`/`echoscu` are the modality, `storescp` the reference SCP.
 * `make test` installs Debian's dcmtk when it is missing.
 */
export interface StorescuResult extends RunResult {
  /** Message IDs that got a Success response, in order. storescu numbers messages 1, 2, … per file. */
  acked: number[];
  /** Message ID → status text as storescu printed it ("Success", "Refused: OutOfResources" …). */
  responses: Map<number, string>;
  /** Message ID → the raw status hex, when storescu printed it. */
  statuses: Map<number, number>;
}

export async function storescu(opts: {
  port: number;
  files: string[];
  calledAe?: string;
  callingAe?: string;
  extraArgs?: string[];
  timeoutMs?: number;
  host?: string;
}): Promise<StorescuResult> {
  const args = [
    '-d', // debug: prints each response's status
    '-R', // propose only the SOP classes of the files (compressed syntaxes need an -x option: storescuArgsFor)
    '-aet', opts.callingAe ?? 'STORESCU',
    '-aec', opts.calledAe ?? 'PACS_EDGE',
    ...(opts.extraArgs ?? []),
    opts.host ?? '127.0.0.1', String(opts.port),
    ...opts.files,
  ];
  // TCP_NODELAY=1 makes Debian's DCMTK disable Nagle on its side too.
  const r = await run('storescu', args, { timeoutMs: opts.timeoutMs ?? 120_000, env: { TCP_NODELAY: '1' } });
  return { ...r, ...parseStorescu(r.stdout + r.stderr) };
}

/**
 * Parse `storescu -d` output: "Sending Store Request (MsgID N, …)" then, for its response,
 * "DIMSE Status : 0xXXXX: text". A message counts as acknowledged when its status is Success
 * or a warning (0xBxxx): the SCP has then taken responsibility for the object.
 */
export function parseStorescu(out: string): { acked: number[]; responses: Map<number, string>; statuses: Map<number, number> } {
  const responses = new Map<number, string>();
  const statuses = new Map<number, number>();
  let current: number | undefined;
  let awaiting = false;
  for (const line of out.split('\n')) {
    const send = /Sending Store Request.*MsgID (\d+)/.exec(line);
    if (send) {
      current = Number(send[1]);
      awaiting = false;
    }
    if (/Received Store Response/.test(line)) awaiting = true;
    const st = /DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})(?::\s*(.*))?/.exec(line);
    if (st && awaiting && current !== undefined) {
      statuses.set(current, parseInt(st[1]!, 16));
      responses.set(current, (st[2] ?? '').trim());
      awaiting = false;
    }
  }
  const acked = [...statuses.entries()].filter(([, s]) => s === 0 || (s & 0xf000) === 0xb000).map(([id]) => id);
  return { acked, responses, statuses };
}

export async function echoscu(port: number, opts: { calledAe?: string; callingAe?: string } = {}): Promise<RunResult> {
  return run('echoscu', ['-v', '-aet', opts.callingAe ?? 'ECHOSCU', '-aec', opts.calledAe ?? 'PACS_EDGE', '127.0.0.1', String(port)], { timeoutMs: 30_000 });
}

/**
 * DCMTK storescp in bit-preserving mode: what it writes is exactly what it received.
 * `fork` serves associations in parallel (a real PACS does); `promiscuous: false` refuses
 * SOP classes DCMTK does not know (a PACS that rejects what it cannot store); `-v` output goes
 * to `log()` so tests can see the order objects arrived in.
 */
export async function startStorescp(
  dir: string,
  aeTitle = 'STORESCP',
  opts: {
    fork?: boolean;
    promiscuous?: boolean;
    port?: number;
    uniqueFilenames?: boolean;
    /** Transfer syntax options; default `+xa` (all). [] is storescp's default: uncompressed only. */
    syntaxes?: string[];
    /** TLS: storescp's own `+tls KEY CERT +cf CA`, and the client certificate its readiness check presents. */
    tls?: { server: string[]; client: string[] };
  } = {},
): Promise<{ port: number; proc: ChildProcess; stop: () => Promise<void>; log: () => string }> {
  const port = opts.port ?? (await freePort());
  // -uf names files by SOP Instance UID (a re-send overwrites); +uf gives every reception its own file.
  const args = ['-v', '+B', ...(opts.syntaxes ?? ['+xa']), '-aet', aeTitle, '-od', dir, opts.uniqueFilenames ? '+uf' : '-uf', '-fe', '.dcm'];
  if (opts.promiscuous !== false) args.push('-pm');
  if (opts.fork) args.push('--fork');
  if (opts.tls) args.push(...opts.tls.server);
  const proc = spawn('storescp', [...args, String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TCP_NODELAY: '1' } });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  // Wait until it accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run('echoscu', [...(opts.tls?.client ?? []), '-aec', aeTitle, '127.0.0.1', String(port)], { timeoutMs: 5000 });
    if (r.code === 0) break;
    if (Date.now() > deadline) throw new Error('storescp did not start');
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    port,
    proc,
    log: () => out,
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await new Promise((res) => proc.once('exit', res));
    },
  };
}

/**
 * The `n` .dcm files a storescp wrote in `dir`, once every one of them is whole: storescp writes
 * a file while it receives, so one that has appeared may still be growing. Whole = its Part 10
 * header and every top-level element parse to the end of the file, and its size did not change
 * between two looks. Throws (via waitFor) when they do not all arrive in time.
 */
const NOT_WALKABLE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']);

export async function wholeFilesAt(dir: string, n: number, opts: { what?: string; timeoutMs?: number } = {}): Promise<string[]> {
  let sizes = new Map<string, number>();
  return waitFor(
    () => {
      const files = readdirSync(dir).filter((f) => f.endsWith('.dcm')).map((f) => path.join(dir, f));
      if (files.length !== n) return undefined;
      const now = new Map(files.map((f) => [f, statSync(f).size]));
      const stable = files.every((f) => sizes.get(f) === now.get(f));
      sizes = now;
      if (!stable) return undefined;
      for (const f of files) {
        const b = readFileSync(f);
        const h = readPart10Header(b);
        if (!h) return undefined;
        // The element walk reads explicit VR little endian (encapsulated included); other
        // encodings rely on the header and the steady size.
        if (NOT_WALKABLE.has(h.transferSyntaxUid)) continue;
        try {
          topLevelElements(b.subarray(h.datasetOffset));
        } catch {
          return undefined;
        }
      }
      return files;
    },
    { what: opts.what ?? `${n} whole files in ${dir}`, timeoutMs: opts.timeoutMs ?? 20_000 },
  );
}

/** The data set bytes of a Part 10 file (everything after the File Meta group); a spool file is decrypted first. */
export function datasetBytes(file: string | Buffer): Buffer {
  const buf = typeof file === 'string' ? readSpoolFile(file) : file;
  const h = readPart10Header(buf);
  if (!h) throw new Error('not a Part 10 file');
  return buf.subarray(h.datasetOffset);
}

/**
 * The storescu option that makes it propose a compressed file's own transfer syntax (first,
 * so it is sent as it is). Without one, storescu proposes only uncompressed syntaxes and
 * decompresses, or fails where it has no decoder. undefined: uncompressed, storescu's default.
 */
const STORESCU_SYNTAX_OPTION: Record<string, string> = {
  '1.2.840.10008.1.2.1.99': '-xd',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.57': '-xs',
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.4.100': '-xm',
  '1.2.840.10008.1.2.4.101': '-xh',
  '1.2.840.10008.1.2.4.102': '-xn',
  '1.2.840.10008.1.2.4.103': '-xl',
  '1.2.840.10008.1.2.4.104': '-x2',
  '1.2.840.10008.1.2.4.105': '-x3',
  '1.2.840.10008.1.2.4.106': '-xo',
  '1.2.840.10008.1.2.4.107': '-x4',
  '1.2.840.10008.1.2.4.108': '-x5',
  '1.2.840.10008.1.2.5': '-xr',
};
const UNCOMPRESSED = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);

/**
 * The extra storescu arguments that send a file in its own transfer syntax: [] for uncompressed,
 * e.g. ['-xt'] for JPEG-LS; undefined when storescu 3.6.7 cannot propose it (or it is not Part 10).
 */
export function storescuArgsFor(file: string): string[] | undefined {
  const h = readPart10Header(readFileSync(file));
  if (!h) return undefined;
  if (UNCOMPRESSED.has(h.transferSyntaxUid)) return [];
  const opt = STORESCU_SYNTAX_OPTION[h.transferSyntaxUid];
  return opt ? [opt] : undefined;
}
