import { type ElementPos, findElement, readText, readUs } from './elements.js';
import { Tag } from './tags.js';

/**
 * The Image Pixel module attributes a pixel codec needs, read from a data set's top-level
 * elements, and the Pixel Data element itself.
 *
 * @see PS3.3 §C.7.6.3 (Image Pixel module), §C.7.6.6 (Multi-frame: Number of Frames)
 */
export interface ImagePixel {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  /** 0 colour-by-pixel (interleaved), 1 colour-by-plane; 0 when absent. */
  planarConfiguration: number;
  photometric: string;
  frames: number;
  /** Bytes of one uncompressed frame. */
  frameBytes: number;
  pixelData: ElementPos;
  /** The Planar Configuration element, when present (its value may have to change). */
  planarElement: ElementPos | undefined;
}

/** Why a data set's pixels are not re-encoded (logged and counted, never an error). */
export type NotCompressible = { reason: string };

/** The image description, or why its pixels cannot be handled. */
export function imagePixel(buf: Buffer, elements: readonly ElementPos[]): ImagePixel | NotCompressible {
  if (findElement(elements, Tag.FloatPixelData) || findElement(elements, Tag.DoubleFloatPixelData)) return { reason: 'float pixel data' };
  const pixelData = findElement(elements, Tag.PixelData);
  if (!pixelData) return { reason: 'no pixel data' };
  const rows = readUs(buf, findElement(elements, Tag.Rows));
  const columns = readUs(buf, findElement(elements, Tag.Columns));
  const samplesPerPixel = readUs(buf, findElement(elements, Tag.SamplesPerPixel)) ?? 1;
  const bitsAllocated = readUs(buf, findElement(elements, Tag.BitsAllocated));
  const bitsStored = readUs(buf, findElement(elements, Tag.BitsStored)) ?? bitsAllocated;
  const pixelRepresentation = readUs(buf, findElement(elements, Tag.PixelRepresentation)) ?? 0;
  const planarElement = findElement(elements, Tag.PlanarConfiguration);
  const planarConfiguration = readUs(buf, planarElement) ?? 0;
  const photometric = readText(buf, findElement(elements, Tag.PhotometricInterpretation)) ?? '';
  const framesText = readText(buf, findElement(elements, Tag.NumberOfFrames));
  const frames = framesText ? Number.parseInt(framesText, 10) : 1;
  if (!rows || !columns || !bitsAllocated || bitsStored === undefined) return { reason: 'image pixel module incomplete' };
  if (!Number.isInteger(frames) || frames < 1) return { reason: 'invalid number of frames' };
  if (bitsAllocated !== 8 && bitsAllocated !== 16) return { reason: `${bitsAllocated} bits allocated` };
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) return { reason: `${samplesPerPixel} samples per pixel` };
  const frameBytes = rows * columns * samplesPerPixel * (bitsAllocated / 8);
  return { rows, columns, samplesPerPixel, bitsAllocated, bitsStored, pixelRepresentation, planarConfiguration, photometric, frames, frameBytes, pixelData, planarElement };
}

export function isNotCompressible(x: ImagePixel | NotCompressible): x is NotCompressible {
  return 'reason' in x;
}
