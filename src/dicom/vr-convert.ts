import { DicomParseError } from '../errors.js';
import { itemHeader } from './elements.js';
import { Tag } from './tags.js';

/**
 * Conversion between Implicit VR Little Endian and Explicit VR Little Endian data sets, element
 * by element, values untouched. Implicit → explicit needs each element's VR from a data
 * dictionary (`vrOf`); elements it does not know (private ones) become UN, which carries any
 * value. Sequences are converted recursively; a defined length is recomputed from the converted
 * content, an undefined one stays undefined, so converting back gives the original bytes.
 *
 * @see PS3.5 §7.1.2 and §7.1.3 (explicit and implicit element encoding), §6.2.2 (UN), §7.5 (nesting), §A.1, §A.2
 */
const UNDEFINED = 0xffffffff;
/** VRs with 2 reserved bytes and a 32-bit length in explicit VR. @see PS3.5 Table 7.1-1 */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** The VR of a tag in Implicit VR data, or undefined when the dictionary does not know it. */
export type VrOf = (tag: number) => string | undefined;

interface Out {
  parts: Buffer[];
  length: number;
}

function push(o: Out, b: Buffer): void {
  o.parts.push(b);
  o.length += b.length;
}

function tagAt(buf: Buffer, off: number): number {
  return ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
}


function fail(message: string): never {
  throw new DicomParseError('DATASET_MALFORMED', message);
}

/** Implicit VR LE → Explicit VR LE. */
export function implicitToExplicit(ds: Buffer, vrOf: VrOf): Buffer {
  const o: Out = { parts: [], length: 0 };
  implicitElements(ds, 0, ds.length, vrOf, o, false);
  return Buffer.concat(o.parts, o.length);
}

/** Explicit VR LE → Implicit VR LE. */
export function explicitToImplicit(ds: Buffer): Buffer {
  const o: Out = { parts: [], length: 0 };
  explicitElements(ds, 0, ds.length, o, false);
  return Buffer.concat(o.parts, o.length);
}

/** Convert implicit elements in [off, end) (or up to an Item Delimitation when `inItem`); returns the offset after. */
function implicitElements(buf: Buffer, off: number, end: number, vrOf: VrOf, o: Out, inItem: boolean): number {
  while (off < end) {
    if (off + 8 > end) fail('element header runs past the end');
    const tag = tagAt(buf, off);
    if (inItem && tag === Tag.ItemDelimitationItem) return off + 8;
    const len = buf.readUInt32LE(off + 4);
    const vr = vrOf(tag) ?? 'UN';
    off += 8;
    if (len === UNDEFINED || vr === 'SQ') {
      // A sequence (an unknown element with undefined length is one too): convert its items.
      const seq: Out = { parts: [], length: 0 };
      const after = items(buf, off, len === UNDEFINED ? end : off + len, seq, len === UNDEFINED, (b, o2, e, out, inItem) => implicitElements(b, o2, e, vrOf, out, inItem));
      push(o, explicitHeader(tag, 'SQ', len === UNDEFINED ? UNDEFINED : seq.length));
      o.parts.push(...seq.parts);
      o.length += seq.length;
      off = after;
      continue;
    }
    if (off + len > end) fail('element value runs past the end');
    // A short-VR value too long for a 16-bit length can only travel as UN.
    const outVr = !LONG_VRS.has(vr) && len > 0xffff ? 'UN' : vr;
    push(o, explicitHeader(tag, outVr, len));
    push(o, buf.subarray(off, off + len));
    off += len;
  }
  if (inItem) fail('item without its delimiter');
  return off;
}

type Elements = (buf: Buffer, off: number, end: number, o: Out, inItem: boolean) => number;

/** Convert a sequence's items with `elements`; lengths of defined-length items are recomputed. */
function items(buf: Buffer, off: number, end: number, o: Out, delimited: boolean, elements: Elements): number {
  for (;;) {
    if (!delimited && off >= end) return off;
    if (off + 8 > end) fail('sequence runs past the end');
    const tag = tagAt(buf, off);
    const len = buf.readUInt32LE(off + 4);
    off += 8;
    if (tag === Tag.SequenceDelimitationItem) {
      push(o, itemHeader(Tag.SequenceDelimitationItem, 0));
      return off;
    }
    if (tag !== Tag.Item) fail(`item expected, found ${tag.toString(16)}`);
    const item: Out = { parts: [], length: 0 };
    const after = len === UNDEFINED ? elements(buf, off, end, item, true) : elements(buf, off, off + len, item, false);
    if (len === UNDEFINED) push(item, itemHeader(Tag.ItemDelimitationItem, 0));
    push(o, itemHeader(Tag.Item, len === UNDEFINED ? UNDEFINED : item.length));
    o.parts.push(...item.parts);
    o.length += item.length;
    off = after;
  }
}

function explicitHeader(tag: number, vr: string, length: number): Buffer {
  const long = LONG_VRS.has(vr);
  const b = Buffer.alloc(long ? 12 : 8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  b.write(vr, 4, 'latin1');
  if (long) b.writeUInt32LE(length, 8);
  else b.writeUInt16LE(length, 6);
  return b;
}

function explicitElements(buf: Buffer, off: number, end: number, o: Out, inItem: boolean): number {
  while (off < end) {
    if (off + 8 > end) fail('element header runs past the end');
    const tag = tagAt(buf, off);
    if (inItem && tag === Tag.ItemDelimitationItem) return off + 8;
    const vr = buf.toString('latin1', off + 4, off + 6);
    const long = LONG_VRS.has(vr);
    const len = long ? buf.readUInt32LE(off + 8) : buf.readUInt16LE(off + 6);
    off += long ? 12 : 8;
    if (vr === 'SQ') {
      const seq: Out = { parts: [], length: 0 };
      const after = items(buf, off, len === UNDEFINED ? end : off + len, seq, len === UNDEFINED, explicitElements);
      push(o, itemHeader(tag, len === UNDEFINED ? UNDEFINED : seq.length));
      o.parts.push(...seq.parts);
      o.length += seq.length;
      off = after;
      continue;
    }
    if (len === UNDEFINED) {
      // UN of undefined length holds implicit VR content already (PS3.5 §6.2.2); encapsulated
      // pixel data cannot be implicit at all.
      if (tag === Tag.PixelData) fail('encapsulated pixel data cannot be written in Implicit VR');
      const start = off;
      const after = skipImplicitItems(buf, off, end);
      push(o, itemHeader(tag, UNDEFINED));
      push(o, buf.subarray(start, after));
      off = after;
      continue;
    }
    if (off + len > end) fail('element value runs past the end');
    push(o, itemHeader(tag, len));
    push(o, buf.subarray(off, off + len));
    off += len;
  }
  if (inItem) fail('item without its delimiter');
  return off;
}

/** Step over implicit-VR items up to and including the Sequence Delimitation Item. */
function skipImplicitItems(buf: Buffer, off: number, end: number): number {
  let depth = 1;
  while (off + 8 <= end) {
    const tag = tagAt(buf, off);
    const len = buf.readUInt32LE(off + 4);
    off += 8;
    if (tag === Tag.SequenceDelimitationItem) {
      if (--depth === 0) return off;
      continue;
    }
    if (tag === Tag.Item || tag === Tag.ItemDelimitationItem) {
      if (tag === Tag.Item && len !== UNDEFINED) off += len;
      continue;
    }
    if (len === UNDEFINED) depth++;
    else off += len;
  }
  return fail('sequence without its delimiter');
}
