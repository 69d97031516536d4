import { inflateRawSync } from 'node:zlib';
import { codecFailed } from './codec-error.js';
import type { Codecs, TranscodeResult } from './codec-modules.js';
import { j2kCoding, j2kDecodeFrame } from './codecs/j2k.js';
import { jpegDctDecodeFrame, jpegHeader, jpegLosslessDecodeFrame, libjpegSeesYcbcr } from './codecs/jpeg.js';
import { jpeg12DecodeFrame } from './codecs/jpeg12.js';
import { htj2kDecodeFrame } from './codecs/htj2k.js';
import { jlsDecodeFrame } from './codecs/jpeg-ls.js';
import { rleDecodeFrame } from './codecs/rle.js';
import { type ElementSet, nativePixelData, rebuild, textValue, usValue } from './dataset-edit.js';
import { findElement, readText, topLevelElements } from '../dicom/elements.js';
import { framesOf, readFragments } from '../dicom/encapsulation.js';
import { type ImagePixel, imagePixel, isNotCompressible } from '../dicom/image-pixel.js';
import { Tag } from '../dicom/tags.js';
import { TS } from '../dicom/transfer-syntaxes.js';

/**
 * Decoding a data set held in a compressed syntax to Explicit VR Little Endian, for a destination
 * that takes only uncompressed data. Runs in a codec worker (see pool.ts).
 *
 * Decoding never makes an image lossy, but it must not hide that one was: an image decoded from
 * lossily coded frames gets Lossy Image Compression (0028,2110) = 01, and its Ratio (0028,2112)
 * and Method (0028,2114) are kept, or added when missing (PS3.3 §C.7.6.1.1.5). Photometric
 * Interpretation becomes what the decoded samples are (RGB where the decoder undid a colour
 * transform), Planar Configuration 0 (decoders give interleaved samples, except JPEG-LS and RLE,
 * which keep their layout), and Bits Allocated/Stored stay as they were.
 *
 * @see PS3.5 §8.2 (native and encapsulated pixel data), §10 and Annex A.4 (the compressed syntaxes)
 */

/** Stored syntaxes the gateway can decode to Explicit VR Little Endian. */
export const DECODABLE: ReadonlySet<string> = new Set([
  TS.JPEGBaseline8Bit,
  TS.JPEGExtended12Bit,
  TS.JPEGLosslessProcess14,
  TS.JPEGLossless,
  TS.JPEGLSLossless,
  TS.JPEGLSNearLossless,
  TS.JPEG2000Lossless,
  TS.JPEG2000,
  TS.HTJ2KLossless,
  TS.HTJ2KLosslessRPCL,
  TS.HTJ2K,
  TS.RLELossless,
  TS.DeflatedExplicitVRLittleEndian,
]);

/** Defined Terms of Lossy Image Compression Method (0028,2114). @see PS3.3 §C.7.6.1.1.5.1 */
const METHOD: Record<string, string> = {
  [TS.JPEGBaseline8Bit]: 'ISO_10918_1',
  [TS.JPEGExtended12Bit]: 'ISO_10918_1',
  [TS.JPEGLSNearLossless]: 'ISO_14495_1',
  [TS.JPEG2000Lossless]: 'ISO_15444_1',
  [TS.JPEG2000]: 'ISO_15444_1',
  [TS.HTJ2KLossless]: 'ISO_15444_15',
  [TS.HTJ2KLosslessRPCL]: 'ISO_15444_15',
  [TS.HTJ2K]: 'ISO_15444_15',
};

/** One decoded frame: its samples, whether they came from lossy coding, and the photometric they are now in. */
interface Decoded {
  pixels: Buffer;
  lossy: boolean;
  photometric?: string | undefined;
  /** The layout of colour samples; undefined for "interleaved, as Planar Configuration 0". */
  planar?: number | undefined;
}

/** Decode a data set stored in a compressed syntax to Explicit VR Little Endian. */
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
  let lossy = false;
  let photometric = img.photometric;
  let planar: number | undefined;
  for (const [i, s] of streams.entries()) {
    const d = decodeFrame(s, fromTs, img, codecs);
    if (typeof d === 'string') return { kind: 'skip', reason: d };
    if (d.pixels.length !== img.frameBytes) return { kind: 'skip', reason: `frame ${i + 1} decodes to ${d.pixels.length} bytes, ${img.frameBytes} expected` };
    // Every frame of one object must come out alike (one attribute set describes them all).
    if (i > 0 && ((d.photometric ?? img.photometric) !== photometric || (d.planar ?? 0) !== planar)) return { kind: 'skip', reason: `frame ${i + 1} decodes to another colour layout than frame 1` };
    photometric = d.photometric ?? img.photometric;
    planar = d.planar ?? 0;
    lossy ||= d.lossy;
    out.push(d.pixels);
  }
  const compressed = streams.reduce((n, s) => n + s.length, 0);
  const sets = attributeSets(dataset, elements, img, { lossy, photometric, compressedBytes: compressed, method: METHOD[fromTs] });
  const planarOut = img.samplesPerPixel > 1 ? planar : undefined;
  if (planarOut !== undefined && !img.planarElement) sets.push({ tag: Tag.PlanarConfiguration, vr: 'US', value: usValue(planarOut) });
  sets.sort((a, b) => a.tag - b.tag);
  return { kind: 'done', dataset: rebuild(dataset, elements, img, nativePixelData(out, img.bitsAllocated), planarOut, sets), transferSyntaxUid: TS.ExplicitVRLittleEndian, frames: img.frames };
}

/** One frame through the decoder of its syntax, or why it cannot be decoded faithfully. */
function decodeFrame(s: Buffer, ts: string, img: ImagePixel, codecs: Codecs): Decoded | string {
  const colour = img.samplesPerPixel > 1;
  switch (ts) {
    case TS.JPEGBaseline8Bit:
    case TS.JPEGExtended12Bit: {
      const h = jpegHeader(s);
      if (h.sof !== 0xc0 && h.sof !== 0xc1) return `JPEG frame uses SOF${h.sof - 0xc0}, not baseline or extended sequential`;
      if (h.components !== img.samplesPerPixel) return 'JPEG: component count differs from Samples per Pixel';
      // Checked before decoding: the decoder allocates what the frame header says.
      if (h.rows !== img.rows || h.columns !== img.columns) return `JPEG frame is ${h.columns} x ${h.rows}, the data set says ${img.columns} x ${img.rows}`;
      if (h.precision === 12) {
        // libjpeg-turbo's build is 8-bit only: our own sequential decoder, monochrome (no colour conversion to agree on).
        if (colour) return 'JPEG: 12-bit colour frames are not decoded by this release';
        if (img.bitsAllocated !== 16) return `JPEG: 12-bit samples in ${img.bitsAllocated} bits allocated`;
        return { pixels: jpeg12DecodeFrame(s).pixels, lossy: true };
      }
      if (h.precision !== 8) return `JPEG: ${h.precision}-bit frames are not decoded`;
      if (!codecs.libjpeg) return 'JPEG: decoder not loaded';
      // libjpeg converts what it takes for YCbCr to RGB; DCMTK does the same only when the
      // Photometric Interpretation says YBR. Where the two disagree the result would differ
      // from what the modality meant: refused rather than guessed.
      const ycc = libjpegSeesYcbcr(h);
      let photometric: string | undefined;
      if (colour && ycc) {
        if (img.photometric !== 'YBR_FULL_422' && img.photometric !== 'YBR_FULL') return `JPEG: colour stream coded as YCbCr but Photometric Interpretation is ${img.photometric}`;
        photometric = 'RGB';
      } else if (colour && img.photometric !== 'RGB' && img.photometric !== 'YBR_FULL') return `JPEG: Photometric Interpretation ${img.photometric} with an RGB-coded stream`;
      const d = jpegDctDecodeFrame(codecs.libjpeg(), s);
      if (d.components !== img.samplesPerPixel) return 'JPEG: decoded component count differs from Samples per Pixel';
      return { pixels: d.pixels, lossy: true, photometric };
    }
    case TS.JPEGLosslessProcess14:
    case TS.JPEGLossless: {
      const h = jpegHeader(s);
      if (h.sof !== 0xc3) return `JPEG lossless syntax with a SOF${h.sof - 0xc0} frame`;
      if (h.pointTransform !== 0) return 'JPEG lossless frame with a point transform is not decoded by this release';
      if (h.components !== img.samplesPerPixel) return 'JPEG lossless: component count differs from Samples per Pixel';
      if (h.rows !== img.rows || h.columns !== img.columns) return `JPEG frame is ${h.columns} x ${h.rows}, the data set says ${img.columns} x ${img.rows}`;
      if (colour && img.bitsAllocated !== 8) return 'JPEG lossless: colour above 8 bits is not decoded by this release';
      if (h.precision > img.bitsAllocated) return `JPEG lossless: ${h.precision}-bit samples in ${img.bitsAllocated} bits allocated`;
      return { pixels: jpegLosslessDecodeFrame(s, img.bitsAllocated === 8 ? 1 : 2), lossy: false };
    }
    case TS.JPEGLSLossless:
    case TS.JPEGLSNearLossless: {
      const d = jlsDecodeFrame(codecs.charls(), s, ts === TS.JPEGLSNearLossless);
      return { pixels: d.pixels, lossy: d.near > 0, planar: colour ? (d.planar ? 1 : 0) : undefined };
    }
    case TS.RLELossless: {
      const planar = colour && img.planarConfiguration === 1;
      const pixels = rleDecodeFrame(s, { rows: img.rows, columns: img.columns, samplesPerPixel: img.samplesPerPixel, bytesPerSample: img.bitsAllocated / 8, planar });
      return { pixels, lossy: false, planar: colour ? img.planarConfiguration : undefined };
    }
    case TS.JPEG2000Lossless:
    case TS.JPEG2000: {
      const c = j2kCoding(s);
      if (!codecs.openjpeg) return 'JPEG 2000: decoder not loaded';
      const d = j2kDecodeFrame(codecs.openjpeg(), s);
      if (d.components !== img.samplesPerPixel) return 'JPEG 2000: component count differs from Samples per Pixel';
      return { pixels: d.pixels, lossy: !c.reversible, photometric: colour && c.mct ? 'RGB' : undefined };
    }
    default: {
      // HTJ2K (.201, .202, .203)
      const c = j2kCoding(s);
      const d = htj2kDecodeFrame(codecs.openjph(), s);
      if (d.components !== img.samplesPerPixel) return 'HTJ2K: component count differs from Samples per Pixel';
      return { pixels: d.pixels, lossy: !c.reversible || !d.reversible, photometric: colour && c.mct ? 'RGB' : undefined };
    }
  }
}

/**
 * Photometric Interpretation when the decoder changed it, and the lossy compression attributes
 * when the frames were lossily coded: (0028,2110) = 01; Ratio and Method kept when present,
 * added otherwise (the ratio measured as uncompressed over compressed frame bytes).
 */
function attributeSets(ds: Buffer, elements: ReturnType<typeof topLevelElements>, img: ImagePixel, r: { lossy: boolean; photometric: string; compressedBytes: number; method: string | undefined }): ElementSet[] {
  const sets: ElementSet[] = [];
  if (r.photometric !== img.photometric) sets.push({ tag: Tag.PhotometricInterpretation, vr: 'CS', value: textValue(r.photometric) });
  if (!r.lossy) return sets;
  if (readText(ds, findElement(elements, LOSSY_FLAG))?.trim() !== '01') sets.push({ tag: LOSSY_FLAG, vr: 'CS', value: textValue('01') });
  if (!findElement(elements, LOSSY_RATIO) && r.compressedBytes > 0) {
    const ratio = (img.frames * img.frameBytes) / r.compressedBytes;
    sets.push({ tag: LOSSY_RATIO, vr: 'DS', value: textValue(String(Number(ratio.toPrecision(4)))) });
  }
  if (!findElement(elements, LOSSY_METHOD) && r.method) sets.push({ tag: LOSSY_METHOD, vr: 'CS', value: textValue(r.method) });
  return sets;
}

/** (0028,2110) Lossy Image Compression, (0028,2112) Ratio, (0028,2114) Method. @see PS3.3 §C.7.6.1.1.5 */
const LOSSY_FLAG = 0x00282110;
const LOSSY_RATIO = 0x00282112;
const LOSSY_METHOD = 0x00282114;

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
