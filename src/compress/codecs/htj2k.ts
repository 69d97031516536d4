import { codecFailed } from '../codec-error.js';
import type { OpenJPHModule } from '@cornerstonejs/codec-openjph';

/**
 * HTJ2K lossless (reversible 5/3 wavelet) through OpenJPH compiled to WebAssembly. Runs only
 * in a codec worker. Single-component images only: this OpenJPH build codes 12/16-bit colour
 * and colour without the RCT incorrectly, and writes invalid streams for signed 8-bit data
 * (measured against opj_decompress), so those images are passed through uncompressed.
 *
 * @see PS3.5 §8.2.4 and Annex A.4.4 (JPEG 2000), A.4.11 (High-Throughput JPEG 2000); ISO/IEC 15444-15
 */
export interface HtFrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  signed: boolean;
}

/** Why an image cannot be coded with this codec, or undefined when it can. */
export function htj2kUnsupported(samplesPerPixel: number, bitsAllocated: number, signed: boolean): string | undefined {
  if (samplesPerPixel !== 1) return 'HTJ2K: colour images are not coded by this release';
  if (bitsAllocated === 8 && signed) return 'HTJ2K: signed 8-bit images are not coded by this release';
  return undefined;
}

export function htj2kEncodeFrame(m: OpenJPHModule, frame: Uint8Array, info: HtFrameInfo): Buffer {
  const enc = new m.HTJ2KEncoder();
  try {
    enc.getDecodedBuffer({ width: info.columns, height: info.rows, bitsPerSample: info.bitsAllocated, componentCount: 1, isSigned: info.signed, isUsingColorTransform: false }).set(frame);
    enc.setQuality(true, 0);
    enc.encode();
    return Buffer.from(enc.getEncodedBuffer());
  } finally {
    enc.delete();
  }
}

export function htj2kDecodeFrame(m: OpenJPHModule, stream: Uint8Array): { pixels: Buffer; width: number; height: number; components: number; reversible: boolean } {
  const dec = new m.HTJ2KDecoder();
  try {
    dec.getEncodedBuffer(stream.length).set(stream);
    dec.decode();
    const fi = dec.getFrameInfo();
    // OpenJPH reports a broken stream as a zero-sized frame rather than an exception.
    if (!fi.width || !fi.height) throw codecFailed('HTJ2K stream could not be decoded');
    return { pixels: Buffer.from(dec.getDecodedBuffer()), width: fi.width, height: fi.height, components: fi.componentCount, reversible: dec.getIsReversible() };
  } finally {
    dec.delete();
  }
}
