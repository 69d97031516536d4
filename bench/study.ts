import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Builds a synthetic study from one Part 10 file: N copies with a new Study Instance UID and
 * Series Instance UID (shared by the copies) and a new SOP Instance UID per copy, written both
 * in the data set (0008,0018) and in the File Meta (0002,0003).
 *
 * Each new UID is generated with exactly the byte length of the value it replaces, so no
 * element length, group length (0002,0000 / gggg,0000) or sequence length has to change:
 * every other byte of the file stays as it was. The UIDs live under a fresh UUID-derived
 * root (2.25.<uuid as integer>, PS3.5 B.2), one per study.
 */

const EXPLICIT_LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;

interface ElementPos {
  tag: number;
  valueOffset: number;
  length: number;
  /** Offset of the next element. */
  next: number;
}

/** One little-endian data element header at `p` (explicit or implicit VR); undefined lengths are skipped over. */
function readElement(buf: Buffer, p: number, explicit: boolean): ElementPos {
  const tag = ((buf.readUInt16LE(p) << 16) | buf.readUInt16LE(p + 2)) >>> 0;
  let vr = '';
  let length: number;
  let valueOffset: number;
  if (!explicit || tag >>> 16 === 0xfffe) {
    length = buf.readUInt32LE(p + 4);
    valueOffset = p + 8;
  } else {
    vr = buf.toString('latin1', p + 4, p + 6);
    if (EXPLICIT_LONG_VRS.has(vr)) {
      length = buf.readUInt32LE(p + 8);
      valueOffset = p + 12;
    } else {
      length = buf.readUInt16LE(p + 6);
      valueOffset = p + 8;
    }
  }
  // A UN value of undefined length is encoded implicit VR little endian (PS3.5 6.2.2).
  const next = length === UNDEFINED ? skipUndefined(buf, valueOffset, explicit && vr !== 'UN') : valueOffset + length;
  return { tag, valueOffset, length, next };
}

/** The top-level elements of the data set in [start, end). */
function walk(buf: Buffer, start: number, end: number, explicit: boolean): ElementPos[] {
  const out: ElementPos[] = [];
  let p = start;
  while (p < end) {
    const e = readElement(buf, p, explicit);
    out.push(e);
    p = e.next;
  }
  if (p !== end) throw new Error(`data set walk overran its end (${p} != ${end})`);
  return out;
}

/** Skip the items of an undefined-length value (SQ or encapsulated pixel data); returns the offset after its delimiter. */
function skipUndefined(buf: Buffer, p: number, explicit: boolean): number {
  for (;;) {
    const group = buf.readUInt16LE(p);
    const elem = buf.readUInt16LE(p + 2);
    const len = buf.readUInt32LE(p + 4);
    if (group !== 0xfffe) throw new Error(`expected an item tag at offset ${p}`);
    p += 8;
    if (elem === 0xe0dd) return p; // Sequence Delimitation Item
    if (elem !== 0xe000) throw new Error(`unexpected (FFFE,${elem.toString(16).toUpperCase()}) at offset ${p - 8}`);
    if (len !== UNDEFINED) {
      p += len;
      continue;
    }
    // Item of undefined length: a nested data set up to its Item Delimitation Item.
    while (!(buf.readUInt16LE(p) === 0xfffe && buf.readUInt16LE(p + 2) === 0xe00d)) p = readElement(buf, p, explicit).next;
    p += 8;
  }
}

interface Template {
  bytes: Buffer;
  transferSyntax: string;
  sopInstance: ElementPos;
  metaSopInstance: ElementPos;
  study: ElementPos;
  series: ElementPos;
}

function parseTemplate(file: string): Template {
  const bytes = readFileSync(file);
  if (bytes.length < 144 || bytes.toString('latin1', 128, 132) !== 'DICM') throw new Error(`${file}: not a DICOM Part 10 file`);
  // File Meta group: always explicit VR little endian; its length is (0002,0000).
  const first = walk(bytes, 132, 132 + 12, true)[0];
  if (!first || first.tag !== 0x00020000) throw new Error(`${file}: File Meta does not start with (0002,0000)`);
  const metaEnd = first.valueOffset + first.length + bytes.readUInt32LE(first.valueOffset);
  const meta = walk(bytes, 132, metaEnd, true);
  const value = (e: ElementPos | undefined): string => (e ? bytes.toString('latin1', e.valueOffset, e.valueOffset + e.length).replace(/[\0 ]+$/, '') : '');
  const find = (list: ElementPos[], tag: number, what: string): ElementPos => {
    const e = list.find((x) => x.tag === tag);
    if (!e) throw new Error(`${file}: no ${what}`);
    return e;
  };
  const transferSyntax = value(find(meta, 0x00020010, 'Transfer Syntax UID (0002,0010)'));
  if (transferSyntax === '1.2.840.10008.1.2.2' || transferSyntax === '1.2.840.10008.1.2.1.99') {
    throw new Error(`${file}: transfer syntax ${transferSyntax} is not supported by the study builder`);
  }
  const ds = walk(bytes, metaEnd, bytes.length, transferSyntax !== '1.2.840.10008.1.2');
  const t: Template = {
    bytes,
    transferSyntax,
    metaSopInstance: find(meta, 0x00020003, 'Media Storage SOP Instance UID (0002,0003)'),
    sopInstance: find(ds, 0x00080018, 'SOP Instance UID (0008,0018)'),
    study: find(ds, 0x0020000d, 'Study Instance UID (0020,000D)'),
    series: find(ds, 0x0020000e, 'Series Instance UID (0020,000E)'),
  };
  if (value(t.metaSopInstance) !== value(t.sopInstance)) throw new Error(`${file}: (0002,0003) and (0008,0018) differ`);
  if (t.metaSopInstance.length !== t.sopInstance.length) throw new Error(`${file}: (0002,0003) and (0008,0018) have different value lengths`);
  return t;
}

/**
 * A UID of exactly `length` characters: `<prefix>.1<n zero-padded>`. The last component starts
 * with 1, so it never has a leading zero; a UID value field holds up to 64 characters.
 */
export function uidOfLength(prefix: string, n: number, length: number): string {
  const digits = length - prefix.length - 2;
  const num = String(n);
  if (length > 64 || digits < num.length) throw new Error(`cannot make a ${length}-character UID under ${prefix} for ${n}`);
  return `${prefix}.1${num.padStart(digits, '0')}`;
}

export interface Study {
  dir: string;
  files: string[];
  bytes: number;
  root: string;
  studyUid: string;
  seriesUid: string;
  transferSyntax: string;
  templateBytes: number;
}

export function buildStudy(opts: { template: string; dir: string; count: number }): Study {
  const t = parseTemplate(opts.template);
  const root = `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
  const studyUid = uidOfLength(`${root}.1`, 1, t.study.length);
  const seriesUid = uidOfLength(`${root}.2`, 1, t.series.length);
  mkdirSync(opts.dir, { recursive: true });
  const files: string[] = [];
  let bytes = 0;
  const put = (buf: Buffer, e: ElementPos, uid: string): void => {
    if (uid.length !== e.length) throw new Error('internal: UID length mismatch');
    buf.write(uid, e.valueOffset, 'latin1');
  };
  const seen = new Set<string>();
  for (let i = 1; i <= opts.count; i++) {
    const buf = Buffer.from(t.bytes);
    const sop = uidOfLength(`${root}.3`, i, t.sopInstance.length);
    if (seen.has(sop)) throw new Error('internal: duplicate SOP Instance UID');
    seen.add(sop);
    put(buf, t.study, studyUid);
    put(buf, t.series, seriesUid);
    put(buf, t.sopInstance, sop);
    put(buf, t.metaSopInstance, sop);
    const file = path.join(opts.dir, `IMG${String(i).padStart(5, '0')}.dcm`);
    writeFileSync(file, buf);
    files.push(file);
    bytes += buf.length;
  }
  return { dir: opts.dir, files, bytes, root, studyUid, seriesUid, transferSyntax: t.transferSyntax, templateBytes: t.bytes.length };
}
