import { Tag } from './tags.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.js';

/**
 * The DICOM Part 10 file header the gateway writes before the data set it received:
 * 128-byte preamble, "DICM", and the File Meta Information group (always Explicit VR LE).
 * This is the only part of a stored file the gateway builds; the data set follows unchanged.
 *
 * @see PS3.10 §7.1 (DICOM File Meta Information)
 */
export interface FileMetaInput {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Calling AE of the association the object came in on. */
  sourceAeTitle?: string | undefined;
}

export function buildPart10Header(meta: FileMetaInput): Buffer {
  const elements: Buffer[] = [
    explicit(Tag.FileMetaInformationVersion, 'OB', Buffer.from([0x00, 0x01])),
    explicit(Tag.MediaStorageSopClassUid, 'UI', uid(meta.sopClassUid)),
    explicit(Tag.MediaStorageSopInstanceUid, 'UI', uid(meta.sopInstanceUid)),
    explicit(Tag.TransferSyntaxUid, 'UI', uid(meta.transferSyntaxUid)),
    explicit(Tag.ImplementationClassUid, 'UI', uid(IMPLEMENTATION_CLASS_UID)),
    explicit(Tag.ImplementationVersionName, 'SH', text(IMPLEMENTATION_VERSION_NAME)),
  ];
  if (meta.sourceAeTitle) elements.push(explicit(Tag.SourceApplicationEntityTitle, 'AE', text(meta.sourceAeTitle)));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, explicit(Tag.FileMetaInformationGroupLength, 'UL', groupLength), body]);
}

/** Where the data set starts in a Part 10 file, and its transfer syntax, read from the header. */
export function readPart10Header(buf: Buffer): { datasetOffset: number; transferSyntaxUid: string; sopInstanceUid: string; sopClassUid: string } | undefined {
  if (buf.length < 144 || buf.toString('latin1', 128, 132) !== 'DICM') return undefined;
  let off = 132;
  let end = Number.POSITIVE_INFINITY;
  const out = { datasetOffset: 0, transferSyntaxUid: '', sopInstanceUid: '', sopClassUid: '' };
  while (off + 8 <= buf.length && off < end) {
    const group = buf.readUInt16LE(off);
    if (group !== 0x0002) break;
    const tag = ((group << 16) | buf.readUInt16LE(off + 2)) >>> 0;
    const vr = buf.toString('latin1', off + 4, off + 6);
    const long = vr === 'OB' || vr === 'UN' || vr === 'UT' || vr === 'SQ' || vr === 'OW';
    const len = long ? buf.readUInt32LE(off + 8) : buf.readUInt16LE(off + 6);
    const vstart = off + (long ? 12 : 8);
    if (vstart + len > buf.length) return undefined;
    const value = buf.subarray(vstart, vstart + len);
    if (tag === Tag.FileMetaInformationGroupLength) end = vstart + len + value.readUInt32LE(0);
    else if (tag === Tag.TransferSyntaxUid) out.transferSyntaxUid = strip(value);
    else if (tag === Tag.MediaStorageSopInstanceUid) out.sopInstanceUid = strip(value);
    else if (tag === Tag.MediaStorageSopClassUid) out.sopClassUid = strip(value);
    off = vstart + len;
  }
  // A buffer that ends inside the group (by its own group length) is not a complete header yet.
  if (Number.isFinite(end) && off < end) return undefined;
  out.datasetOffset = off;
  return out;
}

const strip = (b: Buffer): string => b.toString('latin1').replace(/[\0 ]+$/, '');

function uid(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from([0])]) : b;
}

function text(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(' ')]) : b;
}

function explicit(tag: number, vr: 'OB' | 'UI' | 'UL' | 'SH' | 'AE', value: Buffer): Buffer {
  const long = vr === 'OB';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}
