import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { htj2kEncodeFrame } from '../../src/compress/codecs/htj2k.js';
import { type Codecs, decodeDataset } from '../../src/compress/transcode.js';
import { findElement, readUs, topLevelElements } from '../../src/dicom/elements.js';
import { encapsulate } from '../../src/dicom/encapsulation.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { encodeDataset, ExplicitLE, part10, SECONDARY_CAPTURE, testUid } from '../helpers/dicom-builder.js';
import { allDecoders, maxAbsDiff, part10Dataset, referenceDecoding, REFERENCE_TOOLS, textOf } from '../helpers/decode-oracle.js';
import { type ImageSpec, imageElements, imageFile, pixels } from '../helpers/image-fixtures.js';
import { canonicalSamples } from '../helpers/pixel-compare.js';
import { run, tempDir } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * The gateway's decoders on images made by the real tools (DCMTK dcmcjpeg/dcmcjpls, OpenJPEG
 * opj_compress), each decoding compared with the tool's own decoder (dcmdjpeg, dcmdjpls,
 * opj_decompress): exact for lossless coding, within ±1 per sample for lossy coding. Runs without
 * the corpus; decode-corpus.test.ts does the same over the public corpus.
 */
const tmp = tempDir();
let codecs: Codecs;
let n = 0;

beforeAll(async () => {
  codecs = await allDecoders();
});
/** The largest difference measured per fixture, printed for docs/decoding.md. */
const measured: string[] = [];
afterAll(() => {
  console.log(['| fixture | syntax | reference | max abs diff |', '| --- | --- | --- | --- |', ...measured].join('\n'));
  tmp.cleanup();
});

const PHOTOMETRIC = 0x00280004;
const LOSSY = 0x00282110;
const RATIO = 0x00282112;
const METHOD = 0x00282114;

/** An uncompressed Part 10 fixture written to disk. */
function source(spec: ImageSpec): { file: string; original: Buffer } {
  const { bytes } = imageFile(spec);
  const file = path.join(tmp.dir, `src-${++n}.dcm`);
  writeFileSync(file, bytes);
  return { file, original: part10Dataset(bytes).dataset };
}

/** `tool args… in out`, failing the test with the tool's words when it fails. */
async function make(tool: string, args: string[], input: string): Promise<string> {
  const out = path.join(tmp.dir, `${path.basename(input, '.dcm')}-${tool}-${++n}.dcm`);
  const r = await run(tool, [...args, input, out]);
  if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} failed: ${r.stderr}`);
  return out;
}

/** A Part 10 file whose frames are the given codestreams (one fragment each) in syntax `ts`. */
function wrap(spec: ImageSpec, ts: string, frames: Buffer[]): string {
  const uid = testUid('j2k');
  const head = encodeDataset(imageElements(spec, uid).filter((e) => e.tag !== 0x7fe00010), ExplicitLE);
  const file = path.join(tmp.dir, `wrapped-${++n}.dcm`);
  writeFileSync(file, part10({ sopClassUid: SECONDARY_CAPTURE, sopInstanceUid: uid, ts, dataset: Buffer.concat([head, ...encapsulate(frames)]) }));
  return file;
}

/** One frame of `spec` through opj_compress (planes one after another, as its raw input wants). */
async function opjCompress(spec: ImageSpec, args: string[]): Promise<Buffer> {
  const raw = path.join(tmp.dir, `frame-${++n}.rawl`);
  writeFileSync(raw, pixels({ ...spec, planar: spec.samples === 3 ? 1 : undefined }));
  const stored = spec.bitsStored ?? (spec.bits === 16 ? 12 : 8);
  const r = await run('opj_compress', ['-i', raw, '-o', `${raw}.j2k`, '-F', `${spec.cols},${spec.rows},${spec.samples},${stored},${spec.signed ? 's' : 'u'}`, ...args]);
  if (r.code !== 0) throw new Error(`opj_compress failed: ${r.stderr}`);
  return readFileSync(`${raw}.j2k`);
}

/** Decode `file` with the gateway and with the reference tool; returns both and the largest difference. */
async function compare(file: string): Promise<{ decoded: Buffer; diff: number; refPhotometric: string | undefined; source: Buffer }> {
  const src = part10Dataset(readFileSync(file));
  const d = decodeDataset(src.dataset, src.ts, codecs);
  if (d.kind !== 'done') throw new Error(`not decoded: ${JSON.stringify(d)}`);
  expect(d.transferSyntaxUid).toBe(TS.ExplicitVRLittleEndian);
  const ref = await referenceDecoding(file, tmp.dir);
  const diff = maxAbsDiff(canonicalSamples(d.dataset), ref.samples);
  measured.push(`| ${expect.getState().currentTestName?.split(' > ').pop()?.split(':')[0]} | ${src.ts} | ${ref.tool} | ${diff} |`);
  return { decoded: d.dataset, diff, refPhotometric: ref.photometric, source: src.dataset };
}

const us = (ds: Buffer, tag: number) => readUs(ds, findElement(topLevelElements(ds), tag));

function expectImageAttributesKept(decoded: Buffer, source: Buffer): void {
  for (const tag of [0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103]) expect(us(decoded, tag), tag.toString(16)).toBe(us(source, tag));
}

const MONO8: ImageSpec = { rows: 64, cols: 72, samples: 1, bits: 8 };
const MONO12: ImageSpec = { rows: 48, cols: 40, samples: 1, bits: 16, bitsStored: 12 };
const MONO16S: ImageSpec = { rows: 40, cols: 32, samples: 1, bits: 16, bitsStored: 16, signed: true };
const RGB: ImageSpec = { rows: 48, cols: 64, samples: 3, bits: 8, planar: 0 };

describe.skipIf(skipSuite('the decoding test', missingTools(REFERENCE_TOOLS)))('decoding to Explicit VR Little Endian, judged by the tools that encoded', () => {
  it('JPEG baseline, monochrome: within ±1 of dcmdjpeg, DCMTK\'s lossy attributes kept', async () => {
    const jpeg = await make('dcmcjpeg', ['+eb', '+un'], source(MONO8).file);
    const { decoded, diff, source: src } = await compare(jpeg);
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expect(textOf(decoded, RATIO)).toBe(textOf(src, RATIO));
    expect(textOf(decoded, METHOD)).toBe('ISO_10918_1');
    expect(textOf(decoded, PHOTOMETRIC)).toBe('MONOCHROME2');
    expectImageAttributesKept(decoded, src);
  });

  it('JPEG baseline without any lossy attribute: (0028,2110) 01, a ratio and ISO_10918_1 are added', async () => {
    const jpeg = await make('dcmcjpeg', ['+eb', '+un'], source(MONO8).file);
    const r = await run('dcmodify', ['-nb', '-e', '(0028,2110)', '-e', '(0028,2112)', '-e', '(0028,2114)', jpeg]);
    expect(r.code, r.stderr).toBe(0);
    const { decoded, diff, source: src } = await compare(jpeg);
    expect(textOf(src, LOSSY)).toBeUndefined();
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expect(Number(textOf(decoded, RATIO))).toBeGreaterThan(1);
    expect(textOf(decoded, METHOD)).toBe('ISO_10918_1');
    // The elements were added in tag order: a second reader finds them.
    const dump = path.join(tmp.dir, 'added.dcm');
    writeFileSync(dump, part10({ sopClassUid: SECONDARY_CAPTURE, sopInstanceUid: testUid('d'), ts: TS.ExplicitVRLittleEndian, dataset: decoded }));
    const d = await run('dcmdump', ['-q', '+P', '0028,2110', '+P', '0028,2114', dump]);
    expect(d.stdout).toMatch(/\(0028,2110\) CS \[01\][\s\S]*\(0028,2114\) CS \[ISO_10918_1\]/);
  });

  it('JPEG baseline, YBR_FULL_422 colour: RGB, colour-by-pixel, as dcmdjpeg converts it, within ±1', async () => {
    const jpeg = await make('dcmcjpeg', ['+eb', '+un'], source(RGB).file);
    const src = part10Dataset(readFileSync(jpeg)).dataset;
    expect(textOf(src, PHOTOMETRIC)).toBe('YBR_FULL_422');
    const { decoded, diff, refPhotometric } = await compare(jpeg);
    expect(diff).toBeLessThanOrEqual(1);
    expect(refPhotometric).toBe('RGB');
    expect(textOf(decoded, PHOTOMETRIC)).toBe('RGB');
    expect(us(decoded, 0x00280006)).toBe(0);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expectImageAttributesKept(decoded, src);
  });

  it('JPEG baseline, colour coded as RGB (dcmcjpeg +cr): stays RGB, within ±1 of dcmdjpeg', async () => {
    const jpeg = await make('dcmcjpeg', ['+eb', '+cr', '+un'], source(RGB).file);
    const { decoded, diff, refPhotometric } = await compare(jpeg);
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, PHOTOMETRIC)).toBe(refPhotometric);
    expect(textOf(decoded, PHOTOMETRIC)).toBe('RGB');
  });

  it('JPEG colour whose coding contradicts its Photometric Interpretation, or whose size contradicts Rows: refused, never guessed', async () => {
    const cases: [string[], string, RegExp][] = [
      [['+eb', '+un'], 'RGB', /coded as YCbCr but Photometric Interpretation is RGB/],
      [['+eb', '+cr', '+un'], 'YBR_FULL_422', /Photometric Interpretation YBR_FULL_422 with an RGB-coded stream/],
    ];
    for (const [args, pi, why] of cases) {
      const jpeg = await make('dcmcjpeg', args, source(RGB).file);
      const r = await run('dcmodify', ['-nb', '-m', `(0028,0004)=${pi}`, jpeg]);
      expect(r.code, r.stderr).toBe(0);
      const src = part10Dataset(readFileSync(jpeg));
      const d = decodeDataset(src.dataset, src.ts, codecs);
      expect(d.kind).toBe('skip');
      expect(d.kind === 'skip' && d.reason).toMatch(why);
    }
    const jpeg = await make('dcmcjpeg', ['+eb', '+un'], source(MONO8).file);
    expect((await run('dcmodify', ['-nb', '-m', '(0028,0010)=65', jpeg])).code).toBe(0);
    const src = part10Dataset(readFileSync(jpeg));
    expect(decodeDataset(src.dataset, src.ts, codecs)).toEqual({ kind: 'skip', reason: 'JPEG frame is 72 x 64, the data set says 72 x 65' });
  });

  it('JPEG extended, 8-bit: within ±1 of dcmdjpeg', async () => {
    const jpeg = await make('dcmcjpeg', ['+ee', '+un'], source(MONO8).file);
    expect(part10Dataset(readFileSync(jpeg)).ts).toBe(TS.JPEGExtended12Bit);
    const { decoded, diff } = await compare(jpeg);
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, LOSSY)).toBe('01');
  });

  for (const [name, spec] of [
    ['12 bits stored', MONO12],
    ['12 bits stored, odd size', { rows: 37, cols: 51, samples: 1, bits: 16, bitsStored: 12 } as ImageSpec],
    ['10 bits stored', { rows: 40, cols: 48, samples: 1, bits: 16, bitsStored: 10 } as ImageSpec],
    ['12 bits stored, signed', { rows: 40, cols: 48, samples: 1, bits: 16, bitsStored: 12, signed: true } as ImageSpec],
    ['12 bits stored, 3 frames of 256 x 256', { rows: 256, cols: 256, samples: 1, bits: 16, bitsStored: 12, frames: 3 } as ImageSpec],
  ] as const) {
    it(`JPEG extended, 12-bit (${name}): within ±1 of dcmdjpeg, marked lossy`, async () => {
      const jpeg = await make('dcmcjpeg', ['+ee', '+un'], source(spec).file);
      const src = part10Dataset(readFileSync(jpeg));
      expect(src.ts).toBe(TS.JPEGExtended12Bit);
      const { decoded, diff } = await compare(jpeg);
      expect(diff).toBeLessThanOrEqual(1);
      expect(textOf(decoded, LOSSY)).toBe('01');
      expectImageAttributesKept(decoded, src.dataset);
    });
  }

  for (const [name, spec, args] of [
    ['8-bit, selection value 1 (.70)', MONO8, ['+e1']],
    ['12-bit in 16, selection value 1 (.70)', MONO12, ['+e1']],
    ['16-bit signed, selection value 1 (.70)', MONO16S, ['+e1']],
    ['RGB, selection value 1 (.70)', RGB, ['+e1']],
    ...[2, 3, 4, 5, 6, 7].map((sv) => [`12-bit in 16, selection value ${sv} (.57)`, MONO12, ['+el', '+sv', String(sv)]] as const),
    ['8-bit RGB, selection value 6 (.57)', RGB, ['+el']],
  ] as const) {
    it(`JPEG lossless, ${name}: exactly dcmdjpeg's samples and the original's, not marked lossy`, async () => {
      const { file, original } = source(spec);
      const jpeg = await make('dcmcjpeg', [...args], file);
      const { decoded, diff, source: src } = await compare(jpeg);
      expect(diff).toBe(0);
      expect(canonicalSamples(decoded)).toEqual(canonicalSamples(original));
      expect(textOf(decoded, LOSSY) ?? '00').toBe('00');
      expectImageAttributesKept(decoded, src);
    });
  }

  it('JPEG-LS near-lossless (NEAR 2): exactly dcmdjpls\'s samples, marked lossy with ISO_14495_1', async () => {
    const jls = await make('dcmcjpls', ['+en', '+un'], source(MONO12).file);
    const r = await run('dcmodify', ['-nb', '-e', '(0028,2110)', '-e', '(0028,2112)', '-e', '(0028,2114)', jls]);
    expect(r.code, r.stderr).toBe(0);
    const { decoded, diff } = await compare(jls);
    expect(diff).toBe(0);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expect(textOf(decoded, METHOD)).toBe('ISO_14495_1');
  });

  it('JPEG 2000 lossless (.90), 12-bit and signed 16-bit: exactly opj_decompress\'s samples and the original\'s', async () => {
    for (const spec of [MONO12, MONO16S]) {
      const file = wrap(spec, TS.JPEG2000Lossless, [await opjCompress(spec, [])]);
      const { decoded, diff } = await compare(file);
      expect(diff).toBe(0);
      expect(canonicalSamples(decoded)).toEqual(canonicalSamples(source(spec).original));
      expect(textOf(decoded, LOSSY)).toBeUndefined();
    }
  });

  it('JPEG 2000 lossy (.91, 9/7 wavelet): within ±1 of opj_decompress, marked lossy with ISO_15444_1', async () => {
    const file = wrap(MONO12, TS.JPEG2000, [await opjCompress(MONO12, ['-I', '-r', '20'])]);
    const { decoded, diff } = await compare(file);
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expect(textOf(decoded, METHOD)).toBe('ISO_15444_1');
  });

  it('JPEG 2000 colour with the RCT (YBR_RCT) and the ICT (YBR_ICT): RGB, colour-by-pixel, like opj_decompress', async () => {
    for (const [ts, pi, args, lossy] of [
      [TS.JPEG2000Lossless, 'YBR_RCT', ['-mct', '1'], false],
      [TS.JPEG2000, 'YBR_ICT', ['-mct', '1', '-I', '-r', '10'], true],
    ] as const) {
      const file = wrap({ ...RGB, photometric: pi }, ts, [await opjCompress(RGB, [...args])]);
      const { decoded, diff } = await compare(file);
      expect(diff, pi).toBeLessThanOrEqual(lossy ? 1 : 0);
      expect(textOf(decoded, PHOTOMETRIC)).toBe('RGB');
      expect(us(decoded, 0x00280006)).toBe(0);
      expect(textOf(decoded, LOSSY)).toBe(lossy ? '01' : undefined);
    }
  });

  it('HTJ2K lossy (.203): within ±1 of opj_decompress, marked lossy with ISO_15444_15', async () => {
    const frame = pixels(MONO12);
    const enc = new (codecs.openjph().HTJ2KEncoder)();
    let stream: Buffer;
    try {
      enc.getDecodedBuffer({ width: MONO12.cols, height: MONO12.rows, bitsPerSample: 12, componentCount: 1, isSigned: false, isUsingColorTransform: false }).set(frame);
      enc.setQuality(false, 0.005);
      enc.encode();
      stream = Buffer.from(enc.getEncodedBuffer());
    } finally {
      enc.delete();
    }
    const file = wrap(MONO12, TS.HTJ2K, [stream]);
    const { decoded, diff } = await compare(file);
    expect(diff).toBeLessThanOrEqual(1);
    expect(textOf(decoded, LOSSY)).toBe('01');
    expect(textOf(decoded, METHOD)).toBe('ISO_15444_15');
    // The same image coded reversibly in .203 is not marked lossy.
    const lossless = wrap(MONO12, TS.HTJ2K, [htj2kEncodeFrame(codecs.openjph(), frame, { rows: MONO12.rows, columns: MONO12.cols, bitsAllocated: 16, signed: false })]);
    const again = await compare(lossless);
    expect(again.diff).toBe(0);
    expect(textOf(again.decoded, LOSSY)).toBeUndefined();
  });
});
