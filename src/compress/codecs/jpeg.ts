import { codecFailed } from '../codec-error.js';
import type { LibJpegTurboModule } from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs';
import { Decoder as LosslessDecoder } from 'jpeg-lossless-decoder-js';

/**
 * Decoding of the JPEG (ISO/IEC 10918-1) transfer syntaxes, in a codec worker only:
 * - JPEG Baseline (Process 1) and Extended (Process 2 & 4) with 8-bit samples through
 *   libjpeg-turbo compiled to WebAssembly (the library DCMTK's dcmdjpeg builds on, so the
 *   samples match it exactly, see test/compress/jpeg-decode.test.ts). 12-bit Extended streams
 *   are refused: this libjpeg-turbo build decodes 8-bit samples only.
 * - JPEG Lossless (Process 14, any selection value) through jpeg-lossless-decoder-js.
 *
 * @see PS3.5 §8.2.1 and Annex A.4.1 (JPEG Image Compression); ISO/IEC 10918-1 Annex B (markers)
 */

/** What the marker segments before the first scan say about a JPEG stream. */
export interface JpegHeader {
  /** The SOF marker's low byte: 0xC0 baseline, 0xC1 extended, 0xC3 lossless, … */
  sof: number;
  precision: number;
  rows: number;
  columns: number;
  components: number;
  componentIds: number[];
  jfif: boolean;
  /** The Adobe APP14 marker's transform flag (0 none, 1 YCbCr, 2 YCCK), when there is one. */
  adobeTransform: number | undefined;
  /** Point transform (Al) of the first scan: lossless streams with one are refused. */
  pointTransform: number;
}

/** Parse the markers up to the first SOS; a stream that ends or breaks before it is the file's fault. */
export function jpegHeader(s: Uint8Array): JpegHeader {
  if (s.length < 4 || s[0] !== 0xff || s[1] !== 0xd8) throw codecFailed('JPEG frame does not start with SOI');
  let pos = 2;
  let h: Omit<JpegHeader, 'jfif' | 'adobeTransform' | 'pointTransform'> | undefined;
  let jfif = false;
  let adobeTransform: number | undefined;
  while (pos + 4 <= s.length) {
    if (s[pos] !== 0xff) throw codecFailed(`JPEG marker expected at byte ${pos}`);
    const marker = s[pos + 1]!;
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    const len = (s[pos + 2]! << 8) | s[pos + 3]!;
    const seg = pos + 4;
    if (len < 2 || seg + len - 2 > s.length) throw codecFailed('JPEG marker segment runs past the end of the frame');
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const components = s[seg + 5]!;
      const componentIds = Array.from({ length: components }, (_, i) => s[seg + 6 + i * 3]!);
      h = { sof: marker, precision: s[seg]!, rows: (s[seg + 1]! << 8) | s[seg + 2]!, columns: (s[seg + 3]! << 8) | s[seg + 4]!, components, componentIds };
    } else if (marker === 0xe0 && len >= 7 && Buffer.from(s.subarray(seg, seg + 5)).toString('latin1') === 'JFIF\0') jfif = true;
    else if (marker === 0xee && len >= 14 && Buffer.from(s.subarray(seg, seg + 5)).toString('latin1') === 'Adobe') adobeTransform = s[seg + 11];
    else if (marker === 0xda) {
      if (!h) throw codecFailed('JPEG scan before any frame header');
      const ns = s[seg]!;
      const pointTransform = s[seg + 1 + ns * 2 + 2]! & 0x0f;
      return { ...h, jfif, adobeTransform, pointTransform };
    }
    pos = seg + len - 2;
  }
  throw codecFailed('JPEG frame has no scan');
}

/**
 * Whether libjpeg takes a 3-component stream for YCbCr, and so converts it to RGB: its own rule
 * (jdapimin.c default_decompress_parms): a JFIF marker says YCbCr, an Adobe marker says what its
 * transform flag says, otherwise component ids 'R','G','B' mean RGB and anything else YCbCr.
 */
export function libjpegSeesYcbcr(h: JpegHeader): boolean {
  if (h.components !== 3) return false;
  if (h.jfif) return true;
  if (h.adobeTransform !== undefined) return h.adobeTransform !== 0;
  const [a, b, c] = h.componentIds;
  return !(a === 0x52 && b === 0x47 && c === 0x42);
}

/** A Baseline or Extended (8-bit) frame, decoded by libjpeg-turbo: interleaved samples, YCbCr converted to RGB. */
export function jpegDctDecodeFrame(m: LibJpegTurboModule, stream: Uint8Array): { pixels: Buffer; width: number; height: number; components: number } {
  const dec = new m.JPEGDecoder();
  try {
    dec.getEncodedBuffer(stream.length).set(stream);
    dec.decode();
    const fi = dec.getFrameInfo();
    if (!fi.width || !fi.height) throw codecFailed('JPEG frame could not be decoded');
    return { pixels: Buffer.from(dec.getDecodedBuffer()), width: fi.width, height: fi.height, components: fi.componentCount };
  } finally {
    dec.delete();
  }
}

/**
 * A Lossless (Process 14) frame: samples of `bytesPerSample` bytes, little endian, colour
 * interleaved. The decoder throws plain errors for broken streams: they become the file's fault.
 */
export function jpegLosslessDecodeFrame(stream: Uint8Array, bytesPerSample: 1 | 2): Buffer {
  // The decoder reads from an ArrayBuffer: give it one holding exactly this frame.
  const ab = stream.buffer.slice(stream.byteOffset, stream.byteOffset + stream.byteLength) as ArrayBuffer;
  let out: Uint8Array | Uint16Array;
  try {
    out = new LosslessDecoder().decode(ab, 0, ab.byteLength, bytesPerSample);
  } catch (err) {
    throw codecFailed(`JPEG lossless frame could not be decoded: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Uint16Array samples are in the platform's byte order; every target (x64, arm64) is little endian.
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}
