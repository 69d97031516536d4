import { DicomParseError } from '../errors.js';
import { Tag } from './tags.js';

/**
 * The top-level elements of an Explicit VR Little Endian data set held in memory: where each
 * header and value lies, so that a transcoder can copy every other element byte for byte and
 * replace only Pixel Data. Sequences and encapsulated values are stepped over, not decoded.
 *
 * @see PS3.5 §7.1.2 (explicit VR element encoding), §7.5 (nested data sets), §A.4 (encapsulation)
 */
export interface ElementPos {
  tag: number;
  vr: string;
  /** Offset of the element's first header byte. */
  start: number;
  /** Offset of the first value byte. */
  valueOffset: number;
  /** Value length; `undefined` for an undefined-length value (sequence, encapsulated pixels). */
  length: number | undefined;
  /** Offset just past the element (after its delimiter for an undefined length). */
  end: number;
}

const UNDEFINED = 0xffffffff;
/** VRs with 2 reserved bytes and a 32-bit length. @see PS3.5 Table 7.1-1 */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function tagAt(buf: Buffer, off: number): number {
  return ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
}

function fail(message: string): never {
  throw new DicomParseError('DATASET_MALFORMED', message);
}

/** Every top-level element, in order. Throws {@link DicomParseError} on a malformed data set. */
export function topLevelElements(buf: Buffer): ElementPos[] {
  const out: ElementPos[] = [];
  let off = 0;
  while (off < buf.length) {
    const e = readElement(buf, off, buf.length, false);
    out.push(e);
    off = e.end;
  }
  return out;
}

function readElement(buf: Buffer, off: number, limit: number, implicit: boolean): ElementPos {
  if (off + 8 > limit) fail(`element header at ${off} runs past the end`);
  const tag = tagAt(buf, off);
  let vr: string;
  let length: number;
  let valueOffset: number;
  if (implicit || (tag >>> 16) === 0xfffe) {
    vr = 'UN';
    length = buf.readUInt32LE(off + 4);
    valueOffset = off + 8;
  } else {
    vr = buf.toString('latin1', off + 4, off + 6);
    if (LONG_VRS.has(vr)) {
      if (off + 12 > limit) fail(`element header at ${off} runs past the end`);
      length = buf.readUInt32LE(off + 8);
      valueOffset = off + 12;
    } else {
      length = buf.readUInt16LE(off + 6);
      valueOffset = off + 8;
    }
  }
  if (length !== UNDEFINED) {
    const end = valueOffset + length;
    if (end > limit) fail(`element ${tag.toString(16)} at ${off} runs past the end`);
    return { tag, vr, start: off, valueOffset, length, end };
  }
  // Undefined length: a sequence of items (SQ, UN holding implicit VR data) or pixel fragments.
  const childImplicit = implicit || vr === 'UN';
  const end = skipItems(buf, valueOffset, limit, childImplicit);
  return { tag, vr, start: off, valueOffset, length: undefined, end };
}

/** Step over items up to and including the Sequence Delimitation Item; returns the offset after it. */
function skipItems(buf: Buffer, off: number, limit: number, implicit: boolean): number {
  for (;;) {
    if (off + 8 > limit) fail('sequence without its delimiter');
    const tag = tagAt(buf, off);
    const len = buf.readUInt32LE(off + 4);
    off += 8;
    if (tag === Tag.SequenceDelimitationItem) return off;
    if (tag !== Tag.Item) fail(`item expected at ${off - 8}, found ${tag.toString(16)}`);
    if (len !== UNDEFINED) {
      if (off + len > limit) fail('item runs past the end');
      off += len;
      continue;
    }
    // Undefined-length item: elements until the Item Delimitation Item.
    for (;;) {
      if (off + 8 > limit) fail('item without its delimiter');
      if (tagAt(buf, off) === Tag.ItemDelimitationItem) {
        off += 8;
        break;
      }
      off = readElement(buf, off, limit, implicit).end;
    }
  }
}

/** The element with this tag among `elements`, if present. */
export function findElement(elements: readonly ElementPos[], tag: number): ElementPos | undefined {
  return elements.find((e) => e.tag === tag);
}

/** First value of a US element. */
export function readUs(buf: Buffer, e: ElementPos | undefined): number | undefined {
  if (!e || e.length === undefined || e.length < 2) return undefined;
  return buf.readUInt16LE(e.valueOffset);
}

/** A text value with trailing padding removed. */
export function readText(buf: Buffer, e: ElementPos | undefined): string | undefined {
  if (!e || e.length === undefined) return undefined;
  return buf.toString('latin1', e.valueOffset, e.valueOffset + e.length).replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/** An item, item delimitation or sequence delimitation header (no VR in any syntax). @see PS3.5 §7.5 */
export function itemHeader(tag: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  b.writeUInt32LE(length, 4);
  return b;
}
