import { topLevelElements } from '../../src/dicom/elements.js';
import { imagePixel, isNotCompressible } from '../../src/dicom/image-pixel.js';
import { Tag } from '../../src/dicom/tags.js';

/**
 * Comparing images that went through a codec: pixel samples in one canonical (interleaved)
 * order whatever the Planar Configuration, and every other top-level element as raw bytes.
 */
export function canonicalSamples(ds: Buffer): number[] {
  const img = imagePixel(ds, topLevelElements(ds));
  if (isNotCompressible(img) || img.pixelData.length === undefined) throw new Error('not a native image');
  const n = img.rows * img.columns;
  const out: number[] = [];
  for (let f = 0; f < img.frames; f++)
    for (let p = 0; p < n; p++)
      for (let s = 0; s < img.samplesPerPixel; s++) {
        const i = img.planarConfiguration === 1 ? f * n * img.samplesPerPixel + s * n + p : (f * n + p) * img.samplesPerPixel + s;
        out.push(img.bitsAllocated === 16 ? ds.readUInt16LE(img.pixelData.valueOffset + i * 2) : ds[img.pixelData.valueOffset + i]!);
      }
  return out;
}

/** Tags whose raw element bytes differ between two data sets, Pixel Data and Planar Configuration aside. */
export function differingAttributes(a: Buffer, b: Buffer): string[] {
  const map = (ds: Buffer) => new Map(topLevelElements(ds).filter((e) => e.tag !== Tag.PixelData && e.tag !== Tag.PlanarConfiguration).map((e) => [e.tag, ds.subarray(e.start, e.end).toString('hex')]));
  const x = map(a);
  const y = map(b);
  return [...new Set([...x.keys(), ...y.keys()])].filter((t) => x.get(t) !== y.get(t)).map((t) => t.toString(16).padStart(8, '0'));
}

/** Tags whose values differ (VR and header form ignored), Pixel Data and Planar Configuration aside. */
export function differingValues(a: Buffer, b: Buffer): string[] {
  const map = (ds: Buffer) =>
    new Map(
      topLevelElements(ds)
        .filter((e) => e.tag !== Tag.PixelData && e.tag !== Tag.PlanarConfiguration && e.vr !== 'SQ' && e.length !== undefined)
        .map((e) => [e.tag, ds.subarray(e.valueOffset, e.valueOffset + e.length!).toString('hex')]),
    );
  const x = map(a);
  const y = map(b);
  return [...new Set([...x.keys(), ...y.keys()])].filter((t) => x.get(t) !== y.get(t)).map((t) => t.toString(16).padStart(8, '0'));
}
