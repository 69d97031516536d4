import { DicomParseError } from '../errors.js';
import { Tag, tagString } from './tags.js';

/**
 * DIMSE command sets: always Implicit VR Little Endian, group 0000 only.
 *
 * @see PS3.7 §6.3.1 (command set encoding) and Annex E (command dictionary)
 */

/** Command Field values. @see PS3.7 Table E.1-1 */
export const CommandField = {
  CStoreRq: 0x0001,
  CStoreRsp: 0x8001,
  CGetRq: 0x0010,
  CFindRq: 0x0020,
  CMoveRq: 0x0021,
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
  NEventReportRq: 0x0100,
  NEventReportRsp: 0x8100,
  NGetRq: 0x0110,
  NSetRq: 0x0120,
  NActionRq: 0x0130,
  NActionRsp: 0x8130,
  NCreateRq: 0x0140,
  NDeleteRq: 0x0150,
  CCancelRq: 0x0fff,
} as const;

/** (0000,0800) value meaning "no data set follows". @see PS3.7 §E.1 */
export const NO_DATA_SET = 0x0101;
/** A value meaning "a data set follows" (any value other than 0x0101). */
export const DATA_SET_PRESENT = 0x0000;

/** Command elements of VR US: each value is exactly 2 bytes. @see PS3.7 Annex E, PS3.5 Table 6.2-1 */
const US_ELEMENTS = [Tag.CommandField, Tag.MessageId, Tag.MessageIdBeingRespondedTo, Tag.Priority, Tag.CommandDataSetType, Tag.Status];

/** A decoded command set: raw element values by tag. */
export class Command {
  constructor(
    private readonly elements: ReadonlyMap<number, Buffer>,
    /** Set by {@link decodeCommand} when (0000,0000) does not give the length of what follows it. */
    private readonly groupLengthProblem?: string,
  ) {}

  /**
   * Why this command set is not well formed, or undefined when it is: a Command Group Length
   * that lies, or a US element that is not 2 bytes long. Such a request is refused (Mistyped
   * argument) rather than read with a guess. @see PS3.7 §6.3.1 (group length), Annex E
   */
  get malformed(): string | undefined {
    if (this.groupLengthProblem) return this.groupLengthProblem;
    const bad = US_ELEMENTS.find((t) => this.elements.has(t) && this.elements.get(t)!.length !== 2);
    return bad === undefined ? undefined : `${tagString(bad)} is ${this.elements.get(bad)!.length} bytes, not 2`;
  }

  has(tag: number): boolean {
    return this.elements.has(tag);
  }

  us(tag: number): number | undefined {
    const v = this.elements.get(tag);
    if (!v || v.length < 2) return undefined;
    return v.readUInt16LE(0);
  }

  /** A string value with the padding (trailing NUL or space, leading space for AE) removed. */
  str(tag: number): string | undefined {
    const v = this.elements.get(tag);
    if (!v) return undefined;
    return v.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  }

  get commandField(): number | undefined {
    return this.us(Tag.CommandField);
  }
  get messageId(): number | undefined {
    return this.us(Tag.MessageId);
  }
  get hasDataSet(): boolean {
    const t = this.us(Tag.CommandDataSetType);
    return t !== undefined && t !== NO_DATA_SET;
  }
  get affectedSopClassUid(): string | undefined {
    return this.str(Tag.AffectedSopClassUid);
  }
  get affectedSopInstanceUid(): string | undefined {
    return this.str(Tag.AffectedSopInstanceUid);
  }
}

/**
 * Decode an Implicit VR Little Endian command set.
 * @throws DicomParseError when an element runs past the end or the group is not 0000.
 */
export function decodeCommand(buf: Buffer): Command {
  const elements = new Map<number, Buffer>();
  let groupLengthProblem: string | undefined;
  let off = 0;
  while (off < buf.length) {
    if (off + 8 > buf.length) throw new DicomParseError('COMMAND_TRUNCATED', `command set truncated at byte ${off}`);
    const group = buf.readUInt16LE(off);
    const element = buf.readUInt16LE(off + 2);
    const len = buf.readUInt32LE(off + 4);
    const tag = ((group << 16) | element) >>> 0;
    if (group !== 0x0000) {
      throw new DicomParseError('COMMAND_MALFORMED', `command set holds non-command element ${tagString(tag)}`);
    }
    off += 8;
    if (len > buf.length - off) {
      throw new DicomParseError('COMMAND_TRUNCATED', `command element ${tagString(tag)} runs past the end`);
    }
    elements.set(tag, buf.subarray(off, off + len));
    off += len;
    if (tag === Tag.CommandGroupLength) {
      const declared = len === 4 ? buf.readUInt32LE(off - 4) : undefined;
      if (declared !== buf.length - off) groupLengthProblem = `command group length ${declared ?? `of ${len} bytes`} does not match the ${buf.length - off} bytes that follow`;
    }
  }
  return new Command(elements, groupLengthProblem);
}

type Value = { tag: number; vr: 'UI' | 'US' | 'AE' | 'LO' | 'UL'; value: string | number };

/** Encode elements (any order; sorted here) into an Implicit VR LE command set with its group length. */
export function encodeCommand(values: readonly Value[]): Buffer {
  const parts: Buffer[] = [];
  const sorted = [...values].sort((a, b) => a.tag - b.tag);
  for (const v of sorted) parts.push(encodeElement(v));
  const body = Buffer.concat(parts);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(Tag.CommandGroupLength, 0); // (0000,0000): group 0, element 0
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

function encodeElement(v: Value): Buffer {
  let value: Buffer;
  if (v.vr === 'US') {
    value = Buffer.alloc(2);
    value.writeUInt16LE(Number(v.value), 0);
  } else if (v.vr === 'UL') {
    value = Buffer.alloc(4);
    value.writeUInt32LE(Number(v.value), 0);
  } else {
    let s = String(v.value);
    if (v.vr === 'LO' && s.length > 64) s = s.slice(0, 64);
    value = Buffer.from(s, 'latin1');
    if (value.length % 2 === 1) value = Buffer.concat([value, Buffer.from(v.vr === 'UI' ? [0] : [0x20])]);
  }
  const head = Buffer.alloc(8);
  head.writeUInt16LE(v.tag >>> 16, 0);
  head.writeUInt16LE(v.tag & 0xffff, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

/** Build a response command (C-STORE-RSP, C-ECHO-RSP…). @see PS3.7 §9.3.1.2, §9.3.5.2 */
export function encodeResponse(opts: {
  commandField: number;
  messageIdBeingRespondedTo: number;
  status: number;
  affectedSopClassUid?: string | undefined;
  affectedSopInstanceUid?: string | undefined;
  errorComment?: string | undefined;
  /** N-ACTION-RSP: the Action Type ID of the request. @see PS3.7 §10.1.4.1 */
  actionTypeId?: number | undefined;
  /** N-EVENT-REPORT-RSP: the Event Type ID of the request. @see PS3.7 §10.1.1.1 */
  eventTypeId?: number | undefined;
}): Buffer {
  const values: Value[] = [
    { tag: Tag.CommandField, vr: 'US', value: opts.commandField },
    { tag: Tag.MessageIdBeingRespondedTo, vr: 'US', value: opts.messageIdBeingRespondedTo },
    { tag: Tag.CommandDataSetType, vr: 'US', value: NO_DATA_SET },
    { tag: Tag.Status, vr: 'US', value: opts.status },
  ];
  if (opts.affectedSopClassUid) values.push({ tag: Tag.AffectedSopClassUid, vr: 'UI', value: opts.affectedSopClassUid });
  if (opts.affectedSopInstanceUid) values.push({ tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: opts.affectedSopInstanceUid });
  if (opts.errorComment) values.push({ tag: Tag.ErrorComment, vr: 'LO', value: opts.errorComment });
  if (opts.actionTypeId !== undefined) values.push({ tag: Tag.ActionTypeId, vr: 'US', value: opts.actionTypeId });
  if (opts.eventTypeId !== undefined) values.push({ tag: Tag.EventTypeId, vr: 'US', value: opts.eventTypeId });
  return encodeCommand(values);
}
