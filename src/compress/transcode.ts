import { codecFailed } from './codec-error.js';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { CharLSModule } from '@cornerstonejs/codec-charls/wasmjs';
import type { OpenJPHModule } from '@cornerstonejs/codec-openjph';
import { type ElementPos, topLevelElements } from '../dicom/elements.js';
import { encapsulate, framesOf, readFragments } from '../dicom/encapsulation.js';
import { type ImagePixel, imagePixel, isNotCompressible } from '../dicom/image-pixel.js';
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

/** Stored syntaxes the gateway can decode to Explicit VR Little Endian (all lossless). */
export const DECODABLE: ReadonlySet<string> = new Set([TS.JPEGLSLossless, TS.RLELossless, TS.HTJ2KLossless, TS.HTJ2KLosslessRPCL, TS.DeflatedExplicitVRLittleEndian]);

export interface Codecs {
  charls: () => CharLSModule;
  openjph: () => OpenJPHModule;
  /** The most a deflated data set may inflate to (compress.maxObjectBytes); beyond it decoding fails. */
  maxInflatedBytes?: number | undefined;
}

export type TranscodeResult =
  | { kind: 'done'; dataset: Buffer; transferSyntaxUid: string; frames: number }
  /** The data set cannot be converted losslessly to that syntax (float pixels, 32-bit, no pixels…): send it another way. */
  | { kind: 'skip'; reason: string }
  /** A decoded frame differed from the original: the encoded form must not be used. */
  | { kind: 'mismatch'; reason: string };

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

/** Decode a data set stored in a lossless compressed syntax to Explicit VR Little Endian. */
export function decodeDataset(dataset: Buffer, fromTs: string, codecs: Codecs): TranscodeResult {
  if (fromTs === TS.DeflatedExplicitVRLittleEndian) {
    return { kind: 'done', dataset: inflateBounded(dataset, codecs.maxInflatedBytes), transferSyntaxUid: TS.ExplicitVRLittleEndian, frames: 0 };
  }
  if (!DECODABLE.has(fromTs)) return { kind: 'skip', reason: `no decoder for ${fromTs}` };
  const elements = topLevelElements(dataset);
  const img = imagePixel(dataset, elements);
  if (isNotCompressible(img)) return { kind: 'skip', reason: img.reason };
  if (img.pixelData.length !== undefined) return { kind: 'skip', reason: 'pixel data is not encapsulated' };
  const streams = framesOf(readFragments(dataset, img.pixelData.valueOffset, img.pixelData.end), img.frames);
  const out: Buffer[] = [];
  let planarOut: number | undefined;
  for (const [i, s] of streams.entries()) {
    let pixels: Buffer;
    if (fromTs === TS.JPEGLSLossless) {
      const d = jlsDecodeFrame(codecs.charls(), s);
      pixels = d.pixels;
      if (img.samplesPerPixel > 1) planarOut = d.planar ? 1 : 0;
    } else if (fromTs === TS.RLELossless) {
      const planar = img.samplesPerPixel > 1 && img.planarConfiguration === 1;
      pixels = rleDecodeFrame(s, { rows: img.rows, columns: img.columns, samplesPerPixel: img.samplesPerPixel, bytesPerSample: img.bitsAllocated / 8, planar });
    } else {
      const d = htj2kDecodeFrame(codecs.openjph(), s);
      if (d.components !== img.samplesPerPixel) return { kind: 'skip', reason: 'HTJ2K: component count differs from Samples per Pixel' };
      if (!d.reversible) return { kind: 'skip', reason: 'HTJ2K stream is not reversible (lossy)' };
      pixels = d.pixels;
      if (img.samplesPerPixel > 1) planarOut = 0;
    }
    if (pixels.length !== img.frameBytes) return { kind: 'skip', reason: `frame ${i + 1} decodes to ${pixels.length} bytes, ${img.frameBytes} expected` };
    out.push(pixels);
  }
  return { kind: 'done', dataset: rebuild(dataset, elements, img, nativePixelData(out, img.bitsAllocated), planarOut), transferSyntaxUid: TS.ExplicitVRLittleEndian, frames: img.frames };
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

/** A native (uncompressed) Pixel Data element: OW for 16-bit, OB for 8-bit, padded to even length. */
function nativePixelData(frames: Buffer[], bitsAllocated: number): Buffer[] {
  const length = frames.reduce((n, f) => n + f.length, 0);
  const pad = length % 2;
  const head = Buffer.alloc(12);
  head.writeUInt16LE(0x7fe0, 0);
  head.writeUInt16LE(0x0010, 2);
  head.write(bitsAllocated > 8 ? 'OW' : 'OB', 4, 'latin1');
  head.writeUInt32LE(length + pad, 8);
  return pad ? [head, ...frames, Buffer.alloc(1)] : [head, ...frames];
}

/**
 * The data set with its Pixel Data element replaced and, if asked, Planar Configuration set.
 * A (retired) (7FE0,0000) group length is kept with its value recomputed for the new bytes.
 */
function rebuild(dataset: Buffer, elements: readonly ElementPos[], img: ImagePixel, pixelData: Buffer[], planarOut: number | undefined): Buffer {
  const edits: { start: number; end: number; bytes: Buffer[] }[] = [];
  if (planarOut !== undefined && img.planarElement && img.planarConfiguration !== planarOut && img.planarElement.length === 2) {
    const v = Buffer.alloc(2);
    v.writeUInt16LE(planarOut, 0);
    edits.push({ start: img.planarElement.valueOffset, end: img.planarElement.end, bytes: [v] });
  }
  const groupLength = elements.find((e) => e.tag === 0x7fe00000);
  if (groupLength && groupLength.length === 4) {
    const pixelBytes = pixelData.reduce((n, b) => n + b.length, 0);
    const others = elements.filter((e) => e.tag >>> 16 === 0x7fe0 && e !== groupLength && e !== img.pixelData).reduce((n, e) => n + e.end - e.start, 0);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(pixelBytes + others, 0);
    edits.push({ start: groupLength.valueOffset, end: groupLength.end, bytes: [v] });
  }
  edits.push({ start: img.pixelData.start, end: img.pixelData.end, bytes: pixelData });
  edits.sort((a, b) => a.start - b.start);
  const parts: Buffer[] = [];
  let from = 0;
  for (const e of edits) {
    parts.push(dataset.subarray(from, e.start), ...e.bytes);
    from = e.end;
  }
  parts.push(dataset.subarray(from));
  return Buffer.concat(parts);
}

/**
 * Inflate a deflated data set, at most `max` bytes of it: a deflate bomb fails here (and its
 * object is dead-lettered with the reason) instead of exhausting the worker's memory.
 */
function inflateBounded(dataset: Buffer, max: number | undefined): Buffer {
  try {
    return inflateRawSync(dataset, max === undefined ? {} : { maxOutputLength: max });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw codecFailed(`deflated data set inflates to more than compress.maxObjectBytes=${max}`);
    throw codecFailed(`deflated data set cannot be inflated: ${(err as Error).message}`);
  }
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
