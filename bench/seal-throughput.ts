/**
 * Sealing micro-benchmark (issue 17, "Receive path CPU"): MB/s of sealing and of opening a
 * spooled object in 64 KiB segments (src/security/sealed-file.ts), in each
 * `spool.encryption.profile`, on one thread, with the CPU's crypto instructions and without them.
 *
 * "Without" is this machine with the instructions masked from OpenSSL in a child process (the
 * same file, spawned with `--child`), which is how a board without them is approximated here:
 * - x86-64: `OPENSSL_ia32cap=~0x200000200000000:~0x20000000` clears AES-NI (CPUID.1:ECX bit
 *   25), PCLMULQDQ (bit 1) and SHA-NI (CPUID.7:EBX bit 29); AVX2 stays, which ChaCha20 uses.
 * - arm64: `OPENSSL_armcap=0x1` leaves NEON only (no AES, PMULL, SHA): a Cortex-A72 without the
 *   Cryptography Extension, as on a Raspberry Pi 4.
 * A real board's cores are slower than this machine's: the ratio between the rows, not the MB/s,
 * is what carries over.
 *
 * Timed in CPU time of this process (`process.cpuUsage`, user + system), not wall-clock: the
 * work is one thread's, and on a machine shared with other jobs wall-clock time measures the
 * others too. MB/s here is megabytes per CPU-second.
 *
 * Run alone: `node dist/bench/seal-throughput.js` prints the Markdown table (`--json`: the raw
 * figures). bench/run-all.ts calls {@link runSealBench}.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SEAL_PROFILES, type SealKey, type SealProfile, SealedReader, Sealer } from '../src/security/sealed-file.js';

/** Bytes per timed pass: one object of 32 MiB (512 segments). */
const OBJECT_BYTES = 32 * 1024 * 1024;
const SLICE = 64 * 1024;
/** Reads as the forwarder asks for them (src/spool/object-reader.ts: 1 MiB). */
const READ = 1024 * 1024;
const REPS = Math.max(3, Number(process.env.PACS_EDGE_BENCH_REPS ?? 5));

export const MASKS: Record<string, { env: string; value: string; what: string }> = {
  x64: { env: 'OPENSSL_ia32cap', value: '~0x200000200000000:~0x20000000', what: 'AES-NI, PCLMULQDQ and SHA-NI masked (OPENSSL_ia32cap)' },
  arm64: { env: 'OPENSSL_armcap', value: '0x1', what: 'AES, PMULL and SHA masked, NEON kept (OPENSSL_armcap=0x1)' },
};

type Row = { op: string; seal?: SealProfile; mbPerS: number[] };
interface Pass {
  /** What the child had masked; undefined: the instructions as the CPU has them. */
  masked: string | undefined;
  rows: Row[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (bytes: number, us: number) => bytes / 1e6 / (us / 1e6);
/** CPU microseconds of this process so far (user + system). */
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function keyOf(profile: SealProfile): SealKey {
  return { profile, kek: randomBytes(profile === 'gm' ? 48 : 32) };
}

/** Seal one object pushed in 64 KiB slices, as the spool writer receives it. */
function sealOnce(key: SealKey, plain: Buffer): { us: number; file: Buffer } {
  const t = cpuNow();
  const s = new Sealer(key);
  const parts: Buffer[] = [s.header];
  for (let off = 0; off < plain.length; off += SLICE) parts.push(...s.push(plain.subarray(off, off + SLICE)));
  parts.push(...s.final());
  const us = cpuNow() - t;
  return { us, file: Buffer.concat(parts) };
}

/** Open the whole object through SealedReader in 1 MiB reads, as a forwarder does. */
async function openOnce(key: SealKey, file: Buffer, plainSize: number): Promise<number> {
  const pread = async (buf: Buffer, position: number) => file.copy(buf, 0, position, Math.min(file.length, position + buf.length));
  const buf = Buffer.allocUnsafe(READ);
  const t = cpuNow();
  const r = await SealedReader.open(key, file.length, pread);
  let pos = 0;
  while (pos < plainSize) pos += await r.read(buf, pos);
  return cpuNow() - t;
}

/** The figures of this process (with whatever OpenSSL sees of the CPU). */
async function measure(): Promise<Row[]> {
  const plain = randomBytes(OBJECT_BYTES);
  const rows: Row[] = [];
  for (const profile of SEAL_PROFILES) {
    const key = keyOf(profile);
    const seal: number[] = [];
    const open: number[] = [];
    sealOnce(key, plain.subarray(0, 4 * SLICE)); // warm-up
    for (let i = 0; i < REPS; i++) {
      const { us, file } = sealOnce(key, plain);
      seal.push(mbps(OBJECT_BYTES, us));
      open.push(mbps(OBJECT_BYTES, await openOnce(key, file, OBJECT_BYTES)));
    }
    rows.push({ op: 'seal', seal: profile, mbPerS: seal }, { op: 'open', seal: profile, mbPerS: open });
  }
  // The per-object SHA-256 the spool computes besides (a reference: issue 17 asks whether it is still needed).
  const sha: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = cpuNow();
    const h = createHash('sha256');
    for (let off = 0; off < plain.length; off += SLICE) h.update(plain.subarray(off, off + SLICE));
    h.digest();
    sha.push(mbps(OBJECT_BYTES, cpuNow() - t));
  }
  rows.push({ op: 'sha256', mbPerS: sha });
  return rows;
}

/** This file again, as a child with the instructions masked; resolves with its rows. */
function maskedChild(mask: { env: string; value: string }): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child'], { env: { ...process.env, [mask.env]: mask.value }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`seal-throughput child (${mask.env}=${mask.value}) exited ${code}`));
      try {
        resolve(JSON.parse(out) as Row[]);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

function markdown(passes: Pass[]): string {
  const label = (r: Row) => (r.seal ? `${r.op} (${r.seal})` : 'SHA-256 (reference)');
  const head = ['| Operation, 32 MiB object, 64 KiB segments | ' + passes.map((p) => (p.masked ? `MB/CPU-s, ${p.masked}` : 'MB/CPU-s, native')).join(' | ') + ' |', `| --- | ${passes.map(() => '---:').join(' | ')} |`];
  const rows = passes[0]!.rows.map((r, i) => `| ${label(r)} | ${passes.map((p) => Math.round(median(p.rows[i]!.mbPerS))).join(' | ')} |`);
  return [
    `Sealing throughput on one thread in MB per CPU-second (bench/seal-throughput.ts; medians of ${REPS}; ${process.arch}, Node ${process.version}, OpenSSL ${process.versions.openssl}). ` +
      'Seal: Sealer fed 64 KiB slices; open: SealedReader in 1 MiB reads (segments authenticated before use).',
    '',
    ...head,
    ...rows,
  ].join('\n');
}

/** The benchmark: native figures in this process, masked ones from a child (where the architecture allows). */
export async function runSealBench(): Promise<{ markdown: string; raw: unknown }> {
  const passes: Pass[] = [{ masked: undefined, rows: await measure() }];
  const mask = MASKS[process.arch];
  if (mask) passes.push({ masked: mask.what, rows: await maskedChild(mask) });
  return { markdown: markdown(passes), raw: { arch: process.arch, node: process.version, openssl: process.versions.openssl, reps: REPS, objectBytes: OBJECT_BYTES, passes } };
}

const main = process.argv[1] === fileURLToPath(import.meta.url);
if (main && process.argv.includes('--child')) {
  measure()
    .then((rows) => process.stdout.write(JSON.stringify(rows)))
    .catch((err: unknown) => {
      console.error(`[seal-throughput child] ${(err as Error).stack ?? err}`);
      process.exit(1);
    });
} else if (main) {
  runSealBench()
    .then((r) => console.log(process.argv.includes('--json') ? JSON.stringify(r.raw, null, 2) : r.markdown))
    .catch((err: unknown) => {
      console.error(`[seal-throughput] failed: ${(err as Error).stack ?? err}`);
      process.exit(1);
    });
}
