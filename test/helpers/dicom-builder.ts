import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { buildPart10Header } from '../../src/dicom/file-meta.js';

/**
 * A small DICOM encoder for test fixtures, so the suite builds its own objects and passes on a
 * fresh clone without the public corpus. It writes exactly the bytes it is told to (odd
 * lengths, private tags, DS text like "5.000000"), which is what byte-faithfulness tests need.
 */
export type El =
  | { tag: number; vr: string; value: Buffer | string }
  | { tag: number; vr: 'SQ'; items: El[][]; undefinedLength?: boolean }
  | { tag: number; vr: 'OB' | 'OW'; fragments: Buffer[] };

export interface Encoding {
  explicitVr: boolean;
  littleEndian: boolean;
}

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEF = 0xffffffff;

export function encodeDataset(elements: El[], enc: Encoding): Buffer {
  return Buffer.concat(elements.map((e) => encodeElement(e, enc)));
}

function tagBytes(tag: number, enc: Encoding): Buffer {
  const b = Buffer.alloc(4);
  if (enc.littleEndian) {
    b.writeUInt16LE(tag >>> 16, 0);
    b.writeUInt16LE(tag & 0xffff, 2);
  } else {
    b.writeUInt16BE(tag >>> 16, 0);
    b.writeUInt16BE(tag & 0xffff, 2);
  }
  return b;
}

function u32(n: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(n, 0);
  else b.writeUInt32BE(n, 0);
  return b;
}

function header(tag: number, vr: string, length: number, enc: Encoding): Buffer {
  if (!enc.explicitVr) return Buffer.concat([tagBytes(tag, enc), u32(length, enc.littleEndian)]);
  if (LONG.has(vr)) return Buffer.concat([tagBytes(tag, enc), Buffer.from(vr, 'latin1'), Buffer.alloc(2), u32(length, enc.littleEndian)]);
  const l = Buffer.alloc(2);
  if (enc.littleEndian) l.writeUInt16LE(length, 0);
  else l.writeUInt16BE(length, 0);
  return Buffer.concat([tagBytes(tag, enc), Buffer.from(vr, 'latin1'), l]);
}

function item(body: Buffer, enc: Encoding, undefinedLength: boolean): Buffer {
  // Item and delimiter tags have no VR in any transfer syntax. @see PS3.5 §7.5
  const noVr = { ...enc, explicitVr: false };
  if (!undefinedLength) return Buffer.concat([header(0xfffee000, '', body.length, noVr), body]);
  return Buffer.concat([header(0xfffee000, '', UNDEF, noVr), body, header(0xfffee00d, '', 0, noVr)]);
}

function encodeElement(e: El, enc: Encoding): Buffer {
  const noVr = { ...enc, explicitVr: false };
  if ('items' in e) {
    const undef = e.undefinedLength ?? false;
    const body = Buffer.concat(e.items.map((it) => item(encodeDataset(it, enc), enc, undef)));
    if (undef) return Buffer.concat([header(e.tag, 'SQ', UNDEF, enc), body, header(0xfffee0dd, '', 0, noVr)]);
    return Buffer.concat([header(e.tag, 'SQ', body.length, enc), body]);
  }
  if ('fragments' in e) {
    const body = Buffer.concat([item(Buffer.alloc(0), enc, false), ...e.fragments.map((f) => item(f, enc, false))]);
    return Buffer.concat([header(e.tag, e.vr, UNDEF, enc), body, header(0xfffee0dd, '', 0, noVr)]);
  }
  const value = typeof e.value === 'string' ? Buffer.from(e.value, 'latin1') : e.value;
  return Buffer.concat([header(e.tag, e.vr, value.length, enc), value]);
}

export const ExplicitLE: Encoding = { explicitVr: true, littleEndian: true };
export const ImplicitLE: Encoding = { explicitVr: false, littleEndian: true };
export const ExplicitBE: Encoding = { explicitVr: true, littleEndian: false };

export const TS_UID = {
  implicit: '1.2.840.10008.1.2',
  explicit: '1.2.840.10008.1.2.1',
  deflate: '1.2.840.10008.1.2.1.99',
  bigEndian: '1.2.840.10008.1.2.2',
  rle: '1.2.840.10008.1.2.5',
} as const;

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

/** A deterministic fresh UID under the UUID root. */
let uidCounter = 0;
export function testUid(prefix = 'fixture'): string {
  uidCounter++;
  const n = BigInt(Date.now()) * 1000000n + BigInt(process.pid) * 1000n + BigInt(uidCounter);
  return `2.25.${(BigInt(prefix.length) * 10n ** 30n + n).toString()}`;
}

function pad(s: string, padChar = ' '): string {
  return s.length % 2 ? s + padChar : s;
}

/**
 * A CT-like object with what byte-faithfulness must preserve: a private creator and private
 * elements, DS text with trailing zeros, a non-default character set, a nested undefined-length
 * sequence, and pixel data (native, or encapsulated fragments).
 */
export function ctElements(opts: {
  sopInstanceUid: string;
  sopClassUid?: string;
  rows?: number;
  cols?: number;
  frames?: number;
  pixel?: Buffer;
  fragments?: Buffer[];
  studyUid?: string;
  littleEndian?: boolean;
  undefinedLengthSequence?: boolean;
  /** Modality (0008,0060), default CT. */
  modality?: string;
  /** Accession Number (0008,0050), absent by default. */
  accessionNumber?: string;
  /** Patient ID (0010,0020), absent by default. */
  patientId?: string;
}): El[] {
  const rows = opts.rows ?? 16;
  const cols = opts.cols ?? 16;
  const frames = opts.frames ?? 1;
  const us = (n: number) => {
    const b = Buffer.alloc(2);
    if (opts.littleEndian === false) b.writeUInt16BE(n, 0);
    else b.writeUInt16LE(n, 0);
    return b;
  };
  const pixel = opts.pixel ?? Buffer.alloc(rows * cols * 2 * frames, 0x5a);
  const els: El[] = [
    { tag: 0x00080005, vr: 'CS', value: pad('ISO_IR 100') },
    { tag: 0x00080016, vr: 'UI', value: pad(opts.sopClassUid ?? CT_IMAGE_STORAGE, '\0') },
    { tag: 0x00080018, vr: 'UI', value: pad(opts.sopInstanceUid, '\0') },
    ...(opts.accessionNumber ? [{ tag: 0x00080050, vr: 'SH', value: pad(opts.accessionNumber) } as El] : []),
    { tag: 0x00080060, vr: 'CS', value: pad(opts.modality ?? 'CT') },
    {
      tag: 0x00081140,
      vr: 'SQ',
      // DCMTK's storescu re-encodes sequences with explicit lengths; raw-SCU tests use undefined.
      undefinedLength: opts.undefinedLengthSequence ?? false,
      items: [[{ tag: 0x00081150, vr: 'UI', value: pad(CT_IMAGE_STORAGE, '\0') }, { tag: 0x00081155, vr: 'UI', value: pad('1.2.3.4', '\0') }]],
    },
    { tag: 0x00100010, vr: 'PN', value: pad('Test^Fixture') },
    ...(opts.patientId ? [{ tag: 0x00100020, vr: 'LO', value: pad(opts.patientId) } as El] : []),
    { tag: 0x00180050, vr: 'DS', value: '5.000000' },
    { tag: 0x0020000d, vr: 'UI', value: pad(opts.studyUid ?? '1.2.826.0.1.3680043.2.1125.1', '\0') },
    { tag: 0x0020000e, vr: 'UI', value: pad('1.2.826.0.1.3680043.2.1125.2', '\0') },
    { tag: 0x00280002, vr: 'US', value: us(1) },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2 ' },
    ...(frames > 1 ? [{ tag: 0x00280008, vr: 'IS', value: pad(String(frames)) } as El] : []),
    { tag: 0x00280010, vr: 'US', value: us(rows) },
    { tag: 0x00280011, vr: 'US', value: us(cols) },
    { tag: 0x00280100, vr: 'US', value: us(16) },
    { tag: 0x00280101, vr: 'US', value: us(12) },
    { tag: 0x00280102, vr: 'US', value: us(11) },
    { tag: 0x00280103, vr: 'US', value: us(0) },
    { tag: 0x00290010, vr: 'LO', value: pad('PACS_EDGE TEST') },
    { tag: 0x00291010, vr: 'OB', value: Buffer.from([1, 2, 3, 4, 5, 6]) },
    { tag: 0x00291011, vr: 'LO', value: pad('private value') },
  ];
  if (opts.fragments) els.push({ tag: 0x7fe00010, vr: 'OB', fragments: opts.fragments });
  else els.push({ tag: 0x7fe00010, vr: 'OW', value: pixel });
  return els;
}

/** A Part 10 file: our header + the encoded data set (deflated for the deflate syntax). */
export function part10(opts: { sopClassUid: string; sopInstanceUid: string; ts: string; dataset: Buffer }): Buffer {
  const body = opts.ts === TS_UID.deflate ? deflateRawSync(opts.dataset) : opts.dataset;
  return Buffer.concat([buildPart10Header({ sopClassUid: opts.sopClassUid, sopInstanceUid: opts.sopInstanceUid, transferSyntaxUid: opts.ts }), body]);
}

export function encodingOf(ts: string): Encoding {
  if (ts === TS_UID.implicit) return ImplicitLE;
  if (ts === TS_UID.bigEndian) return ExplicitBE;
  return ExplicitLE;
}

/** A complete CT fixture file in the given transfer syntax. */
export interface FixtureOptions {
  sopInstanceUid?: string;
  ts?: string;
  rows?: number;
  cols?: number;
  frames?: number;
  studyUid?: string;
  /** Another modality than CT: MR gets MR Image Storage, anything else CT's class unless `sopClassUid` says. */
  modality?: string;
  sopClassUid?: string;
  accessionNumber?: string;
  patientId?: string;
}

export function ctFile(opts: FixtureOptions = {}): {
  bytes: Buffer;
  sopInstanceUid: string;
} {
  const sopInstanceUid = opts.sopInstanceUid ?? testUid();
  const ts = opts.ts ?? TS_UID.explicit;
  const enc = encodingOf(ts);
  const sopClassUid = opts.sopClassUid ?? (opts.modality === 'MR' ? MR_IMAGE_STORAGE : CT_IMAGE_STORAGE);
  const dataset = encodeDataset(ctElements({ ...opts, sopInstanceUid, sopClassUid, littleEndian: enc.littleEndian }), enc);
  return { bytes: part10({ sopClassUid, sopInstanceUid, ts, dataset }), sopInstanceUid };
}

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';

/** Write `count` CT instances of one new study to `dir`; returns their paths and UIDs in order. */
export function writeStudy(dir: string, count: number, opts: Omit<FixtureOptions, 'sopInstanceUid'> = {}): { file: string; uid: string; studyUid: string }[] {
  const studyUid = opts.studyUid ?? testUid('study');
  const out: { file: string; uid: string; studyUid: string }[] = [];
  for (let i = 0; i < count; i++) {
    const f = ctFile({ ...opts, studyUid });
    const file = path.join(dir, `img${String(i).padStart(4, '0')}.dcm`);
    writeFileSync(file, f.bytes);
    out.push({ file, uid: f.sopInstanceUid, studyUid });
  }
  return out;
}
