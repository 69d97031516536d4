import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Codecs, decodeDataset } from '../../src/compress/transcode.js';
import { DECODABLE } from '../../src/compress/decode.js';
import { findElement, readUs as readUsOf, topLevelElements } from '../../src/dicom/elements.js';
import { transferSyntax, TS } from '../../src/dicom/transfer-syntaxes.js';
import { corpusDir, corpusMissing } from '../helpers/corpus.js';
import { allDecoders, maxAbsDiff, part10Dataset, referenceDecoding, REFERENCE_TOOLS, textOf } from '../helpers/decode-oracle.js';
import { canonicalSamples } from '../helpers/pixel-compare.js';
import { tempDir } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * Every compressed image of the public corpus through the gateway's decoders, each compared
 * with an independent decoder (DCMTK for JPEG, JPEG-LS, RLE; opj_decompress for JPEG 2000 and
 * HTJ2K): exact for lossless coding, within ±1 per sample for lossy coding (docs/decoding.md
 * has the table this prints).
 */
const CORPUS = corpusDir();
const tmp = tempDir();
let codecs: Codecs;

beforeAll(async () => {
  codecs = await allDecoders();
});
afterAll(() => tmp.cleanup());

/** Corpus files the gateway does not decode, and why (each is then stranded, never altered). */
const NOT_DECODED: Record<string, RegExp> = {
  // A JPEG 2000 stream cut short: the file is broken, the decoder says so.
  'emri_small_jpeg_2k_lossless_too_short.dcm': /sequence without its delimiter/,
  // Bit-packed (1 bit allocated) segmentations: frames are not byte-aligned, none of the codecs handles them.
  'liver_j2k.dcm': /1 bits allocated/,
  'liver_nonbyte_aligned_j2k.dcm': /1 bits allocated/,
  'liver_rle.dcm': /1 bits allocated/,
  'liver_nonbyte_aligned_rle.dcm': /1 bits allocated/,
};

describe.skipIf(skipSuite('the corpus decoding test', corpusMissing() ?? missingTools(REFERENCE_TOOLS)))('corpus: the gateway decoders against DCMTK and OpenJPEG', () => {
  it('decodes every compressed corpus image like the reference decoder, marks lossy ones lossy', async () => {
    const rows: string[] = [];
    let checked = 0;
    for (const name of readdirSync(CORPUS!).filter((n) => n.endsWith('.dcm')).sort()) {
      const file = path.join(CORPUS!, name);
      const bytes = readFileSync(file);
      let src: ReturnType<typeof part10Dataset>;
      try {
        src = part10Dataset(bytes);
      } catch {
        continue;
      }
      if (!DECODABLE.has(src.ts) || src.ts === TS.DeflatedExplicitVRLittleEndian) continue;
      let d: ReturnType<typeof decodeDataset>;
      try {
        d = decodeDataset(src.dataset, src.ts, codecs);
      } catch (err) {
        expect.soft(NOT_DECODED[name], `${name}: ${(err as Error).message}`).toBeDefined();
        rows.push(`| ${name} | ${src.ts} | — | not decoded: ${(err as Error).message} |`);
        continue;
      }
      if (d.kind !== 'done') {
        expect.soft(NOT_DECODED[name]?.test(d.kind === 'skip' ? d.reason : ''), `${name}: ${JSON.stringify(d)}`).toBe(true);
        rows.push(`| ${name} | ${src.ts} | — | not decoded: ${'reason' in d ? d.reason : ''} |`);
        continue;
      }
      const ref = await referenceDecoding(file, tmp.dir);
      const ours = canonicalSamples(d.dataset);
      const diff = maxAbsDiff(ours, ref.samples);
      const lossyFlag = textOf(d.dataset, 0x00282110);
      rows.push(`| ${name} | ${src.ts} | ${ref.tool} | ${diff} | ${lossyFlag ?? ''} | ${textOf(d.dataset, 0x00280004)} |`);
      const lossless = transferSyntax(src.ts)!.lossless === true;
      expect.soft(diff, `${name} vs ${ref.tool}`).toBeLessThanOrEqual(lossless ? 0 : 1);
      if (!lossless && lossyFlag !== '01') {
        // A lossy-capable syntax holding reversibly coded frames is not made lossy by decoding.
        expect(src.ts === TS.JPEG2000 || src.ts === TS.HTJ2K || src.ts === TS.JPEGLSNearLossless, `${name}: lossy source not marked lossy`).toBe(true);
      }
      if (lossyFlag === '01') {
        expect(textOf(d.dataset, 0x00282112), name).toMatch(/^\d/);
        expect(textOf(d.dataset, 0x00282114), name).toMatch(/^ISO_/);
      }
      if (ref.photometric) expect.soft(textOf(d.dataset, 0x00280004), `${name}: photometric as ${ref.tool} writes it`).toBe(ref.photometric);
      for (const tag of [0x00280100, 0x00280101, 0x00280102, 0x00280103]) expect.soft(readUs(d.dataset, tag), `${name} (${tag.toString(16)})`).toBe(readUs(src.dataset, tag));
      checked++;
    }
    console.log(['| file | syntax | reference | max abs diff | (0028,2110) | photometric |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n'));
    expect(checked).toBeGreaterThanOrEqual(20);
  });
});

function readUs(ds: Buffer, tag: number): number | undefined {
  return readUsOf(ds, findElement(topLevelElements(ds), tag));
}
