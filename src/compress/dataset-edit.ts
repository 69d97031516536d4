import type { ElementPos } from '../dicom/elements.js';
import type { ImagePixel } from '../dicom/image-pixel.js';

/**
 * Splicing a data set (Explicit VR Little Endian, top level): a new Pixel Data element and a
 * few short attributes set or added, every other byte copied as it was.
 */

/** One top-level attribute to set (replacing the element) or add (in tag order): short-form VRs only. */
export interface ElementSet {
  tag: number;
  vr: 'CS' | 'DS' | 'US';
  value: Buffer;
}

/** A text value padded with a space to even length, as PS3.5 §6.2 wants for CS and DS. */
export function textValue(s: string): Buffer {
  return Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
}

export function usValue(n: number): Buffer {
  const v = Buffer.alloc(2);
  v.writeUInt16LE(n, 0);
  return v;
}

function encodeElement(e: ElementSet): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(e.tag >>> 16, 0);
  head.writeUInt16LE(e.tag & 0xffff, 2);
  head.write(e.vr, 4, 'latin1');
  head.writeUInt16LE(e.value.length, 6);
  return Buffer.concat([head, e.value]);
}

/** A native (uncompressed) Pixel Data element: OW for 16-bit, OB for 8-bit, padded to even length. */
export function nativePixelData(frames: Buffer[], bitsAllocated: number): Buffer[] {
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
 * The data set with its Pixel Data element replaced, Planar Configuration set when it is present
 * (`planarOut`), and the attributes of `sets` replaced or added. A (retired) group length
 * (gggg,0000) of a group that changes is kept with its value recomputed for the new bytes.
 */
export function rebuild(dataset: Buffer, elements: readonly ElementPos[], img: ImagePixel, pixelData: Buffer[], planarOut: number | undefined, sets: readonly ElementSet[] = []): Buffer {
  const edits: { start: number; end: number; tag: number; bytes: Buffer[] }[] = [];
  if (planarOut !== undefined && img.planarElement && img.planarConfiguration !== planarOut && img.planarElement.length === 2) {
    edits.push({ start: img.planarElement.valueOffset, end: img.planarElement.end, tag: img.planarElement.tag, bytes: [usValue(planarOut)] });
  }
  for (const s of sets) {
    const at = elements.find((e) => e.tag === s.tag);
    if (at) edits.push({ start: at.start, end: at.end, tag: s.tag, bytes: [encodeElement(s)] });
    else {
      // Added in tag order: before the first element with a greater tag (at the latest, Pixel Data).
      const next = elements.find((e) => e.tag > s.tag) ?? img.pixelData;
      edits.push({ start: next.start, end: next.start, tag: s.tag, bytes: [encodeElement(s)] });
    }
  }
  edits.push({ start: img.pixelData.start, end: img.pixelData.end, tag: img.pixelData.tag, bytes: pixelData });
  for (const group of new Set(edits.map((e) => e.tag >>> 16))) {
    const groupLength = elements.find((e) => e.tag === (group << 16) >>> 0);
    if (!groupLength || groupLength.length !== 4) continue;
    let bytes = elements.filter((e) => e.tag >>> 16 === group && e !== groupLength).reduce((n, e) => n + e.end - e.start, 0);
    for (const e of edits.filter((x) => x.tag >>> 16 === group)) bytes += e.bytes.reduce((n, b) => n + b.length, 0) - (e.end - e.start);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(bytes, 0);
    edits.push({ start: groupLength.valueOffset, end: groupLength.end, tag: groupLength.tag, bytes: [v] });
  }
  // Stable: an addition sorts before the replacement of the element it goes in front of.
  edits.sort((a, b) => a.start - b.start || a.end - b.end);
  const parts: Buffer[] = [];
  let from = 0;
  for (const e of edits) {
    parts.push(dataset.subarray(from, e.start), ...e.bytes);
    from = e.end;
  }
  parts.push(dataset.subarray(from));
  return Buffer.concat(parts);
}
