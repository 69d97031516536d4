/**
 * One 1 GiB object (`make bench`, bench/run-all.ts; runs alone too: `node dist/bench/big-object-bench.js`):
 * issue 17's "peak RSS ≤ 200 MB while receiving a 1 GiB object". A multi-frame object is built
 * in the temp dir from the corpus CT (its 512×512×16-bit frame repeated, each copy stamped with
 * its frame number so no two frames are equal) under new UIDs, sent by DCMTK storescu to the
 * gateway (spool encryption aes-256-gcm) while its destination is down; the gateway's VmHWM is
 * read when storescu is done. Then the destination (storescp +B) is started and the bench waits
 * until the gateway has delivered it: the data set storescp wrote must hash equal to the one
 * sent — the object was stored whole. The file is deleted at the end.
 *
 * Knobs: PACS_EDGE_BIG_MIB (default 1024), PACS_EDGE_BIG_REPS (default 3; QUICK: 64 MiB, 1).
 */
import { createHash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { topLevelElements } from '../src/dicom/elements.js';
import { buildPart10Header, readPart10Header } from '../src/dicom/file-meta.js';
import { cpuSecondsOf, echo, freePort, memoryOf, run, startChild, waitUntil } from './proc.js';
import { ROOT, startGateway } from './receivers.js';
import { envInt, isMain, QUICK, runStandalone } from './standalone.js';
import { atMost, type BenchSection, median, reported } from './targets.js';

export const TARGET_RSS_MB = 200;
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(elem, 2);
  h.write(vr, 4, 'latin1');
  h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}

const padded = (s: string, pad: string): Buffer => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');

export interface BigObject {
  file: string;
  bytes: number;
  frames: number;
  frameBytes: number;
  /** SHA-256 of the data set (what follows the File Meta). */
  datasetSha256: string;
  datasetBytes: number;
}

/**
 * A multi-frame Explicit VR LE object of about `mib` MiB from an uncompressed single-frame template:
 * the template's attributes (group lengths dropped), new Study/Series/SOP Instance UIDs, Number of
 * Frames added, Pixel Data = the frame repeated with its index in the first two bytes.
 */
export function buildBigObject(template: string, file: string, mib: number): BigObject {
  const src = readFileSync(template);
  const h = readPart10Header(src);
  if (!h || h.transferSyntaxUid !== EXPLICIT_LE) throw new Error(`${template}: need an Explicit VR Little Endian template`);
  const ds = src.subarray(h.datasetOffset);
  const els = topLevelElements(ds);
  const px = els.find((e) => e.tag === 0x7fe00010);
  if (!px || px.length === undefined) throw new Error(`${template}: no native Pixel Data`);
  const frame = ds.subarray(px.valueOffset, px.valueOffset + px.length);
  const frames = Math.max(1, Math.floor((mib * 2 ** 20) / frame.length));
  const root = `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
  const sop = `${root}.3`;
  const replace = new Map<number, Buffer>([
    [0x00080018, element(0x0008, 0x0018, 'UI', padded(sop, '\0'))],
    [0x0020000d, element(0x0020, 0x000d, 'UI', padded(`${root}.1`, '\0'))],
    [0x0020000e, element(0x0020, 0x000e, 'UI', padded(`${root}.2`, '\0'))],
    [0x00280008, element(0x0028, 0x0008, 'IS', padded(String(frames), ' '))],
  ]);
  const parts: { tag: number; bytes: Buffer }[] = [];
  for (const e of els) {
    if (e.tag === 0x7fe00010 || (e.tag & 0xffff) === 0 || replace.has(e.tag)) continue;
    parts.push({ tag: e.tag, bytes: ds.subarray(e.start, e.end) });
  }
  for (const [tag, bytes] of replace) parts.push({ tag, bytes });
  parts.sort((a, b) => a.tag - b.tag);
  const pxHeader = Buffer.alloc(12);
  pxHeader.writeUInt16LE(0x7fe0, 0);
  pxHeader.writeUInt16LE(0x0010, 2);
  pxHeader.write('OW', 4, 'latin1');
  pxHeader.writeUInt32LE(frames * frame.length, 8);
  const head = Buffer.concat([...parts.map((p) => p.bytes), pxHeader]);
  const meta = buildPart10Header({ sopClassUid: h.sopClassUid, sopInstanceUid: sop, transferSyntaxUid: EXPLICIT_LE });
  const hash = createHash('sha256').update(head);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, meta);
    writeSync(fd, head);
    const f = Buffer.from(frame);
    for (let i = 0; i < frames; i++) {
      f.writeUInt16LE(i & 0xffff, 0);
      writeSync(fd, f);
      hash.update(f);
    }
  } finally {
    closeSync(fd);
  }
  const datasetBytes = head.length + frames * frame.length;
  return { file, bytes: meta.length + datasetBytes, frames, frameBytes: frame.length, datasetSha256: hash.digest('hex'), datasetBytes };
}

/** SHA-256 of a Part 10 file's data set, streamed, and its length. */
async function datasetHash(file: string): Promise<{ sha256: string; bytes: number }> {
  const fd = openSync(file, 'r');
  const first = Buffer.alloc(64 * 1024);
  const n = readSync(fd, first, 0, first.length, 0);
  closeSync(fd);
  const h = readPart10Header(first.subarray(0, n));
  if (!h) throw new Error(`${file}: not a Part 10 file`);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { start: h.datasetOffset, highWaterMark: 4 * 2 ** 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

interface Rep {
  rep: number;
  sendSeconds: number;
  mbPerSec: number;
  gatewayCpuSeconds: number;
  peakRssMbReceive: number;
  peakRssMbAfterForward: number | null;
  stored: boolean;
  delivered: boolean;
  error?: string;
}

async function once(obj: BigObject, rep: number, work: string, log: (s: string) => void): Promise<Rep> {
  const dir = mkdtempSync(path.join(work, `rep${rep}-`));
  const pacsPort = await freePort();
  mkdirSync(path.join(dir, 'gw'));
  const gw = await startGateway(path.join(dir, 'gw'), {
    spool: { dir: path.join(dir, 'gw', 'spool'), minFreeBytes: '64MiB', compressAtRest: false, encryption: { profile: 'aes-256-gcm' } },
    forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }],
    forwarding: { retryBaseSeconds: 1, retryMaxSeconds: 2 },
  });
  const out: Rep = { rep, sendSeconds: 0, mbPerSec: 0, gatewayCpuSeconds: 0, peakRssMbReceive: 0, peakRssMbAfterForward: null, stored: false, delivered: false };
  let pacs: ReturnType<typeof startChild> | undefined;
  try {
    const cpu0 = cpuSecondsOf(gw.pid);
    const t = performance.now();
    const r = await run('storescu', ['-R', '-aet', 'BENCH', '-aec', gw.aeTitle, '127.0.0.1', String(gw.port), obj.file], { timeoutMs: 15 * 60_000, env: { TCP_NODELAY: '1' } });
    out.sendSeconds = (performance.now() - t) / 1000;
    out.gatewayCpuSeconds = cpuSecondsOf(gw.pid) - cpu0;
    out.peakRssMbReceive = memoryOf(gw.pid).hwm / 1e6;
    out.mbPerSec = obj.bytes / 1e6 / out.sendSeconds;
    if (r.code !== 0 || /^E:/m.test(r.stdout + r.stderr)) throw new Error(`storescu failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    out.stored = (await gw.storedCount()) === 1;
    if (!out.stored) throw new Error(`gateway holds ${await gw.storedCount()} objects, expected 1`);
    // Correctness, untimed: the destination comes up and must receive the very data set that was sent.
    const pacsOut = path.join(dir, 'pacs');
    mkdirSync(pacsOut);
    pacs = startChild('storescp', ['-aet', 'PACS', '-od', pacsOut, '+B', '-pm', '+xa', String(pacsPort)], { env: { ...process.env, TCP_NODELAY: '1' } });
    await waitUntil('storescp', () => echo(pacsPort, 'PACS'), { child: pacs });
    // Complete once storescp's file has the whole data set and the gateway no longer owes it.
    await waitUntil(
      'delivery of the big object',
      async () => {
        const files = readdirSync(pacsOut);
        if (files.length !== 1 || statSync(path.join(pacsOut, files[0]!)).size < obj.datasetBytes) return false;
        const s = await run(process.execPath, [path.join(ROOT, 'dist/src/cli/main.js'), 'status', '--config', path.join(dir, 'gw', 'gateway.yaml'), '--json'], { timeoutMs: 20_000 });
        const d = (JSON.parse(s.stdout) as { destinations: { name: string; pending: number }[] }).destinations.find((x) => x.name === 'pacs');
        return d?.pending === 0;
      },
      { timeoutMs: 10 * 60_000 },
    );
    out.peakRssMbAfterForward = memoryOf(gw.pid).hwm / 1e6;
    const got = await datasetHash(path.join(pacsOut, readdirSync(pacsOut)[0]!));
    out.delivered = got.sha256 === obj.datasetSha256 && got.bytes === obj.datasetBytes;
    if (!out.delivered) out.error = `delivered data set differs (${got.bytes} bytes, sha256 ${got.sha256.slice(0, 12)}… vs ${obj.datasetBytes}, ${obj.datasetSha256.slice(0, 12)}…)`;
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    await gw.stop();
    await pacs?.stop();
    rmSync(dir, { recursive: true, force: true });
    await run('sync', [], { timeoutMs: 120_000 });
  }
  log(
    `[big-object] rep ${rep}: sent ${(obj.bytes / 2 ** 20).toFixed(0)} MiB in ${out.sendSeconds.toFixed(2)} s, gateway peak RSS ${out.peakRssMbReceive.toFixed(1)} MB receiving` +
      `${out.peakRssMbAfterForward === null ? '' : `, ${out.peakRssMbAfterForward.toFixed(1)} MB after forwarding`}; stored ${out.stored}, delivered intact ${out.delivered}${out.error ? ` (${out.error})` : ''}`,
  );
  return out;
}

export function bigObjectOptionsFromEnv(): { mib: number; reps: number } {
  return { mib: envInt('PACS_EDGE_BIG_MIB', QUICK ? 64 : 1024), reps: envInt('PACS_EDGE_BIG_REPS', QUICK ? 1 : 3) };
}

export async function runBigObjectBench(opts: { mib: number; reps: number; log?: (s: string) => void }): Promise<BenchSection> {
  const log = opts.log ?? console.log;
  const work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-big-'));
  const started = Date.now();
  try {
    const template = path.join(process.env.PACS_EDGE_CORPUS ?? path.resolve(ROOT, '../shared/corpus/public'), '693_UNCR.dcm');
    const obj = buildBigObject(template, path.join(work, 'big.dcm'), opts.mib);
    log(`[big-object] built ${obj.file}: ${obj.frames} frames of ${obj.frameBytes} bytes, ${(obj.bytes / 2 ** 20).toFixed(1)} MiB`);
    const reps: Rep[] = [];
    for (let i = 1; i <= opts.reps; i++) reps.push(await once(obj, i, work, log));
    const ok = reps.filter((r) => r.stored && r.delivered && !r.error);
    const peak = ok.length ? Math.max(...ok.map((r) => r.peakRssMbReceive)) : null;
    const peakFwd = ok.length ? Math.max(...ok.map((r) => r.peakRssMbAfterForward ?? 0)) : null;
    const sizeMiB = (obj.bytes / 2 ** 20).toFixed(1);
    const raw = { mib: opts.mib, bytes: obj.bytes, frames: obj.frames, frameBytes: obj.frameBytes, datasetSha256: obj.datasetSha256, reps, durationSeconds: Math.round((Date.now() - started) / 1000) };
    const f = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(1));
    const markdown = [
      '## One 1 GiB object',
      '',
      `One multi-frame object of ${sizeMiB} MiB (${obj.bytes} bytes: the corpus CT \`693_UNCR.dcm\`'s ${obj.frameBytes}-byte frame repeated ${obj.frames} times, each copy stamped with its frame number; Number of Frames added; new Study, Series and SOP Instance UIDs; Explicit VR Little Endian) written to the temp dir, sent by \`storescu -R\` (one association) to a fresh gateway (\`spool.encryption.profile: aes-256-gcm\`, \`spool.compressAtRest: false\`, one destination with \`compression: none\`, down while it receives), ${opts.reps} time(s). ` +
        "Peak RSS is the gateway's VmHWM read when storescu is done (after its C-STORE Success, so after the fsync). Then, untimed, the destination (DCMTK `storescp +B`) is started and the bench waits until the gateway reports nothing pending and storescp's file holds the whole data set: its SHA-256 must equal the data set sent (stored whole, delivered whole). The object is deleted at the end.",
      '',
      '| Run | send (s) | MB/s | gateway CPU (s) | peak RSS receiving (MB) | peak RSS after forwarding it (MB) | stored | delivered intact |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...reps.map((r) => `| ${r.rep} | ${r.sendSeconds.toFixed(2)} | ${r.mbPerSec.toFixed(1)} | ${r.gatewayCpuSeconds.toFixed(2)} | ${r.peakRssMbReceive.toFixed(1)} | ${f(r.peakRssMbAfterForward)} | ${r.stored ? 'yes' : 'no'} | ${r.delivered ? 'yes' : `no${r.error ? `: ${r.error}` : ''}`} |`),
      '',
      `Median send time ${f(median(reps.map((r) => r.sendSeconds)))} s.`,
    ].join('\n');
    const detail = `max over ${ok.length}/${reps.length} run(s) that stored and delivered it intact; ${sizeMiB} MiB object`;
    return {
      markdown,
      raw,
      targets: [
        atMost(`Gateway peak RSS ≤ ${TARGET_RSS_MB} MB while receiving one 1 GiB object`, ok.length === reps.length ? peak : null, TARGET_RSS_MB, 'MB', detail),
        reported('Gateway peak RSS after forwarding that object too', peakFwd === null ? 'n/a' : `${f(peakFwd)} MB`),
      ],
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) runStandalone('big-object', () => runBigObjectBench(bigObjectOptionsFromEnv()));
