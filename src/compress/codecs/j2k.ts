import { codecFailed } from '../codec-error.js';
import type { OpenJpegModule } from '@cornerstonejs/codec-openjpeg/decodewasmjs';

/**
 * JPEG 2000 (ISO/IEC 15444-1) decoding through OpenJPEG compiled to WebAssembly, in a codec
 * worker only: the library of opj_decompress, which the tests compare it with.
 *
 * @see PS3.5 §8.2.4 and Annex A.4.4 (JPEG 2000 Image Compression), A.4.11 (HTJ2K)
 */

/** What a JPEG 2000 or HTJ2K main header's COD marker says (both families share it). */
export interface J2kCoding {
  /** The multiple component transform is used (RCT with the 5/3 wavelet, ICT with the 9/7). */
  mct: boolean;
  /** The 5/3 reversible wavelet; false for the 9/7 irreversible (lossy) one. */
  reversible: boolean;
}

/**
 * The COD marker segment of a codestream's main header (a JP2 wrapper is not allowed in DICOM,
 * PS3.5 §A.4.4). @see ISO/IEC 15444-1 Annex A.6.1
 */
export function j2kCoding(s: Uint8Array): J2kCoding {
  if (s.length < 4 || s[0] !== 0xff || s[1] !== 0x4f) throw codecFailed('JPEG 2000 frame does not start with SOC');
  let pos = 2;
  while (pos + 4 <= s.length) {
    if (s[pos] !== 0xff) break;
    const marker = s[pos + 1]!;
    if (marker === 0x90 || marker === 0x93) break; // SOT, SOD: the main header is over
    const len = (s[pos + 2]! << 8) | s[pos + 3]!;
    if (marker === 0x52) {
      // Lcod, Scod, SGcod (progression 1, layers 2, MCT 1), SPcod (levels, xcb, ycb, style, transform)
      const seg = pos + 4;
      if (seg + 10 > s.length) break;
      return { mct: s[seg + 4] === 1, reversible: s[seg + 9] === 1 };
    }
    pos += 2 + len;
  }
  throw codecFailed('JPEG 2000 frame has no COD marker in its main header');
}

export function j2kDecodeFrame(m: OpenJpegModule, stream: Uint8Array): { pixels: Buffer; width: number; height: number; components: number; bitsPerSample: number } {
  const dec = new m.J2KDecoder();
  try {
    dec.getEncodedBuffer(stream.length).set(stream);
    dec.decode();
    const fi = dec.getFrameInfo();
    if (!fi.width || !fi.height) throw codecFailed('JPEG 2000 frame could not be decoded');
    return { pixels: Buffer.from(dec.getDecodedBuffer()), width: fi.width, height: fi.height, components: fi.componentCount, bitsPerSample: fi.bitsPerSample };
  } finally {
    dec.delete();
  }
}
