import { DicomParseError } from '../errors.js';
import { itemHeader } from './elements.js';
import { Tag } from './tags.js';

/**
 * Encapsulated Pixel Data: an undefined-length OB whose items are the Basic Offset Table and
 * then the fragments, closed by a Sequence Delimitation Item.
 *
 * @see PS3.5 §A.4 (Transfer Syntaxes for Encapsulation of Encoded Pixel Data), Table A.4-1/A.4-2
 */


/**
 * The whole Pixel Data element for `frames`, one fragment per frame (each padded to even
 * length), with a Basic Offset Table giving every frame's offset. Frames that would put an
 * offset beyond 2^32 leave the table empty (allowed, and what Extended Offset Table users do).
 */
export function encapsulate(frames: readonly Buffer[]): Buffer[] {
  const head = Buffer.alloc(12);
  head.writeUInt16LE(Tag.PixelData >>> 16, 0);
  head.writeUInt16LE(Tag.PixelData & 0xffff, 2);
  head.write('OB', 4, 'latin1');
  head.writeUInt32LE(0xffffffff, 8);
  const offsets: number[] = [];
  let at = 0;
  const body: Buffer[] = [];
  for (const f of frames) {
    offsets.push(at);
    const padded = f.length % 2 ? Buffer.concat([f, Buffer.alloc(1)]) : f;
    body.push(itemHeader(Tag.Item, padded.length), padded);
    at += 8 + padded.length;
  }
  const fits = at <= 0xffffffff;
  const table = Buffer.alloc(fits ? offsets.length * 4 : 0);
  if (fits) offsets.forEach((o, i) => table.writeUInt32LE(o, i * 4));
  return [head, itemHeader(Tag.Item, table.length), table, ...body, itemHeader(Tag.SequenceDelimitationItem, 0)];
}

/** The Basic Offset Table and fragments of an encapsulated Pixel Data value starting at `valueOffset`. */
export function readFragments(buf: Buffer, valueOffset: number, end: number): { offsets: number[]; fragments: Buffer[] } {
  let off = valueOffset;
  const items: Buffer[] = [];
  for (;;) {
    if (off + 8 > end) throw new DicomParseError('DATASET_MALFORMED', 'encapsulated pixel data without its delimiter');
    const tag = ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
    const len = buf.readUInt32LE(off + 4);
    off += 8;
    if (tag === Tag.SequenceDelimitationItem) break;
    if (tag !== Tag.Item || off + len > end) throw new DicomParseError('DATASET_MALFORMED', 'bad item in encapsulated pixel data');
    items.push(buf.subarray(off, off + len));
    off += len;
  }
  const [table, ...fragments] = items;
  if (!table) throw new DicomParseError('DATASET_MALFORMED', 'encapsulated pixel data without a Basic Offset Table item');
  const offsets: number[] = [];
  for (let i = 0; i + 4 <= table.length; i += 4) offsets.push(table.readUInt32LE(i));
  return { offsets, fragments };
}

/**
 * The compressed frames: one fragment per frame, all fragments for a single frame, or the
 * Basic Offset Table's grouping. Anything else cannot be split safely and throws.
 */
export function framesOf(enc: { offsets: number[]; fragments: Buffer[] }, frames: number): Buffer[] {
  const { offsets, fragments } = enc;
  if (frames === 1) return [fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments)];
  if (fragments.length === frames) return fragments;
  if (offsets.length === frames) {
    const out: Buffer[] = [];
    let at = 0;
    let fi = 0;
    for (let f = 0; f < frames; f++) {
      const stop = f + 1 < frames ? offsets[f + 1]! : Number.POSITIVE_INFINITY;
      const parts: Buffer[] = [];
      while (fi < fragments.length && at < stop) {
        parts.push(fragments[fi]!);
        at += 8 + fragments[fi]!.length;
        fi++;
      }
      out.push(Buffer.concat(parts));
    }
    return out;
  }
  throw new DicomParseError('DATASET_MALFORMED', `cannot tell ${frames} frames apart among ${fragments.length} fragments without a Basic Offset Table`);
}
