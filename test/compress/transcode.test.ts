import { deflateRawSync } from 'node:zlib';
import charlsFactory from '@cornerstonejs/codec-charls/wasmjs';
import openjphFactory from '@cornerstonejs/codec-openjph';
import { beforeAll, describe, expect, it } from 'vitest';
import { topLevelElements } from '../../src/dicom/elements.js';
import { readFragments } from '../../src/dicom/encapsulation.js';
import { Tag } from '../../src/dicom/tags.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { rleDecodeFrame, rleEncodeFrame } from '../../src/compress/codecs/rle.js';
import { type Codecs, COMPRESSION_SYNTAX, decodeDataset, encodeDataset } from '../../src/compress/transcode.js';
import { encodeDataset as build, ExplicitLE } from '../helpers/dicom-builder.js';
import { canonicalSamples } from '../helpers/pixel-compare.js';
import { IMAGE_MATRIX, imageDataset, imageElements } from '../helpers/image-fixtures.js';

let codecs: Codecs;
beforeAll(async () => {
  const charls = await charlsFactory();
  const openjph = await openjphFactory({ print: () => undefined, printErr: () => undefined });
  codecs = { charls: () => charls, openjph: () => openjph };
});

/** Every top-level element but Pixel Data and Planar Configuration, as raw bytes. */
function otherElements(ds: Buffer): Buffer[] {
  return topLevelElements(ds)
    .filter((e) => e.tag !== Tag.PixelData && e.tag !== Tag.PlanarConfiguration)
    .map((e) => ds.subarray(e.start, e.end));
}

describe('transcode: encode then decode gives back every pixel and every other element', () => {
  for (const target of ['jpeg-ls', 'rle', 'htj2k'] as const) {
    for (const { name, spec } of IMAGE_MATRIX) {
      it(`${target}: ${name}`, () => {
        const original = imageDataset(spec);
        const enc = encodeDataset(original, target, codecs);
        if (target === 'htj2k' && (spec.samples === 3 || (spec.bits === 8 && spec.signed))) {
          expect(enc).toMatchObject({ kind: 'skip' });
          return;
        }
        expect(enc.kind).toBe('done');
        if (enc.kind !== 'done') return;
        expect(enc.transferSyntaxUid).toBe(COMPRESSION_SYNTAX[target]);
        // Encapsulated: one fragment per frame and a Basic Offset Table entry for each.
        const els = topLevelElements(enc.dataset);
        const px = els.find((e) => e.tag === Tag.PixelData)!;
        expect(px.length).toBeUndefined();
        const { offsets, fragments } = readFragments(enc.dataset, px.valueOffset, px.end);
        expect(fragments).toHaveLength(spec.frames ?? 1);
        expect(offsets).toHaveLength(spec.frames ?? 1);
        for (const f of fragments) expect(f.length % 2).toBe(0);
        expect(otherElements(enc.dataset)).toEqual(otherElements(original));
        const dec = decodeDataset(enc.dataset, COMPRESSION_SYNTAX[target], codecs);
        expect(dec.kind).toBe('done');
        if (dec.kind !== 'done') return;
        expect(dec.transferSyntaxUid).toBe(TS.ExplicitVRLittleEndian);
        expect(canonicalSamples(dec.dataset)).toEqual(canonicalSamples(original));
        expect(otherElements(dec.dataset)).toEqual(otherElements(original));
        if (spec.samples === 1 || target === 'jpeg-ls') expect(dec.dataset.equals(original)).toBe(true);
      });
    }
  }

  it('colour planar configuration follows the standard: 0 for JPEG-LS (CP-1843), 1 for RLE (PS3.5 G.2)', () => {
    const pc = (ds: Buffer) => {
      const e = topLevelElements(ds).find((x) => x.tag === Tag.PlanarConfiguration)!;
      return ds.readUInt16LE(e.valueOffset);
    };
    const planar = imageDataset({ rows: 8, cols: 8, samples: 3, bits: 8, planar: 1 });
    const interleaved = imageDataset({ rows: 8, cols: 8, samples: 3, bits: 8, planar: 0 });
    const jls = encodeDataset(planar, 'jpeg-ls', codecs);
    const rle = encodeDataset(interleaved, 'rle', codecs);
    expect(jls.kind === 'done' && pc(jls.dataset)).toBe(0);
    expect(rle.kind === 'done' && pc(rle.dataset)).toBe(1);
  });

  it('deflate compresses the whole data set and inflates back to the same bytes', () => {
    const original = imageDataset({ rows: 64, cols: 64, samples: 1, bits: 16 });
    const enc = encodeDataset(original, 'deflate', codecs);
    expect(enc.kind).toBe('done');
    if (enc.kind !== 'done') return;
    expect(enc.dataset.length).toBeLessThan(original.length);
    expect(enc.dataset.length % 2).toBe(0); // PS3.5 §A.5: padded to even length
    const dec = decodeDataset(enc.dataset, TS.DeflatedExplicitVRLittleEndian, codecs);
    expect(dec.kind === 'done' && dec.dataset.equals(original)).toBe(true);
    // A deflate bomb inflates no further than the limit: it fails (and is dead-lettered), the worker lives.
    const bomb = deflateRawSync(Buffer.alloc(100_000_000));
    expect(() => decodeDataset(bomb, TS.DeflatedExplicitVRLittleEndian, { ...codecs, maxInflatedBytes: original.length })).toThrow(/inflates to more than/);
    expect(decodeDataset(enc.dataset, TS.DeflatedExplicitVRLittleEndian, { ...codecs, maxInflatedBytes: original.length })).toMatchObject({ kind: 'done' });
  });

  it('passes through what cannot be compressed losslessly, saying why', () => {
    const noPixels = build(imageElements({ rows: 4, cols: 4, samples: 1, bits: 16 }, '1.2.3').filter((e) => e.tag !== Tag.PixelData), ExplicitLE);
    expect(encodeDataset(noPixels, 'jpeg-ls', codecs)).toEqual({ kind: 'skip', reason: 'no pixel data' });
    const float = build([...imageElements({ rows: 2, cols: 2, samples: 1, bits: 16 }, '1.2.3').filter((e) => e.tag !== Tag.PixelData), { tag: Tag.FloatPixelData, vr: 'OF', value: Buffer.alloc(16) }], ExplicitLE);
    expect(encodeDataset(float, 'rle', codecs)).toEqual({ kind: 'skip', reason: 'float pixel data' });
    const jls = encodeDataset(imageDataset({ rows: 8, cols: 8, samples: 1, bits: 16 }), 'jpeg-ls', codecs);
    expect(jls.kind === 'done' && encodeDataset(jls.dataset, 'rle', codecs)).toEqual({ kind: 'skip', reason: 'pixel data already encapsulated' });
    expect(decodeDataset(imageDataset({ rows: 8, cols: 8, samples: 1, bits: 16 }), TS.JPEGBaseline8Bit, codecs)).toMatchObject({ kind: 'skip' });
  });

  it('never re-encodes pixel data that is more than its frames: trailing padding, or a non-zero pad byte after an odd length', () => {
    const withPixels = (spec: Parameters<typeof imageElements>[0], f: (px: Buffer) => Buffer) =>
      build(imageElements(spec, '1.2.3').map((e) => (e.tag === Tag.PixelData && 'value' in e && Buffer.isBuffer(e.value) ? { ...e, value: f(e.value) } : e)), ExplicitLE);
    // The MR of issue 17: 128 bytes after the frames.
    const padded = withPixels({ rows: 16, cols: 16, samples: 1, bits: 16 }, (px) => Buffer.concat([px, Buffer.alloc(128, 0x5a)]));
    for (const target of ['jpeg-ls', 'rle', 'htj2k'] as const) {
      expect(encodeDataset(padded, target, codecs)).toEqual({ kind: 'skip', reason: 'pixel data is 640 bytes, its frames 512: the 128 bytes after them would be lost' });
    }
    // 17 × 33 × 8 bit = 561 bytes, padded to 562: a zero pad comes back on decoding, any other does not.
    const oddZero = withPixels({ rows: 17, cols: 33, samples: 1, bits: 8 }, (px) => px);
    expect(encodeDataset(oddZero, 'rle', codecs)).toMatchObject({ kind: 'done' });
    const oddOther = withPixels({ rows: 17, cols: 33, samples: 1, bits: 8 }, (px) => {
      const b = Buffer.from(px);
      b[561] = 0xff;
      return b;
    });
    expect(encodeDataset(oddOther, 'rle', codecs)).toMatchObject({ kind: 'skip', reason: expect.stringContaining('the 1 byte after them') });
  });

  it('RLE survives its worst case (lone bytes between pairs expand the row)', () => {
    const row = [1, 2, 2, 3, 4, 4, 5, 6, 6, 7];
    const frame = Buffer.from(Array.from({ length: 300 }, (_, i) => row[i % row.length]!));
    const info = { rows: 3, columns: 100, samplesPerPixel: 1, bytesPerSample: 1, planar: false };
    expect(rleDecodeFrame(rleEncodeFrame(frame, info), info).equals(frame)).toBe(true);
  });

  it('a truncated compressed frame is an error, never a silently short image', () => {
    const enc = encodeDataset(imageDataset({ rows: 32, cols: 32, samples: 1, bits: 16 }), 'rle', codecs);
    if (enc.kind !== 'done') throw new Error('encode failed');
    const px = topLevelElements(enc.dataset).find((e) => e.tag === Tag.PixelData)!;
    const { fragments } = readFragments(enc.dataset, px.valueOffset, px.end);
    const frag = fragments[0]!;
    // Cut the fragment's last 40 bytes: the RLE segments no longer fill the frame.
    const broken = Buffer.from(enc.dataset);
    broken.fill(0x80, frag.byteOffset - enc.dataset.byteOffset + frag.length - 40, frag.byteOffset - enc.dataset.byteOffset + frag.length);
    expect(() => decodeDataset(broken, TS.RLELossless, codecs)).toThrow(/RLE/);
  });
});
