import { codecFailed } from '../codec-error.js';
import type { CharLSModule } from '@cornerstonejs/codec-charls/wasmjs';

/**
 * JPEG-LS lossless (NEAR = 0) through CharLS compiled to WebAssembly. Runs only in a codec
 * worker. Samples are coded at the full Bits Allocated (as DCMTK's encoder does), so unused
 * high bits and two's-complement values come back exactly.
 *
 * @see PS3.5 §8.2.3 and Annex A.4.3 (JPEG-LS Image Compression); ISO/IEC 14495-1
 */
export interface JlsFrameInfo {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  /** Layout of the uncompressed frame: planar input is coded with interleave mode 0 (by component). */
  planar: boolean;
}

export function jlsEncodeFrame(m: CharLSModule, frame: Uint8Array, info: JlsFrameInfo): Buffer {
  const enc = new m.JpegLSEncoder();
  try {
    enc.getDecodedBuffer({ width: info.columns, height: info.rows, bitsPerSample: info.bitsAllocated, componentCount: info.samplesPerPixel }).set(frame);
    enc.setNearLossless(0);
    // One component: mode 0. Colour: interleaved input → line interleave (1); planar → by component (0).
    enc.setInterleaveMode(info.samplesPerPixel === 1 || info.planar ? 0 : 1);
    enc.encode();
    return padEven(Buffer.from(enc.getEncodedBuffer()));
  } finally {
    enc.delete();
  }
}

/**
 * Decode one frame. A near-lossless stream (NEAR > 0) is refused unless `allowNear` (the
 * JPEG-LS Lossy syntax, 1.2.840.10008.1.2.4.81): in the lossless syntax it would be a lie.
 */
export function jlsDecodeFrame(m: CharLSModule, stream: Uint8Array, allowNear = false): { pixels: Buffer; planar: boolean; near: number; width: number; height: number; bitsPerSample: number; components: number } {
  const dec = new m.JpegLSDecoder();
  try {
    dec.getEncodedBuffer(stream.length).set(stream);
    dec.decode();
    const fi = dec.getFrameInfo();
    const near = dec.getNearLossless();
    if (near !== 0 && !allowNear) throw codecFailed('JPEG-LS stream is near-lossless');
    // Interleave mode 0 with several components decodes plane by plane.
    const planar = fi.componentCount > 1 && dec.getInterleaveMode() === 0;
    return { pixels: Buffer.from(dec.getDecodedBuffer()), planar, near, width: fi.width, height: fi.height, bitsPerSample: fi.bitsPerSample, components: fi.componentCount };
  } finally {
    dec.delete();
  }
}

/**
 * Fragments are even length. A fill byte 0xFF before the final EOI marker keeps the stream
 * valid JPEG (ITU T.81 §B.1.1.2 allows fill bytes before any marker), as DCMTK does.
 */
function padEven(b: Buffer): Buffer {
  if (b.length % 2 === 0) return b;
  const out = Buffer.allocUnsafe(b.length + 1);
  b.copy(out, 0, 0, b.length - 2);
  out[b.length - 2] = 0xff;
  out[b.length - 1] = 0xff;
  out[b.length] = 0xd9;
  return out;
}
