import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import charlsFactory from '@cornerstonejs/codec-charls/wasmjs';
import openjphFactory from '@cornerstonejs/codec-openjph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Codecs, encodeDataset } from '../../src/compress/transcode.js';
import { topLevelElements } from '../../src/dicom/elements.js';
import { readFragments } from '../../src/dicom/encapsulation.js';
import { buildPart10Header, readPart10Header } from '../../src/dicom/file-meta.js';
import { imagePixel, isNotCompressible } from '../../src/dicom/image-pixel.js';
import { Tag } from '../../src/dicom/tags.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { corpusDir, corpusMissing } from '../helpers/corpus.js';
import { datasetBytes } from '../helpers/dcmtk.js';
import { canonicalSamples, differingAttributes } from '../helpers/pixel-compare.js';
import { run, tempDir } from '../helpers/processes.js';
import { skipSuite } from '../helpers/requirements.js';

/**
 * Every uncompressed image of the public corpus through the gateway's RLE, Deflate and HTJ2K
 * encoders, each result judged by an independent decoder: DCMTK dcmdrle (RLE), DCMTK dcmconv
 * (Deflate), OpenJPEG opj_decompress (HTJ2K, single-component images). JPEG-LS over the corpus
 * is checked end to end through storescp and dcmdjpls in corpus-compress.integration.test.ts.
 */
const CORPUS = corpusDir();
const tmp = tempDir();
let codecs: Codecs;
const images: { name: string; dataset: Buffer; sopClassUid: string; sopInstanceUid: string }[] = [];

beforeAll(async () => {
  const charls = await charlsFactory();
  const openjph = await openjphFactory({ print: () => undefined, printErr: () => undefined });
  codecs = { charls: () => charls, openjph: () => openjph };
  if (!CORPUS) return;
  for (const name of readdirSync(CORPUS!).filter((n) => n.endsWith('.dcm')).sort()) {
    const bytes = readFileSync(path.join(CORPUS!, name));
    const h = readPart10Header(bytes);
    if (!h || h.transferSyntaxUid !== TS.ExplicitVRLittleEndian) continue;
    const dataset = bytes.subarray(h.datasetOffset);
    try {
      const img = imagePixel(dataset, topLevelElements(dataset));
      if (isNotCompressible(img)) continue;
    } catch {
      continue; // not parseable as a whole (the truncated file): not an image to compress
    }
    images.push({ name, dataset, sopClassUid: h.sopClassUid, sopInstanceUid: h.sopInstanceUid });
  }
});
afterAll(() => tmp.cleanup());

/**
 * DCMTK re-encodes what it writes (group lengths recalculated, sequence lengths its own way), so
 * its decoding is compared with its own rewrite of the original, not with the original bytes.
 */
async function dcmtkReference(img: (typeof images)[number]): Promise<Buffer> {
  const file = part10(img, TS.ExplicitVRLittleEndian, img.dataset);
  const r = await run('dcmconv', ['+te', file, `${file}.ref`]);
  if (r.code !== 0) throw new Error(`dcmconv failed on ${img.name}: ${r.stderr}`);
  return datasetBytes(readFileSync(`${file}.ref`));
}

function part10(img: (typeof images)[number], ts: string, dataset: Buffer): string {
  const file = path.join(tmp.dir, `${img.name}-${ts}.dcm`);
  writeFileSync(file, Buffer.concat([buildPart10Header({ sopClassUid: img.sopClassUid, sopInstanceUid: img.sopInstanceUid, transferSyntaxUid: ts }), dataset]));
  return file;
}

describe.skipIf(skipSuite('the corpus codec test', corpusMissing()))('corpus images through the gateway encoders, checked by independent decoders', () => {
  it('RLE: dcmdrle gives back every pixel and attribute', async () => {
    let checked = 0;
    for (const img of images) {
      const enc = encodeDataset(img.dataset, 'rle', codecs);
      if (enc.kind === 'skip') continue;
      expect(enc.kind, img.name).toBe('done');
      if (enc.kind !== 'done') continue;
      const file = part10(img, TS.RLELossless, enc.dataset);
      const r = await run('dcmdrle', [file, `${file}.raw`]);
      expect(r.code, `${img.name}: ${r.stderr}`).toBe(0);
      const back = datasetBytes(readFileSync(`${file}.raw`));
      expect(canonicalSamples(back), img.name).toEqual(canonicalSamples(img.dataset));
      expect(differingAttributes(back, await dcmtkReference(img)), img.name).toEqual([]);
      checked++;
    }
    console.log(`RLE over the corpus: ${checked} of ${images.length} images checked with dcmdrle`);
    expect(checked).toBeGreaterThan(10);
  });

  it('Deflate: dcmconv inflates every data set to what it makes of the original', async () => {
    for (const img of images) {
      const enc = encodeDataset(img.dataset, 'deflate', codecs);
      expect(enc.kind, img.name).toBe('done');
      if (enc.kind !== 'done') continue;
      const file = part10(img, TS.DeflatedExplicitVRLittleEndian, enc.dataset);
      const r = await run('dcmconv', ['+te', file, `${file}.raw`]);
      expect(r.code, `${img.name}: ${r.stderr}`).toBe(0);
      expect(datasetBytes(readFileSync(`${file}.raw`)).equals(await dcmtkReference(img)), img.name).toBe(true);
    }
    expect(images.length).toBeGreaterThan(10);
  });

  it('HTJ2K: opj_decompress gives back every sample of every frame', async () => {
    let checked = 0;
    for (const img of images) {
      const enc = encodeDataset(img.dataset, 'htj2k', codecs);
      if (enc.kind === 'skip') continue; // colour, signed 8-bit: passed through by design
      expect(enc.kind, img.name).toBe('done');
      if (enc.kind !== 'done') continue;
      const els = topLevelElements(img.dataset);
      const info = imagePixel(img.dataset, els);
      if (isNotCompressible(info)) continue;
      const px = topLevelElements(enc.dataset).find((e) => e.tag === Tag.PixelData)!;
      const { fragments } = readFragments(enc.dataset, px.valueOffset, px.end);
      for (const [i, frag] of fragments.entries()) {
        const j2c = path.join(tmp.dir, `${img.name}-${i}.j2c`);
        writeFileSync(j2c, frag);
        const r = await run('opj_decompress', ['-quiet', '-i', j2c, '-o', `${j2c}.rawl`]);
        expect(r.code, `${img.name}: ${r.stderr}`).toBe(0);
        const start = info.pixelData.valueOffset + i * info.frameBytes;
        expect(readFileSync(`${j2c}.rawl`).equals(img.dataset.subarray(start, start + info.frameBytes)), `${img.name} frame ${i + 1}`).toBe(true);
      }
      checked++;
    }
    console.log(`HTJ2K over the corpus: ${checked} of ${images.length} images checked with opj_decompress`);
    expect(checked).toBeGreaterThan(5);
  });
});
