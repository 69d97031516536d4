/**
 * Codec benchmark (`make bench`): compression ratio and speed of each lossless codec the
 * gateway uses, on corpus CT, MR, CR and US images, beside DCMTK's own encoders on the same
 * files. A section of `make bench` (bench/run-all.ts); runs alone too
 * (`node dist/bench/codec-bench.js` prints its section). Knob: PACS_EDGE_CODEC_REPS (default 5).
 *
 * The gateway's codecs are timed in this process on one thread (what one codec worker does
 * with one core). DCMTK's tools are timed as processes, and the time of the same tool on an
 * 8×8 image is subtracted (process start, dictionary load): "per-image time net of process start".
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import charlsFactory from '@cornerstonejs/codec-charls/wasmjs';
import openjphFactory from '@cornerstonejs/codec-openjph';
import { type Codecs, COMPRESSION_SYNTAX, decodeDataset, encodeDataset } from '../src/compress/transcode.js';
import { topLevelElements } from '../src/dicom/elements.js';
import { buildPart10Header, readPart10Header } from '../src/dicom/file-meta.js';
import { imagePixel, isNotCompressible } from '../src/dicom/image-pixel.js';
import { TS } from '../src/dicom/transfer-syntaxes.js';
import { run } from './proc.js';
import { ROOT } from './receivers.js';
import { envInt, isMain, QUICK, runStandalone } from './standalone.js';
import type { BenchSection } from './targets.js';

const CORPUS = process.env.PACS_EDGE_CORPUS ?? path.resolve(ROOT, '../shared/corpus/public');
let REPS = 5;
const CODECS = ['jpeg-ls', 'htj2k', 'rle', 'deflate'] as const;
const DCMTK: Record<string, { tool: string; args: string[] }> = {
  'jpeg-ls': { tool: 'dcmcjpls', args: [] },
  rle: { tool: 'dcmcrle', args: [] },
  deflate: { tool: 'dcmconv', args: ['+td'] },
};

interface Image {
  label: string;
  file: string;
  /** The corpus file it comes from. */
  source: string;
  dataset: Buffer;
  description: string;
  pixelBytes: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** An uncompressed Explicit VR LE image from the corpus (the CR is decoded from its lossless J2K with GDCM). */
async function loadImages(tmp: string): Promise<{ images: Image[]; notes: string[] }> {
  const notes: string[] = [];
  const images: Image[] = [];
  const want: [string, string, string?][] = [
    ['CT', '693_UNCR.dcm'],
    ['MR', 'MR2_UNCR.dcm'],
    ['US', 'US1_UNCR.dcm'],
    ['CR', 'RG3_J2KR.dcm', 'gdcmconv'],
  ];
  for (const [label, name, via] of want) {
    let file = path.join(CORPUS, name);
    if (!existsSync(file)) {
      notes.push(`${label}: ${name} not in the corpus; skipped`);
      continue;
    }
    if (via === 'gdcmconv') {
      const out = path.join(tmp, `${label}.dcm`);
      const r = await run('gdcmconv', ['--raw', '--explicit', file, out], { timeoutMs: 60_000 }).catch(() => undefined);
      if (!r || r.code !== 0) {
        notes.push(`${label}: gdcmconv (Debian libgdcm-tools) not available to decode ${name}; skipped`);
        continue;
      }
      notes.push(`${label}: ${name} (JPEG 2000 lossless) decoded to Explicit VR Little Endian with GDCM's gdcmconv --raw first`);
      file = out;
    }
    const bytes = readFileSync(file);
    const h = readPart10Header(bytes)!;
    if (h.transferSyntaxUid !== TS.ExplicitVRLittleEndian) {
      notes.push(`${label}: ${name} is not Explicit VR Little Endian (${h.transferSyntaxUid}); skipped`);
      continue;
    }
    const dataset = bytes.subarray(h.datasetOffset);
    const img = imagePixel(dataset, topLevelElements(dataset));
    if (isNotCompressible(img)) {
      notes.push(`${label}: ${name}: ${img.reason}; skipped`);
      continue;
    }
    images.push({
      label,
      file,
      source: name,
      dataset,
      pixelBytes: img.frames * img.frameBytes,
      description: `${img.columns}×${img.rows}, ${img.samplesPerPixel === 3 ? 'RGB' : img.photometric}, ${img.bitsAllocated}-bit (${img.bitsStored} stored)${img.frames > 1 ? `, ${img.frames} frames` : ''}`,
    });
  }
  return { images, notes };
}

/** Median wall time of a DCMTK tool on a file, in ms, and the output's data set size. */
async function dcmtkTime(tool: string, args: string[], file: string, out: string): Promise<{ ms: number; bytes: number }> {
  const times: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = performance.now();
    const r = await run(tool, [...args, file, out], { timeoutMs: 120_000 });
    times.push(performance.now() - t);
    if (r.code !== 0) throw new Error(`${tool} failed: ${r.stderr.slice(0, 300)}`);
  }
  const b = readFileSync(out);
  return { ms: median(times), bytes: b.length - readPart10Header(b)!.datasetOffset };
}

/** An 8×8 16-bit image: the DCMTK baseline (process start, dictionary, file I/O of a tiny file). */
function tinyFile(dir: string): string {
  const ct = readFileSync(path.join(CORPUS, '693_UNCR.dcm'));
  const h = readPart10Header(ct)!;
  const ds = ct.subarray(h.datasetOffset);
  const els = topLevelElements(ds);
  const px = els.find((e) => e.tag === 0x7fe00010)!;
  const rows = els.find((e) => e.tag === 0x00280010)!;
  const cols = els.find((e) => e.tag === 0x00280011)!;
  const small = Buffer.concat([ds.subarray(0, px.start), Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0, 128, 0, 0, 0]), Buffer.alloc(128, 1)]);
  small.writeUInt16LE(8, rows.valueOffset);
  small.writeUInt16LE(8, cols.valueOffset);
  const f = path.join(dir, 'tiny.dcm');
  writeFileSync(f, Buffer.concat([buildPart10Header({ sopClassUid: h.sopClassUid, sopInstanceUid: h.sopInstanceUid, transferSyntaxUid: TS.ExplicitVRLittleEndian }), small]));
  return f;
}

export async function runCodecBench(opts: { reps: number; log?: (s: string) => void }): Promise<BenchSection> {
  REPS = opts.reps;
  const log = opts.log ?? console.log;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-codec-bench-'));
  const started = Date.now();
  try {
    const charls = await charlsFactory();
    const openjph = await openjphFactory({ print: () => undefined, printErr: () => undefined });
    const codecs: Codecs = { charls: () => charls, openjph: () => openjph };
    const { images, notes } = await loadImages(tmp);
    const tiny = tinyFile(tmp);
    const baseline: Record<string, number> = {};
    for (const [codec, d] of Object.entries(DCMTK)) baseline[codec] = (await dcmtkTime(d.tool, d.args, tiny, path.join(tmp, `tiny-${codec}.dcm`))).ms;
    const rows: Record<string, unknown>[] = [];
    for (const img of images) {
      for (const codec of CODECS) {
        const first = encodeDataset(img.dataset, codec, codecs, true);
        if (first.kind !== 'done') {
          rows.push({ image: img.label, codec, skipped: first.reason });
          continue;
        }
        // Timed without the verifying decode (reported separately as decode time).
        const enc = median(Array.from({ length: REPS }, () => time(() => encodeDataset(img.dataset, codec, codecs, false))));
        const dec = median(Array.from({ length: REPS }, () => time(() => decodeDataset(first.dataset, COMPRESSION_SYNTAX[codec], codecs))));
        const row: Record<string, unknown> = {
          image: img.label,
          codec,
          ratio: img.dataset.length / first.dataset.length,
          encodeMs: enc,
          decodeMs: dec,
          encodeMBps: img.pixelBytes / 1e6 / (enc / 1000),
          decodeMBps: img.pixelBytes / 1e6 / (dec / 1000),
        };
        const d = DCMTK[codec];
        if (d) {
          const r = await dcmtkTime(d.tool, d.args, img.file, path.join(tmp, `${img.label}-${codec}.dcm`));
          const net = Math.max(0.01, r.ms - baseline[codec]!);
          Object.assign(row, { dcmtkTool: `${d.tool} ${d.args.join(' ')}`.trim(), dcmtkRatio: img.dataset.length / r.bytes, dcmtkNetMs: net, dcmtkMBps: img.pixelBytes / 1e6 / (net / 1000), speedVsDcmtk: net / enc });
        }
        rows.push(row);
        log(`[codec] ${JSON.stringify(row)}`);
      }
    }
    const result = { generatedAt: new Date().toISOString(), durationSeconds: Math.round((Date.now() - started) / 1000), reps: REPS, baselineMs: baseline, images: images.map((i) => ({ label: i.label, file: i.source, description: i.description, datasetBytes: i.dataset.length })), notes, rows };
    return { markdown: render(result), raw: result, targets: [] };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const f1 = (n: unknown) => (typeof n === 'number' ? n.toFixed(1) : '-');
const f2 = (n: unknown) => (typeof n === 'number' ? n.toFixed(2) : '-');

function render(r: { durationSeconds: number; reps: number; baselineMs: Record<string, number>; images: { label: string; file: string; description: string; datasetBytes: number }[]; notes: string[]; rows: Record<string, unknown>[] }): string {
  const lines = [
    '## Lossless codecs',
    '',
    `${r.durationSeconds} s in all.`,
    '',
    `- **Gateway codecs**: \`src/compress/transcode.ts\` as a codec worker runs it — whole data set in, data set with encapsulated Pixel Data out — timed in one thread, median of ${r.reps}. Encode time excludes the verifying decode the gateway also does (\`compress.verify\`, on by default); that decode costs about the decode time shown. JPEG-LS is CharLS and HTJ2K is OpenJPH, both WebAssembly builds (\`@cornerstonejs/codec-charls\`, \`@cornerstonejs/codec-openjph\`); RLE is the gateway's own TypeScript; Deflate is Node's zlib (level 6).`,
    `- **DCMTK**: the same file through \`dcmcjpls\`, \`dcmcrle\`, \`dcmconv +td\` (DCMTK 3.6.7, native code), median wall time of ${r.reps} runs minus the same tool's time on an 8×8 image (${Object.entries(r.baselineMs).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}): per-image time net of process start.`,
    '- **Ratio**: data set bytes before ÷ after (all attributes included, so small images gain less). MB/s = uncompressed pixel bytes (10^6) per second of one core.',
    '',
    '| Image | File | Description |',
    '| --- | --- | --- |',
    ...r.images.map((i) => `| ${i.label} | \`${i.file}\` | ${i.description}, data set ${(i.datasetBytes / 1e6).toFixed(2)} MB |`),
    '',
    '| Image | Codec | ratio | encode ms | encode MB/s per core | decode ms | DCMTK tool | DCMTK ratio | DCMTK net ms | DCMTK MB/s | DCMTK time ÷ gateway time |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.rows.map((x) =>
      x.skipped
        ? `| ${x.image} | ${x.codec} | not compressed: ${x.skipped} | | | | | | | | |`
        : `| ${x.image} | ${x.codec} | ${f2(x.ratio)} | ${f1(x.encodeMs)} | ${f1(x.encodeMBps)} | ${f1(x.decodeMs)} | ${x.dcmtkTool ? `\`${x.dcmtkTool}\`` : '—'} | ${f2(x.dcmtkRatio)} | ${f1(x.dcmtkNetMs)} | ${f1(x.dcmtkMBps)} | ${f2(x.speedVsDcmtk)} |`,
    ),
    '',
    ...(r.notes.length ? ['Notes:', '', ...r.notes.map((n) => `- ${n}`), ''] : []),
    'DCMTK has no HTJ2K encoder (3.6.7), so HTJ2K has no DCMTK column. The gateway codes HTJ2K for single-component images only (see `src/compress/codecs/htj2k.ts`): the US image is RGB and is not HTJ2K-coded.',
  ];
  return lines.join('\n');
}


if (isMain(import.meta.url)) runStandalone('codecs', () => runCodecBench({ reps: envInt('PACS_EDGE_CODEC_REPS', QUICK ? 1 : 5) }));
