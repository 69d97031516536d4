import { DicomParseError } from '../errors.js';
import { Tag, tagString } from './tags.js';

/**
 * A streaming structural check of a DICOM data set, fed in arbitrary slices.
 *
 * It walks every element header, descends into sequences and items (defined and undefined
 * length), follows encapsulated pixel data fragments, and checks that every length fits its
 * parent and that the stream ends exactly at an element boundary with every sequence closed.
 * Values are skipped, never copied, except a handful of top-level UIDs that identify the object
 * (and the Patient ID, only when a `patientRef` function is given, which turns it into the audit trail's Patient participant at once). It never changes a byte: the caller stores what it
 * received.
 *
 * @see PS3.5 §7.1 (data element encoding), §7.5 (nesting), §A.4 (encapsulation)
 */
export interface DatasetIdentity {
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  modality?: string;
  numberOfFrames?: number;
  /**
   * Accession Number (0008,0050): held only until the receiver has hashed it with a device key
   * (src/security/accession.ts), so a field engineer can find a study by it; never stored.
   */
  accessionNumber?: string;
  /**
   * What the `patientRef` option made of the Patient ID (0010,0020): the audit trail's Patient
   * participant (src/security/patient-pseudonym.ts). The ID itself is never kept: its bytes are
   * handed to that function as they arrive and dropped. Absent without the option.
   */
  patientRef?: string;
}

/** Explicit-VR VRs whose header has 2 reserved bytes and a 32-bit length. @see PS3.5 Table 7.1-1 */
const LONG_VRS = ['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'];
/** The same VRs as two-byte codes, so the hot path compares numbers, not strings. */
const LONG_VR_CODES = new Set(LONG_VRS.map((v) => (v.charCodeAt(0) << 8) | v.charCodeAt(1)));
const SHORT_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US',
]);
const UNDEFINED = 0xffffffff;

/** Captured top-level attributes: UIDs, two short codes, the accession number (hashed at once by the receiver), and the Patient ID only through `patientRef`. */
const CAPTURE = new Map<number, keyof DatasetIdentity>([
  [Tag.SopClassUid, 'sopClassUid'],
  [Tag.SopInstanceUid, 'sopInstanceUid'],
  [Tag.StudyInstanceUid, 'studyInstanceUid'],
  [Tag.SeriesInstanceUid, 'seriesInstanceUid'],
  [Tag.Modality, 'modality'],
  [Tag.AccessionNumber, 'accessionNumber'],
  [Tag.PatientId, 'patientRef'],
  [Tag.NumberOfFrames, 'numberOfFrames'],
]);
const MAX_CAPTURE = 256;

/**
 * Deepest nesting of sequences and items accepted (a sequence and its item are two levels).
 * Real objects stay far below (structured reports nest content items a few dozen levels at
 * most); a data set made of nothing but nested sequences is an attack on the receiver, refused
 * with its own status instead of being walked.
 */
export const MAX_NESTING = 256;

interface Frame {
  kind: 'sequence' | 'item' | 'fragments';
  /** Absolute end offset for a defined length, undefined for delimited. */
  end: number | undefined;
  /**
   * The end of the nearest defined-length frame at or above this one (undefined when none):
   * what every element inside must fit in, kept per frame so that checking it costs the same at
   * any depth (no walk up the stack per element).
   */
  limit: number | undefined;
  /** Children are Implicit VR LE (inside an undefined-length UN). @see PS3.5 §6.2.2 note */
  implicit: boolean;
}

export class DatasetWalker {
  private pos = 0;
  private readonly head = Buffer.alloc(12);
  private headFill = 0;
  private skip = 0;
  private captureKey: keyof DatasetIdentity | undefined;
  private capture: Buffer[] = [];
  private readonly stack: Frame[] = [];
  private readonly identity: DatasetIdentity = {};
  private elementCount = 0;
  private implicit: boolean;
  private le: boolean;

  constructor(
    private readonly encoding: { explicitVr: boolean; littleEndian: boolean },
    /** Turns the Patient ID into what the audit trail names the patient by; without it the ID is skipped like any value. */
    private readonly patientRef?: ((patientId: string) => string | undefined) | undefined,
  ) {
    this.implicit = !encoding.explicitVr;
    this.le = this.implicit ? true : encoding.littleEndian;
  }

  get bytes(): number {
    return this.pos;
  }
  get elements(): number {
    return this.elementCount;
  }

  /** @throws DicomParseError (code DATASET_MALFORMED) as soon as the structure is impossible. */
  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        if (this.captureKey) this.capture.push(chunk.subarray(off, off + n));
        this.skip -= n;
        this.pos += n;
        off += n;
        if (this.skip === 0) this.valueDone();
        continue;
      }
      // Element header: fill until we know how long it is.
      const need = this.headerLength();
      const n = Math.min(need - this.headFill, chunk.length - off);
      chunk.copy(this.head, this.headFill, off, off + n);
      this.headFill += n;
      off += n;
      if (this.headFill < 4) continue;
      const full = this.headerLength();
      if (this.headFill < full) continue;
      this.pos += full;
      this.headFill = 0;
      this.onHeader(full);
    }
  }

  /**
   * The stream is complete: check that nothing is left open.
   * @throws DicomParseError (code DATASET_TRUNCATED)
   */
  end(): DatasetIdentity {
    if (this.headFill > 0 || this.skip > 0) {
      throw new DicomParseError('DATASET_TRUNCATED', `data set ends inside an element at byte ${this.pos + this.headFill}`, {
        offset: this.pos,
      });
    }
    if (this.stack.length > 0) {
      const open = this.stack[this.stack.length - 1]!;
      throw new DicomParseError('DATASET_TRUNCATED', `data set ends with ${this.stack.length} open ${open.kind} level(s)`, {
        offset: this.pos,
      });
    }
    if (this.elementCount === 0) throw new DicomParseError('DATASET_TRUNCATED', 'data set is empty');
    return { ...this.identity };
  }

  /** Recompute the encoding of the current level (called whenever the stack changes). */
  private modeChanged(): void {
    const top = this.stack[this.stack.length - 1];
    this.implicit = top ? top.implicit : !this.encoding.explicitVr;
    // Implicit VR inside UN is always little endian.
    this.le = this.implicit ? true : this.encoding.littleEndian;
  }

  private push(frame: Omit<Frame, 'limit'>): void {
    if (this.stack.length >= MAX_NESTING) {
      throw new DicomParseError('DATASET_TOO_DEEP', `sequences nested more than ${MAX_NESTING} levels deep at byte ${this.pos}`, { offset: this.pos });
    }
    const parent = this.stack[this.stack.length - 1];
    this.stack.push({ ...frame, limit: frame.end ?? parent?.limit });
    this.modeChanged();
  }

  private pop(): void {
    this.stack.pop();
    this.modeChanged();
  }

  /** Bytes of the current header, as far as the bytes read so far tell. */
  private headerLength(): number {
    if (this.headFill < 4) return 4;
    const group = this.le ? this.head.readUInt16LE(0) : this.head.readUInt16BE(0);
    if (group === 0xfffe || this.implicit) return 8;
    if (this.headFill < 6) return 6;
    return LONG_VR_CODES.has((this.head[4]! << 8) | this.head[5]!) ? 12 : 8;
  }

  private onHeader(headerLength: number): void {
    const le = this.le;
    const h = this.head;
    const tag = (((le ? h.readUInt16LE(0) : h.readUInt16BE(0)) << 16) | (le ? h.readUInt16LE(2) : h.readUInt16BE(2))) >>> 0;
    const top = this.stack[this.stack.length - 1];
    const fail = (msg: string): never => {
      throw new DicomParseError('DATASET_MALFORMED', `${msg} at ${tagString(tag)}, byte ${this.pos - headerLength}`, {
        tag: tagString(tag),
        offset: this.pos - headerLength,
      });
    };
    this.elementCount++;
    // The header itself must lie inside its nearest defined-length parent (checkFits only covers
    // values, and is skipped for undefined lengths and delimiters).
    const parentEnd = top?.limit;
    if (parentEnd !== undefined && this.pos > parentEnd) fail('header runs past its enclosing item or sequence');

    if (tag >>> 16 === 0xfffe) {
      const length = le ? h.readUInt32LE(4) : h.readUInt32BE(4);
      if (tag === Tag.Item) {
        if (!top || top.kind === 'item') fail('item outside a sequence');
        if (top!.kind === 'fragments') {
          if (length === UNDEFINED) fail('pixel data fragment of undefined length');
          this.beginValue(length, undefined, fail);
        } else {
          this.checkFits(length, fail);
          this.push({ kind: 'item', end: length === UNDEFINED ? undefined : this.pos + length, implicit: top!.implicit });
          this.popFinished();
        }
      } else if (tag === Tag.ItemDelimitationItem) {
        if (!top || top.kind !== 'item' || top.end !== undefined) fail('item delimiter without an open undefined-length item');
        this.pop();
        this.popFinished();
      } else if (tag === Tag.SequenceDelimitationItem) {
        if (!top || top.kind === 'item' || top.end !== undefined) fail('sequence delimiter without an open undefined-length sequence');
        this.pop();
        this.popFinished();
      } else {
        fail('unknown delimitation tag');
      }
      return;
    }

    if (top && top.kind !== 'item') fail('element where an item was expected');
    let vr: string | undefined;
    let length: number;
    if (this.implicit) {
      length = le ? h.readUInt32LE(4) : h.readUInt32BE(4);
    } else {
      vr = h.toString('latin1', 4, 6);
      if (headerLength === 12) length = le ? h.readUInt32LE(8) : h.readUInt32BE(8);
      else if (SHORT_VRS.has(vr)) length = le ? h.readUInt16LE(6) : h.readUInt16BE(6);
      // As hex: when the stream is out of step these two bytes could be part of any value.
      else return fail(`unknown VR bytes 0x${h.toString('hex', 4, 6).toUpperCase()}`);
    }

    if (length === UNDEFINED) {
      if (tag === Tag.PixelData && vr !== 'SQ' && vr !== 'UN') {
        this.push({ kind: 'fragments', end: undefined, implicit: this.implicit });
      } else if (vr === undefined || vr === 'SQ' || vr === 'UN') {
        this.push({ kind: 'sequence', end: undefined, implicit: vr === 'UN' ? true : this.implicit });
      } else {
        fail(`undefined length on VR ${vr}`);
      }
      return;
    }
    if (vr === 'SQ') {
      this.checkFits(length, fail);
      this.push({ kind: 'sequence', end: this.pos + length, implicit: this.implicit });
      this.popFinished();
      return;
    }
    const key = this.stack.length === 0 ? CAPTURE.get(tag) : undefined;
    this.beginValue(length, key, fail);
  }

  private checkFits(length: number, fail: (m: string) => never): void {
    if (length === UNDEFINED) return;
    const end = this.stack[this.stack.length - 1]?.limit;
    if (end !== undefined && this.pos + length > end) fail(`length ${length} runs past its enclosing item or sequence`);
  }

  private beginValue(length: number, key: keyof DatasetIdentity | undefined, fail: (m: string) => never): void {
    this.checkFits(length, fail);
    this.captureKey = key !== undefined && length <= MAX_CAPTURE && (key !== 'patientRef' || this.patientRef) ? key : undefined;
    this.capture = [];
    this.skip = length;
    if (length === 0) this.valueDone();
  }

  private valueDone(): void {
    if (this.captureKey) {
      const s = Buffer.concat(this.capture).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
      if (this.captureKey === 'numberOfFrames') {
        const n = Number.parseInt(s, 10);
        if (Number.isFinite(n)) this.identity.numberOfFrames = n;
      } else if (this.captureKey === 'patientRef') {
        const ref = s ? this.patientRef?.(s) : undefined;
        if (ref) this.identity.patientRef = ref;
      } else {
        this.identity[this.captureKey] = s;
      }
      this.captureKey = undefined;
      this.capture = [];
    }
    this.popFinished();
  }

  /** Close every defined-length item or sequence whose last byte has been read. */
  private popFinished(): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top || top.end === undefined || this.pos < top.end) return;
      this.pop();
    }
  }
}

