import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Codecs, TranscodeResult } from './codec-modules.js';
import { rebuild } from './dataset-edit.js';
import { decodeDataset } from './decode.js';
import { topLevelElements } from '../dicom/elements.js';
import { encapsulate } from '../dicom/encapsulation.js';
import { imagePixel, isNotCompressible } from '../dicom/image-pixel.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import { explicitToImplicit, implicitToExplicit, type VrOf } from '../dicom/vr-convert.js';
import { htj2kDecodeFrame, htj2kEncodeFrame, htj2kUnsupported } from './codecs/htj2k.js';
import { jlsDecodeFrame, jlsEncodeFrame } from './codecs/jpeg-ls.js';
import { rleDecodeFrame, rleEncodeFrame } from './codecs/rle.js';

/**
 * Transfer syntax conversion of one data set, pure and synchronous: it runs inside a codec
 * worker (see pool.ts), never on the event loop.
 *
 * Encoding changes only what the target syntax requires: the Pixel Data element (encapsulated,
 * one fragment per frame, Basic Offset Table) and, for colour images, Planar Configuration
 * where the standard fixes its value for the syntax. Every other element is copied byte for
 * byte. Every encoded frame is decoded again and compared with the original before the result
 * is used.
 *
 * @see PS3.5 §8.2 (native and encapsulated pixel data), §10 (transfer syntaxes), Annex A.4
 */
export type Compression = 'jpeg-ls' | 'htj2k' | 'rle' | 'deflate' | 'none';

/** The lossless transfer syntax each `forward[].compression` value sends. */
export const COMPRESSION_SYNTAX: Record<Exclude<Compression, 'none'>, string> = {
  'jpeg-ls': TS.JPEGLSLossless,
  htj2k: TS.HTJ2KLossless,
  rle: TS.RLELossless,
  deflate: TS.DeflatedExplicitVRLittleEndian,
};


export type { Codecs, TranscodeResult } from './codec-modules.js';
export { DECODABLE, decodeDataset } from './decode.js';

/** Encode an Explicit VR Little Endian data set into `target`'s syntax. */
export function encodeDataset(dataset: Buffer, target: Exclude<Compression, 'none'>, codecs: Codecs, verify = true): TranscodeResult {
  if (target === 'deflate') {
    const raw = deflateRawSync(dataset, { level: 6 });
    // PS3.5 §A.5: the deflated stream is padded with a trailing 0x00 to an even length.
    const out = raw.length % 2 ? Buffer.concat([raw, Buffer.alloc(1)]) : raw;
    if (verify && !inflateRawSync(out).equals(dataset)) return { kind: 'mismatch', reason: 'deflate: inflated data set differs' };
    return { kind: 'done', dataset: out, transferSyntaxUid: TS.DeflatedExplicitVRLittleEndian, frames: 0 };
  }
  const elements = topLevelElements(dataset);
  const img = imagePixel(dataset, elements);
  if (isNotCompressible(img)) return { kind: 'skip', reason: img.reason };
  if (img.pixelData.length === undefined) return { kind: 'skip', reason: 'pixel data already encapsulated' };
  if (img.pixelData.length < img.frames * img.frameBytes) return { kind: 'skip', reason: 'pixel data shorter than the image pixel module says' };
  const extra = notExactlyFrames(dataset, img.pixelData.valueOffset, img.pixelData.length, img.frames * img.frameBytes);
  if (extra) return { kind: 'skip', reason: extra };
  const signed = img.pixelRepresentation === 1;
  const planar = img.samplesPerPixel > 1 && img.planarConfiguration === 1;
  let encode: (frame: Buffer) => Buffer;
  let decode: (stream: Buffer) => Buffer;
  let planarOut: number | undefined;
  switch (target) {
    case 'jpeg-ls': {
      if (img.samplesPerPixel === 3 && img.bitsAllocated !== 8 && img.photometric !== 'RGB') return { kind: 'skip', reason: `JPEG-LS: ${img.photometric} ${img.bitsAllocated}-bit` };
      if (!['MONOCHROME1', 'MONOCHROME2', 'PALETTE COLOR', 'RGB', 'YBR_FULL'].includes(img.photometric)) return { kind: 'skip', reason: `JPEG-LS: photometric ${img.photometric || '(none)'}` };
      const info = { rows: img.rows, columns: img.columns, samplesPerPixel: img.samplesPerPixel, bitsAllocated: img.bitsAllocated, planar };
      const m = codecs.charls();
      encode = (f) => jlsEncodeFrame(m, f, info);
      decode = (s) => jlsDecodeFrame(m, s).pixels;
      // CP-1843: colour JPEG-LS images have Planar Configuration 0 (the stream says how components are coded).
      if (img.samplesPerPixel > 1) planarOut = 0;
      break;
    }
    case 'htj2k': {
      const why = htj2kUnsupported(img.samplesPerPixel, img.bitsAllocated, signed);
      if (why) return { kind: 'skip', reason: why };
      if (!['MONOCHROME1', 'MONOCHROME2'].includes(img.photometric)) return { kind: 'skip', reason: `HTJ2K: photometric ${img.photometric || '(none)'}` };
      const m = codecs.openjph();
      const info = { rows: img.rows, columns: img.columns, bitsAllocated: img.bitsAllocated, signed };
      encode = (f) => htj2kEncodeFrame(m, f, info);
      decode = (s) => htj2kDecodeFrame(m, s).pixels;
      break;
    }
    case 'rle': {
      const info = { rows: img.rows, columns: img.columns, samplesPerPixel: img.samplesPerPixel, bytesPerSample: img.bitsAllocated / 8, planar };
      encode = (f) => rleEncodeFrame(f, info);
      decode = (s) => rleDecodeFrame(s, info);
      // PS3.5 §G.2: RLE colour images have Planar Configuration 1 (segments are colour planes).
      if (img.samplesPerPixel > 1) planarOut = 1;
      break;
    }
  }
  const frames: Buffer[] = [];
  for (let i = 0; i < img.frames; i++) {
    const start = img.pixelData.valueOffset + i * img.frameBytes;
    const frame = dataset.subarray(start, start + img.frameBytes);
    const encoded = encode(frame);
    if (verify && !decode(encoded).equals(frame)) return { kind: 'mismatch', reason: `${target}: frame ${i + 1} decodes differently` };
    frames.push(encoded);
  }
  return { kind: 'done', dataset: rebuild(dataset, elements, img, encapsulate(frames), planarOut), transferSyntaxUid: COMPRESSION_SYNTAX[target], frames: img.frames };
}

/**
 * The data set in an uncompressed syntax (`to`: Explicit or Implicit VR Little Endian), from any
 * syntax the gateway can read: decoded if compressed, VRs added from the dictionary (`vrOf`) or
 * dropped as needed.
 */
export function uncompressed(dataset: Buffer, fromTs: string, to: string, codecs: Codecs, vrOf: VrOf): TranscodeResult {
  if (to !== TS.ExplicitVRLittleEndian && to !== TS.ImplicitVRLittleEndian) return { kind: 'skip', reason: `cannot produce ${to}` };
  let explicit: Buffer;
  let frames = 0;
  if (fromTs === TS.ExplicitVRLittleEndian) explicit = dataset;
  else if (fromTs === TS.ImplicitVRLittleEndian) {
    if (to === TS.ImplicitVRLittleEndian) return { kind: 'done', dataset, transferSyntaxUid: to, frames: 0 };
    explicit = implicitToExplicit(dataset, vrOf);
  } else {
    const d = decodeDataset(dataset, fromTs, codecs);
    if (d.kind !== 'done') return d;
    explicit = d.dataset;
    frames = d.frames;
  }
  return { kind: 'done', dataset: to === TS.ImplicitVRLittleEndian ? explicitToImplicit(explicit) : explicit, transferSyntaxUid: to, frames };
}

/**
 * Why pixel data that is more than its frames must not be re-encoded: the codecs carry frames
 * only, so trailing padding (seen: 128 bytes after an MR's frames) would be lost. The one byte
 * PS3.5 §7.1.1 adds to make an odd value even is allowed when it is 0x00, since decoding writes
 * that same byte back.
 */
function notExactlyFrames(dataset: Buffer, valueOffset: number, length: number, framesBytes: number): string | undefined {
  if (length === framesBytes) return undefined;
  if (framesBytes % 2 === 1 && length === framesBytes + 1 && dataset[valueOffset + framesBytes] === 0) return undefined;
  const n = length - framesBytes;
  return `pixel data is ${length} bytes, its frames ${framesBytes}: the ${n} byte${n === 1 ? '' : 's'} after them would be lost`;
}
