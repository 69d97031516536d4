import { DicomParseError } from '../errors.js';
import { Tag } from './tags.js';

/**
 * Storage Commitment Push Model: the UIDs, and the two small data sets it exchanges — the
 * N-ACTION request (which instances to commit) and the N-EVENT-REPORT result (which were
 * committed, which failed and why). Pure: encoding and decoding only, no I/O.
 *
 * Only the attributes of the Storage Commitment module are written or read; everything else in
 * a peer's data set (Storage Media File-Set ID, Retrieve AE Title…) is skipped.
 *
 * @see PS3.4 Annex J (Storage Commitment Service Class)
 * @see PS3.3 §C.14.1 (Storage Commitment Module), Table C.14-1 / C.14-2
 */
export const STORAGE_COMMITMENT_PUSH_MODEL = '1.2.840.10008.1.20.1';
/** The well-known SOP Instance every request and report addresses. @see PS3.4 §J.3.1 */
export const STORAGE_COMMITMENT_INSTANCE = '1.2.840.10008.1.20.1.1';
/** N-ACTION Action Type ID: Request Storage Commitment. @see PS3.4 Table J.3-1 */
export const ACTION_REQUEST_COMMITMENT = 1;
/** N-EVENT-REPORT Event Type IDs. @see PS3.4 Table J.3-2 */
export const EVENT_ALL_COMMITTED = 1;
export const EVENT_FAILURES_EXIST = 2;

export interface SopRef {
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface FailedRef extends SopRef {
  /** Failure Reason (0008,1197), a PS3.3 C.14.1.1 code. */
  reason: number;
}

export interface CommitmentRequest {
  transactionUid: string;
  refs: SopRef[];
}

export interface CommitmentResult {
  transactionUid: string;
  committed: SopRef[];
  failed: FailedRef[];
}

/** Most references accepted in one request or report (bounds what a peer can make us hold). */
export const MAX_REFS = 10_000;

// ---- encoding ------------------------------------------------------------------------------

type Enc = { explicitVr: boolean };

function element(tag: number, vr: string, value: Buffer, enc: Enc): Buffer {
  if (value.length % 2 === 1) value = Buffer.concat([value, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
  if (!enc.explicitVr) {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(tag >>> 16, 0);
    h.writeUInt16LE(tag & 0xffff, 2);
    h.writeUInt32LE(value.length, 4);
    return Buffer.concat([h, value]);
  }
  if (vr === 'SQ') {
    const h = Buffer.alloc(12);
    h.writeUInt16LE(tag >>> 16, 0);
    h.writeUInt16LE(tag & 0xffff, 2);
    h.write('SQ', 4, 'latin1');
    h.writeUInt32LE(value.length, 8);
    return Buffer.concat([h, value]);
  }
  const h = Buffer.alloc(8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write(vr, 4, 'latin1');
  h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}

const ui = (tag: number, uid: string, enc: Enc) => element(tag, 'UI', Buffer.from(uid, 'latin1'), enc);

function us(tag: number, v: number, enc: Enc): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return element(tag, 'US', b, enc);
}

/** A sequence of items, each a list of already encoded elements (in tag order), defined lengths. */
function sequence(tag: number, items: Buffer[][], enc: Enc): Buffer {
  const encoded = items.map((els) => {
    const body = Buffer.concat(els);
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0xfffe, 0);
    h.writeUInt16LE(0xe000, 2);
    h.writeUInt32LE(body.length, 4);
    return Buffer.concat([h, body]);
  });
  return element(tag, 'SQ', Buffer.concat(encoded), enc);
}

const refItem = (r: SopRef, enc: Enc) => [ui(Tag.ReferencedSopClassUid, r.sopClassUid, enc), ui(Tag.ReferencedSopInstanceUid, r.sopInstanceUid, enc)];

/** The N-ACTION-RQ data set. @see PS3.4 Table J.3-1 */
export function encodeCommitmentRequest(r: CommitmentRequest, enc: Enc): Buffer {
  return Buffer.concat([ui(Tag.TransactionUid, r.transactionUid, enc), sequence(Tag.ReferencedSopSequence, r.refs.map((x) => refItem(x, enc)), enc)]);
}

/** The N-EVENT-REPORT-RQ data set; its Event Type ID is {@link eventTypeOf}. @see PS3.4 Table J.3-2 */
export function encodeCommitmentResult(r: CommitmentResult, enc: Enc): Buffer {
  const parts = [ui(Tag.TransactionUid, r.transactionUid, enc)];
  if (r.failed.length > 0) {
    parts.push(sequence(Tag.FailedSopSequence, r.failed.map((f) => [...refItem(f, enc), us(Tag.FailureReason, f.reason, enc)]), enc));
  }
  if (r.committed.length > 0) parts.push(sequence(Tag.ReferencedSopSequence, r.committed.map((x) => refItem(x, enc)), enc));
  return Buffer.concat(parts);
}

export function eventTypeOf(r: CommitmentResult): number {
  return r.failed.length > 0 ? EVENT_FAILURES_EXIST : EVENT_ALL_COMMITTED;
}

// ---- decoding ------------------------------------------------------------------------------

const UNDEFINED = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
/** In Implicit VR the sequences must be known by tag. */
const SEQUENCE_TAGS = new Set<number>([Tag.ReferencedSopSequence, Tag.FailedSopSequence]);
const MAX_DEPTH = 8;

interface Item {
  /** Top-level values of the item (or data set), raw, by tag; nested sequences as item lists. */
  values: Map<number, Buffer>;
  sequences: Map<number, Item[]>;
}

/** Parse a data set into values and sequences. @throws DicomParseError on any structural fault. */
function parse(buf: Buffer, enc: Enc): Item {
  let budget = MAX_REFS * 4 + 64;
  const read = (start: number, end: number | undefined, depth: number): { item: Item; end: number } => {
    if (depth > MAX_DEPTH) throw new DicomParseError('DATASET_MALFORMED', 'storage commitment data set nests too deep');
    const item: Item = { values: new Map(), sequences: new Map() };
    let off = start;
    for (;;) {
      if (end !== undefined && off >= end) return { item, end: off };
      if (end === undefined && off >= buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'item without its delimiter');
      if (off + 8 > buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'element header runs past the end');
      if (--budget < 0) throw new DicomParseError('DATASET_MALFORMED', 'storage commitment data set has too many elements');
      const tag = ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
      if (tag === Tag.ItemDelimitationItem) {
        if (end !== undefined) throw new DicomParseError('DATASET_MALFORMED', 'item delimiter in a defined-length item');
        return { item, end: off + 8 };
      }
      let vr = '';
      let len: number;
      let hdr: number;
      if (enc.explicitVr) {
        vr = buf.toString('latin1', off + 4, off + 6);
        if (LONG_VRS.has(vr)) {
          if (off + 12 > buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'element header runs past the end');
          len = buf.readUInt32LE(off + 8);
          hdr = 12;
        } else {
          len = buf.readUInt16LE(off + 6);
          hdr = 8;
        }
      } else {
        len = buf.readUInt32LE(off + 4);
        hdr = 8;
        if (SEQUENCE_TAGS.has(tag)) vr = 'SQ';
      }
      const valueStart = off + hdr;
      if (vr === 'SQ' || (len === UNDEFINED && vr !== 'SQ')) {
        const seqEnd = len === UNDEFINED ? undefined : valueStart + len;
        if (seqEnd !== undefined && seqEnd > buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'sequence runs past the end');
        const items: Item[] = [];
        let p = valueStart;
        for (;;) {
          if (seqEnd !== undefined && p >= seqEnd) break;
          if (p + 8 > buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'sequence without its delimiter');
          const itag = ((buf.readUInt16LE(p) << 16) | buf.readUInt16LE(p + 2)) >>> 0;
          const ilen = buf.readUInt32LE(p + 4);
          if (itag === Tag.SequenceDelimitationItem) {
            p += 8;
            break;
          }
          if (itag !== Tag.Item) throw new DicomParseError('DATASET_MALFORMED', 'sequence holds something other than items');
          if (items.length >= MAX_REFS) throw new DicomParseError('DATASET_MALFORMED', `more than ${MAX_REFS} items in a sequence`);
          if (ilen !== UNDEFINED && p + 8 + ilen > buf.length) throw new DicomParseError('DATASET_TRUNCATED', 'item runs past the end');
          const r = read(p + 8, ilen === UNDEFINED ? undefined : p + 8 + ilen, depth + 1);
          items.push(r.item);
          p = r.end;
        }
        if (seqEnd !== undefined && p !== seqEnd) throw new DicomParseError('DATASET_MALFORMED', 'sequence length does not match its items');
        item.sequences.set(tag, items);
        off = p;
        continue;
      }
      if (valueStart + len > buf.length || (end !== undefined && valueStart + len > end)) throw new DicomParseError('DATASET_TRUNCATED', 'element value runs past the end');
      item.values.set(tag, buf.subarray(valueStart, valueStart + len));
      off = valueStart + len;
    }
  };
  return read(0, buf.length, 0).item;
}

const text = (b: Buffer | undefined): string => (b ? b.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '') : '');

function refOf(i: Item): SopRef {
  return { sopClassUid: text(i.values.get(Tag.ReferencedSopClassUid)), sopInstanceUid: text(i.values.get(Tag.ReferencedSopInstanceUid)) };
}

/**
 * Read an N-ACTION request or an N-EVENT-REPORT result (both have the same shape).
 * @throws DicomParseError when the data set is malformed or has no Transaction UID
 */
export function decodeCommitment(buf: Buffer, enc: Enc): CommitmentResult {
  const root = parse(buf, enc);
  const transactionUid = text(root.values.get(Tag.TransactionUid));
  if (!transactionUid) throw new DicomParseError('DATASET_MALFORMED', 'storage commitment data set without a Transaction UID');
  const committed = (root.sequences.get(Tag.ReferencedSopSequence) ?? []).map(refOf);
  const failed = (root.sequences.get(Tag.FailedSopSequence) ?? []).map((i) => {
    const r = i.values.get(Tag.FailureReason);
    return { ...refOf(i), reason: r && r.length >= 2 ? r.readUInt16LE(0) : 0 };
  });
  return { transactionUid, committed, failed };
}

/** A fresh Transaction UID (2.25 + 128 random bits). @see PS3.5 Annex B.2 */
export function newTransactionUid(random: (n: number) => Buffer): string {
  return `2.25.${BigInt(`0x${random(16).toString('hex')}`).toString()}`;
}
