import { deflateRawSync } from 'node:zlib';
import { encodeCommand } from '../../src/dicom/command.js';
import { MAX_NESTING } from '../../src/dicom/dataset-walker.js';
import { Tag } from '../../src/dicom/tags.js';
import { CT_IMAGE_STORAGE, ctElements, type El, encodeDataset, type Encoding, ExplicitLE, ImplicitLE, TS_UID } from './dicom-builder.js';
import { associateRqBody, pdu, pduItem, pdv, pDataPdu } from './pdu-builder.js';

/**
 * The seeded generator of test/faults/fuzz.integration.test.ts: malformed PDUs and malformed
 * DIMSE messages, every one built from a seed so that a failing case can be rebuilt alone
 * (`PACS_EDGE_FUZZ_SEED=<seed>`, then the case index from the failure message).
 *
 * Every DIMSE case is malformed in a way that any structural check must see (a cut strictly
 * inside an element, a sequence left open, a length running past its item, VR bytes that are
 * no VR…): a Success for one of them is a gateway bug, never luck of the draw.
 */

/** sfc32: a small, fast PRNG with a 128-bit state, seeded from one 32-bit number. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x1_0000_0000) * (hi - lo + 1));
  }

  bool(p = 0.5): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

export const VERIFICATION = '1.2.840.10008.1.1';
export const CALLED_AE = 'PACS_EDGE';
export const CALLING_AE = 'FUZZER';
/** Presentation contexts of every fuzzing association: CT in three syntaxes (one deflated), and Verification. */
export const CTX = { ctExplicit: 1, ctImplicit: 3, verification: 5, ctDeflated: 7 } as const;
const CONTEXTS = [
  { id: CTX.ctExplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] },
  { id: CTX.ctImplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.implicit] },
  { id: CTX.verification, abstractSyntax: VERIFICATION, transferSyntaxes: [TS_UID.implicit] },
  { id: CTX.ctDeflated, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.deflate] },
];
/**
 * The fuzzing gateway's `receive.maxObjectBytes`: far above every well-formed case (the deepest
 * nesting is ~320 KB), low enough that the deflate bombs, which must inflate past it, stay cheap.
 */
export const FUZZ_MAX_OBJECT_BYTES = 4 * 1024 * 1024;
/** Our maximum PDU, announced in every A-ASSOCIATE-RQ; our P-DATA never exceeds it either. */
export const OUR_MAX_PDU = 16384;

/** The valid A-ASSOCIATE-RQ every association starts from. */
export function goodAssociateRq(): Buffer {
  return pdu(0x01, associateRqBody({ calledAe: CALLED_AE, callingAe: CALLING_AE, contexts: CONTEXTS, maxPduLength: OUR_MAX_PDU }));
}

/** Split a message into P-DATA-TF PDUs of one PDV each (bit 0: command, bit 1: last). */
export function pdata(contextId: number, isCommand: boolean, data: Buffer, fragment = OUR_MAX_PDU - 12): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  do {
    const n = Math.min(fragment, data.length - off);
    const last = off + n >= data.length;
    out.push(pDataPdu(pdv(contextId, (isCommand ? 1 : 0) | (last ? 2 : 0), data.subarray(off, off + n))));
    off += n;
  } while (off < data.length);
  return out;
}

type CmdValue = Parameters<typeof encodeCommand>[0][number];

/** The elements of a well-formed C-STORE-RQ. @see PS3.7 Table 9.3-1 */
export function storeCommandValues(opts: { sopClassUid: string; sopInstanceUid: string; messageId: number; dataSet?: boolean }): CmdValue[] {
  return [
    { tag: Tag.AffectedSopClassUid, vr: 'UI', value: opts.sopClassUid },
    { tag: Tag.CommandField, vr: 'US', value: 0x0001 },
    { tag: Tag.MessageId, vr: 'US', value: opts.messageId },
    { tag: Tag.Priority, vr: 'US', value: 0 },
    { tag: Tag.CommandDataSetType, vr: 'US', value: opts.dataSet === false ? 0x0101 : 0x0000 },
    { tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: opts.sopInstanceUid },
  ];
}

export function echoCommand(messageId: number): Buffer {
  return encodeCommand([
    { tag: Tag.AffectedSopClassUid, vr: 'UI', value: VERIFICATION },
    { tag: Tag.CommandField, vr: 'US', value: 0x0030 },
    { tag: Tag.MessageId, vr: 'US', value: messageId },
    { tag: Tag.CommandDataSetType, vr: 'US', value: 0x0101 },
  ]);
}

/** Implicit VR LE command elements, each as [tag, value bytes], for hand-broken command sets. */
function rawCommand(els: { tag: number; value: Buffer }[], groupLength?: number | null): Buffer {
  const body = Buffer.concat(
    els.map(({ tag, value }) => {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(tag >>> 16, 0);
      h.writeUInt16LE(tag & 0xffff, 2);
      h.writeUInt32LE(value.length, 4);
      return Buffer.concat([h, value]);
    }),
  );
  if (groupLength === null) return body;
  const gl = Buffer.alloc(12);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE(groupLength ?? body.length, 8);
  return Buffer.concat([gl, body]);
}

const us = (n: number, bytes = 2): Buffer => {
  const b = Buffer.alloc(bytes);
  if (bytes >= 2) b.writeUInt16LE(n & 0xffff, 0);
  else if (bytes === 1) b[0] = n & 0xff;
  return b;
};
const ui = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');

function storeRawElements(sopClassUid: string, sopInstanceUid: string, messageId: number): { tag: number; value: Buffer }[] {
  return [
    { tag: Tag.AffectedSopClassUid, value: ui(sopClassUid) },
    { tag: Tag.CommandField, value: us(0x0001) },
    { tag: Tag.MessageId, value: us(messageId) },
    { tag: Tag.Priority, value: us(0) },
    { tag: Tag.CommandDataSetType, value: us(0) },
    { tag: Tag.AffectedSopInstanceUid, value: ui(sopInstanceUid) },
  ];
}

// ---- data sets ------------------------------------------------------------------------------------

/** The patient name every fuzzed data set carries (dicom-builder's); it must never reach the log. */
export const PATIENT_MARKER = 'Test^Fixture';

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const ALL_VRS = new Set([...LONG_VRS, 'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US']);
const CONTENT_SEQUENCE = 0x0040a730;

/** A data set encoded element by element, so a mutation knows where each top-level element lies. */
interface Laid {
  bytes: Buffer;
  /** [start, end) of each top-level element, and its El. */
  spans: { start: number; end: number; el: El }[];
}

function layOut(els: El[], enc: Encoding): Laid {
  const parts: Buffer[] = [];
  const spans: Laid['spans'] = [];
  let off = 0;
  for (const el of els) {
    const b = encodeDataset([el], enc);
    spans.push({ start: off, end: off + b.length, el });
    parts.push(b);
    off += b.length;
  }
  return { bytes: Buffer.concat(parts), spans };
}

function baseElements(rng: Rng, uid: string, opts: { fragments?: boolean } = {}): El[] {
  const rows = rng.int(2, 16);
  const cols = rng.int(2, 16);
  return ctElements({
    sopInstanceUid: uid,
    rows,
    cols,
    undefinedLengthSequence: rng.bool(),
    ...(opts.fragments ? { fragments: [rng.bytes(rng.int(1, 200)), rng.bytes(rng.int(2, 64))] } : {}),
  });
}

function elementHeaderLength(el: El, enc: Encoding): number {
  if (!enc.explicitVr) return 8;
  return LONG_VRS.has(el.vr) ? 12 : 8;
}

/** Overwrite the declared length of the element whose header starts at `start`. */
function setLength(buf: Buffer, start: number, el: El, enc: Encoding, length: number): void {
  if (!enc.explicitVr) buf.writeUInt32LE(length >>> 0, start + 4);
  else if (LONG_VRS.has(el.vr)) buf.writeUInt32LE(length >>> 0, start + 8);
  else buf.writeUInt16LE(length & 0xffff, start + 6);
}

/** `depth` nested sequences of one item each, all of undefined length, around one leaf element. */
function deepNest(depth: number, enc: Encoding, opts: { definedLengths: boolean }): { bytes: Buffer; delimiters: number[] } {
  const le = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0, 0);
    return b;
  };
  const tag = (t: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(t >>> 16, 0);
    b.writeUInt16LE(t & 0xffff, 2);
    return b;
  };
  const sqHeader = (len: number) =>
    enc.explicitVr ? Buffer.concat([tag(CONTENT_SEQUENCE), Buffer.from('SQ'), Buffer.alloc(2), le(len)]) : Buffer.concat([tag(CONTENT_SEQUENCE), le(len)]);
  const leaf = enc.explicitVr
    ? Buffer.concat([tag(0x0040a160), Buffer.from('UT'), Buffer.alloc(2), le(4), Buffer.from('leaf')])
    : Buffer.concat([tag(0x0040a160), le(4), Buffer.from('leaf')]);
  if (opts.definedLengths) {
    let inner = leaf;
    for (let i = 0; i < depth; i++) {
      const itemBytes = Buffer.concat([tag(0xfffee000), le(inner.length), inner]);
      inner = Buffer.concat([sqHeader(itemBytes.length), itemBytes]);
    }
    return { bytes: inner, delimiters: [] };
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < depth; i++) parts.push(sqHeader(0xffffffff), tag(0xfffee000), le(0xffffffff));
  parts.push(leaf);
  const delimiters: number[] = [];
  let off = parts.reduce((n, p) => n + p.length, 0);
  for (let i = 0; i < depth; i++) {
    delimiters.push(off);
    parts.push(tag(0xfffee00d), le(0)); // item delimiter
    delimiters.push(off + 8);
    parts.push(tag(0xfffee0dd), le(0)); // sequence delimiter
    off += 16;
  }
  return { bytes: Buffer.concat(parts), delimiters };
}

// ---- cases ---------------------------------------------------------------------------------------

export type PduKind =
  | 'truncated'
  | 'oversized-length'
  | 'rq-item-length'
  | 'bad-type'
  | 'bad-pdv'
  | 'pdata-before-association'
  | 'release-wrong-state'
  | 'random-bytes'
  | 'rq-then-garbage'
  | 'long-strings';

export type DimseKind =
  | 'command-missing-element'
  | 'command-wrong-element'
  | 'command-group-length-lie'
  | 'command-undecodable'
  | 'length-past-end'
  | 'undefined-length-no-delimiter'
  | 'deep-nesting'
  | 'odd-length'
  | 'bad-vr'
  | 'truncated-last-fragment'
  | 'encapsulated-no-delimiter'
  | 'uid-mismatch'
  | 'deflate-bomb';

export const PDU_KINDS: readonly PduKind[] = [
  'truncated',
  'oversized-length',
  'rq-item-length',
  'bad-type',
  'bad-pdv',
  'pdata-before-association',
  'release-wrong-state',
  'random-bytes',
  'rq-then-garbage',
  'long-strings',
];
export const DIMSE_KINDS: readonly DimseKind[] = [
  'command-missing-element',
  'command-wrong-element',
  'command-group-length-lie',
  'command-undecodable',
  'length-past-end',
  'undefined-length-no-delimiter',
  'deep-nesting',
  'odd-length',
  'bad-vr',
  'truncated-last-fragment',
  'encapsulated-no-delimiter',
  'uid-mismatch',
  'deflate-bomb',
];

/** One PDU-level case: bytes for a connection of its own. */
export interface PduPlan {
  /** Send the good A-ASSOCIATE-RQ first and expect an A-ASSOCIATE-AC. */
  associateFirst: boolean;
  /** Written one after another (split, to exercise incremental framing). */
  chunks: Buffer[];
  /**
   * The bytes are a correct prefix of something longer: the gateway is right to wait for more,
   * and the case ends only by the gateway's own ARTIM or idle timeout.
   */
  waits: boolean;
  /** What was done, for the failure message. */
  what: string;
}

/** One DIMSE-level case: a message on an established fuzzing association. */
export interface DimsePlan {
  pdus: Buffer[];
  /**
   * 'status': the command can be decoded, so the answer must be a failure status on a live
   * association (an A-ABORT here would be a dead association instead of a failure status).
   * 'abort': the command set itself cannot be decoded; A-ABORT is the right answer.
   */
  want: 'status' | 'abort';
  what: string;
}

export interface FuzzCase<K, P> {
  index: number;
  kind: K;
  seed: number;
  build: () => P;
}
export type PduCase = FuzzCase<PduKind, PduPlan> & { family: 'pdu' };
export type DimseCase = FuzzCase<DimseKind, DimsePlan> & { family: 'dimse'; uid: string };

/** A UID unique per seed and case, so spool checks can tell the cases apart. */
function caseUid(seed: number, index: number): string {
  return `2.25.${seed}${String(index).padStart(7, '0')}`;
}

/**
 * The whole run: `count` cases, half PDU level, half DIMSE level, kinds in turn, each with its
 * own seed drawn from the run's PRNG (so building them lazily, in any order, gives the same bytes).
 */
export function generateCases(seed: number, count: number): { pdu: PduCase[]; dimse: DimseCase[] } {
  const rng = new Rng(seed);
  const pduCases: PduCase[] = [];
  const dimseCases: DimseCase[] = [];
  for (let i = 0; i < count; i++) {
    const s = rng.u32();
    if (i % 2 === 0) {
      const kind = PDU_KINDS[(i / 2) % PDU_KINDS.length]!;
      pduCases.push({ family: 'pdu', index: i, kind, seed: s, build: () => buildPduCase(kind, new Rng(s)) });
    } else {
      const kind = DIMSE_KINDS[((i - 1) / 2) % DIMSE_KINDS.length]!;
      const uid = caseUid(seed, i);
      dimseCases.push({ family: 'dimse', index: i, kind, seed: s, uid, build: () => buildDimseCase(kind, new Rng(s), uid) });
    }
  }
  return { pdu: pduCases, dimse: dimseCases };
}

/** Cut a buffer into 1-4 pieces at random points. */
function split(rng: Rng, b: Buffer): Buffer[] {
  if (b.length < 2 || rng.bool(0.5)) return [b];
  const cuts = [...new Set(Array.from({ length: rng.int(1, 3) }, () => rng.int(1, b.length - 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(b.subarray(prev, c));
    prev = c;
  }
  out.push(b.subarray(prev));
  return out;
}

function pduHeader(type: number, length: number): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(length >>> 0, 2);
  return h;
}

/** Items of the good A-ASSOCIATE-RQ body (after its 68 fixed bytes), with their offsets. */
function rqItems(body: Buffer): { type: number; start: number; len: number; sub: { type: number; start: number; len: number }[] }[] {
  const out: ReturnType<typeof rqItems> = [];
  let off = 68;
  while (off + 4 <= body.length) {
    const type = body[off]!;
    const len = body.readUInt16BE(off + 2);
    const sub: { type: number; start: number; len: number }[] = [];
    if (type === 0x20 || type === 0x50) {
      let s = off + 4 + (type === 0x20 ? 4 : 0);
      while (s + 4 <= off + 4 + len) {
        sub.push({ type: body[s]!, start: s, len: body.readUInt16BE(s + 2) });
        s += 4 + body.readUInt16BE(s + 2);
      }
    }
    out.push({ type, start: off, len, sub });
    off += 4 + len;
  }
  return out;
}

const KNOWN_ITEM_TYPES = new Set([0x10, 0x20, 0x21, 0x30, 0x40, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59]);

function buildPduCase(kind: PduKind, rng: Rng): PduPlan {
  const rq = goodAssociateRq();
  switch (kind) {
    case 'truncated': {
      // A correct prefix of a valid PDU: before association an A-ASSOCIATE-RQ, after it a
      // C-ECHO or C-STORE P-DATA-TF or an A-RELEASE-RQ. Waiting for the rest is correct.
      const after = rng.bool(0.5);
      let whole: Buffer;
      if (!after) whole = rq;
      else {
        const which = rng.int(0, 2);
        whole =
          which === 0
            ? pdata(CTX.verification, true, echoCommand(1))[0]!
            : which === 1
              ? pdata(CTX.ctExplicit, true, encodeCommand(storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '1.2.3', messageId: 1 })))[0]!
              : pdu(0x05, Buffer.alloc(4));
      }
      const cut = rng.int(1, whole.length - 1);
      return { associateFirst: after, chunks: split(rng, whole.subarray(0, cut)), waits: true, what: `${after ? 'after AC, ' : ''}first ${cut} of ${whole.length} bytes` };
    }
    case 'oversized-length': {
      // Beyond what the reader takes (1 MiB for control PDUs, 2 × max(maxPduLength, 1 MiB) for
      // P-DATA-TF), up to 0xFFFFFFFF; refused from the header alone, before any body arrives.
      const after = rng.bool(0.5);
      const type = rng.pick([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
      const limit = type === 0x04 ? 2 * 1024 * 1024 : 1024 * 1024;
      const length = rng.bool(0.2) ? 0xffffffff : rng.int(limit + 1, 0xffffffff);
      const body = rng.bytes(rng.int(0, 64));
      return { associateFirst: after, chunks: split(rng, Buffer.concat([pduHeader(type, length), body])), waits: false, what: `type 0x${type.toString(16)} length ${length}` };
    }
    case 'rq-item-length': {
      const body = Buffer.from(rq.subarray(6));
      const items = rqItems(body);
      const targets = items.flatMap((it) => [{ start: it.start, len: it.len, type: it.type }, ...it.sub]);
      const t = rng.pick(targets);
      const mode = rng.pick(['zero', 'huge', 'overrun', 'shorter', 'pdu-short', 'field'] as const);
      if (mode === 'field') {
        // Well framed, wrong content: protocol version, called AE title or application context
        // name (same length, one character changed): an A-ASSOCIATE-RJ, not an A-ABORT.
        const which = rng.int(0, 2);
        if (which === 0) body.writeUInt16BE(rng.pick([0x0000, 0x0002, 0xfffe]), 0);
        else if (which === 1) Buffer.from(rng.pick(['NOT_ME', 'PACS_EDGX', 'pacs_edge']).padEnd(16, ' ')).copy(body, 4);
        else body[items[0]!.start + 4 + rng.int(0, items[0]!.len - 1)] = 0x39;
        const what = ['protocol version', 'called AE title', 'application context name'][which]!;
        return { associateFirst: false, chunks: split(rng, pdu(0x01, body)), waits: false, what: `wrong ${what}` };
      }
      if (mode === 'pdu-short') {
        // The PDU length stops inside the items: the last item overruns its PDU.
        const len = rng.int(68 + 1, body.length - 1);
        const b = Buffer.concat([pduHeader(0x01, len), body.subarray(0, len)]);
        return { associateFirst: false, chunks: split(rng, b), waits: false, what: `PDU length ${len} of ${body.length}` };
      }
      const value = mode === 'zero' ? 0 : mode === 'huge' ? 0xffff : mode === 'overrun' ? Math.min(0xffff, body.length - t.start + rng.int(0, 300)) : Math.max(0, t.len - rng.int(1, 8));
      if (value === t.len) body.writeUInt16BE(0xffff, t.start + 2);
      else body.writeUInt16BE(value, t.start + 2);
      return { associateFirst: false, chunks: split(rng, pdu(0x01, body)), waits: false, what: `item 0x${t.type.toString(16)} length ${t.len} → ${value} (${mode})` };
    }
    case 'bad-type': {
      const mode = rng.int(0, 3);
      if (mode === 0) {
        // A PDU type PS3.8 does not define.
        const type = rng.pick([0x00, ...Array.from({ length: 248 }, (_, i) => i + 8)]);
        const body = rng.bytes(rng.int(0, 40));
        const after = rng.bool(0.5);
        return { associateFirst: after, chunks: [Buffer.concat([pduHeader(type, body.length), body])], waits: false, what: `PDU type 0x${type.toString(16)}` };
      }
      if (mode === 1) {
        // PDUs only an acceptor sends (A-ASSOCIATE-AC/RJ, A-RELEASE-RP), sent to the acceptor.
        const type = rng.pick([0x02, 0x03, 0x06]);
        const body = type === 0x02 ? Buffer.from(rq.subarray(6)) : Buffer.alloc(4);
        return { associateFirst: rng.bool(0.5), chunks: split(rng, pdu(type, body)), waits: false, what: `PDU type 0x${type.toString(16)} to the acceptor` };
      }
      // An item type PS3.8 does not define, at the top level or inside a presentation context
      // or the user information: ignored as PS3.8 §9.3.1 asks, so the association is accepted
      // and the test goes on with an unexpected A-ASSOCIATE-RQ.
      let type: number;
      do type = rng.int(0, 255);
      while (KNOWN_ITEM_TYPES.has(type));
      const unknown = pduItem(type, rng.bytes(rng.int(0, 32)));
      const spec = { calledAe: CALLED_AE, callingAe: CALLING_AE, maxPduLength: OUR_MAX_PDU };
      const body =
        mode === 2
          ? associateRqBody({ ...spec, contexts: CONTEXTS, extraItems: [unknown] })
          : associateRqBody({ ...spec, contexts: CONTEXTS, extraUserItems: [unknown] });
      return { associateFirst: false, chunks: split(rng, pdu(0x01, body)), waits: false, what: `unknown item type 0x${type.toString(16)} (${mode === 2 ? 'top level' : 'user information'})` };
    }
    case 'bad-pdv': {
      const echo = echoCommand(1);
      const mode = rng.int(0, 6);
      let bytes: Buffer;
      let what: string;
      if (mode === 0) {
        // PDV item length 0 or 1: no room for its context id and control header.
        const l = rng.int(0, 1);
        const p = Buffer.alloc(4 + Math.max(l, 2));
        p.writeUInt32BE(l, 0);
        bytes = pdu(0x04, p);
        what = `PDV length ${l}`;
      } else if (mode === 1) {
        // PDV item longer than its P-DATA-TF.
        const p = pdv(CTX.verification, 3, echo);
        p.writeUInt32BE(echo.length + 2 + rng.int(1, 5000), 0);
        bytes = pdu(0x04, p);
        what = 'PDV longer than its PDU';
      } else if (mode === 2) {
        // Reserved bits of the message control header set (PS3.8 E.2: bits 2-7 are 0).
        const mch = 0x03 | (rng.int(1, 63) << 2);
        bytes = pDataPdu(pdv(CTX.verification, mch, echo));
        what = `message control header 0x${mch.toString(16)}`;
      } else if (mode === 3) {
        // A presentation context that was not accepted (even ids are never valid).
        const offered = new Set<number>(Object.values(CTX));
        const ctx = rng.pick([0, 2, 4, 9, 11, 255, rng.int(6, 255)].filter((c) => !offered.has(c)));
        bytes = pDataPdu(pdv(ctx, 3, echo));
        what = `PDV on context ${ctx}`;
      } else if (mode === 4) {
        // A data set fragment with no command before it.
        bytes = pDataPdu(pdv(CTX.ctExplicit, rng.pick([0, 2]), rng.bytes(rng.int(0, 100))));
        what = 'data fragment without a command';
      } else if (mode === 5) {
        // A command fragment where the data set of a C-STORE was expected.
        const cmd = encodeCommand(storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '1.2.3', messageId: 1 }));
        bytes = Buffer.concat([pDataPdu(pdv(CTX.ctExplicit, 3, cmd)), pDataPdu(pdv(CTX.ctExplicit, 3, echo))]);
        what = 'command where a data set was expected';
      } else {
        // Two PDVs whose lengths do not add up to the P-DATA-TF length.
        const a = pdv(CTX.verification, 1, echo.subarray(0, 10));
        const b = pdv(CTX.verification, 3, echo.subarray(10));
        const p = pdu(0x04, Buffer.concat([a, b]));
        p.writeUInt32BE(a.length + rng.int(1, 5), 2);
        bytes = p;
        what = 'PDVs overrun the P-DATA-TF length';
      }
      return { associateFirst: true, chunks: split(rng, bytes), waits: false, what };
    }
    case 'pdata-before-association': {
      const m = rng.int(0, 2);
      if (m === 0) return { associateFirst: false, chunks: pdata(CTX.verification, true, echoCommand(1)), waits: false, what: 'C-ECHO before A-ASSOCIATE-RQ' };
      if (m === 1) {
        const ds = encodeDataset(baseElements(rng, '1.2.3'), ExplicitLE);
        return { associateFirst: false, chunks: pdata(CTX.ctExplicit, false, ds).slice(0, 1), waits: false, what: 'data set before A-ASSOCIATE-RQ' };
      }
      // A P-DATA-TF too short to hold a PDV header: the reader waits for the PDV header that
      // would complete it, or (length 0) has no PDV to refuse; either way ARTIM ends the case.
      const len = rng.int(0, 5);
      return { associateFirst: false, chunks: [Buffer.concat([pduHeader(0x04, len), rng.bytes(len)])], waits: true, what: `P-DATA-TF of ${len} bytes before A-ASSOCIATE-RQ` };
    }
    case 'release-wrong-state': {
      const m = rng.int(0, 2);
      const rel = pdu(0x05, Buffer.alloc(4));
      if (m === 0) return { associateFirst: false, chunks: [rel], waits: false, what: 'A-RELEASE-RQ before A-ASSOCIATE-RQ' };
      if (m === 1) return { associateFirst: true, chunks: [Buffer.concat([rel, rel])], waits: false, what: 'A-RELEASE-RQ twice' };
      // In the middle of a C-STORE data set: the message can never complete, so the gateway
      // ends the association by its idle timeout.
      const ds = encodeDataset(baseElements(rng, '1.2.3'), ExplicitLE);
      const cmd = encodeCommand(storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '1.2.3', messageId: 1 }));
      const part = pDataPdu(pdv(CTX.ctExplicit, 0, ds.subarray(0, rng.int(1, ds.length - 1))));
      return { associateFirst: true, chunks: [...pdata(CTX.ctExplicit, true, cmd), part, rel], waits: true, what: 'A-RELEASE-RQ in the middle of a data set' };
    }
    case 'random-bytes': {
      const b = rng.bytes(rng.int(1, 2048));
      // Half of them start like a PDU of a known type, so they reach the body parsers.
      if (rng.bool(0.5)) {
        b[0] = rng.int(1, 7);
        if (b.length >= 6) b.writeUInt32BE(rng.int(0, b.length * 2), 2);
      }
      return { associateFirst: rng.bool(0.3), chunks: split(rng, b), waits: false, what: `${b.length} random bytes, first 0x${b[0]!.toString(16)}` };
    }
    case 'rq-then-garbage': {
      const g = rng.bytes(rng.int(1, 1024));
      return { associateFirst: false, chunks: split(rng, Buffer.concat([rq, g])), waits: false, what: `A-ASSOCIATE-RQ then ${g.length} random bytes` };
    }
    case 'long-strings': {
      // Peer values the gateway repeats in its refusal (log, audit, MQTT, metrics): an application
      // context name of up to 60 000 random bytes, or AE titles of control bytes and quotes.
      if (rng.bool(0.5)) {
        const len = rng.int(1_000, 60_000);
        const name = rng.bytes(len).toString('latin1');
        const body = associateRqBody({ calledAe: CALLED_AE, callingAe: CALLING_AE, contexts: CONTEXTS, maxPduLength: OUR_MAX_PDU, applicationContext: name });
        return { associateFirst: false, chunks: split(rng, pdu(0x01, body)), waits: false, what: `application context name of ${len} random bytes` };
      }
      const ae = () => Buffer.from(Array.from({ length: 16 }, () => rng.pick([0x00, 0x07, 0x0a, 0x1b, 0x22, 0x5c, 0x7f, 0xff, rng.int(0x21, 0x7e)])));
      const body = associateRqBody({ calledAe: rng.bool(0.5) ? ae() : CALLED_AE, callingAe: ae(), contexts: CONTEXTS, maxPduLength: OUR_MAX_PDU });
      return { associateFirst: false, chunks: split(rng, pdu(0x01, body)), waits: false, what: 'AE titles of control bytes and quotes' };
    }
  }
}

function buildDimseCase(kind: DimseKind, rng: Rng, uid: string): DimsePlan {
  const explicit = rng.bool(0.5);
  const enc = explicit ? ExplicitLE : ImplicitLE;
  const ctx = explicit ? CTX.ctExplicit : CTX.ctImplicit;
  const messageId = rng.int(1, 0xfffe);
  const syntax = explicit ? 'Explicit VR LE' : 'Implicit VR LE';
  const command = (values?: CmdValue[]) => pdata(ctx, true, encodeCommand(values ?? storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, messageId })));
  const dataSet = (ds: Buffer) => pdata(ctx, false, ds, rng.pick([OUR_MAX_PDU - 12, rng.int(1, 4096)]));
  const good = () => layOut(baseElements(rng, uid), enc);
  const plan = (pdus: Buffer[], want: DimsePlan['want'], what: string): DimsePlan => ({ pdus, want, what: `${what} (${syntax})` });

  switch (kind) {
    case 'command-missing-element': {
      // Every element PS3.7 Table 9.3-1 makes mandatory for a C-STORE-RQ, left out in turn.
      const values = storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, messageId });
      const drop = rng.int(0, values.length - 1);
      const tag = values[drop]!.tag;
      values.splice(drop, 1);
      // Without (0000,0800) no data set is announced, so none is sent.
      const pdus = tag === Tag.CommandDataSetType ? command(values) : [...command(values), ...dataSet(good().bytes)];
      return plan(pdus, 'status', `C-STORE-RQ without (0000,${(tag & 0xffff).toString(16).padStart(4, '0')})`);
    }
    case 'command-wrong-element': {
      const m = rng.int(0, 4);
      const ds = good().bytes;
      if (m === 0) {
        // A SOP Class that is not the presentation context's.
        const values = storeCommandValues({ sopClassUid: rng.pick(['1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.5.1.4.1.1.7', VERIFICATION]), sopInstanceUid: uid, messageId });
        return plan([...command(values), ...dataSet(ds)], 'status', 'C-STORE-RQ with another SOP Class than its context');
      }
      if (m === 1) {
        // A request Command Field other than C-STORE, C-ECHO and C-CANCEL (responses, bit 15,
        // and C-CANCEL-RQ are never answered, as DIMSE has it).
        let field: number;
        do field = rng.bool(0.5) ? rng.pick([0x0010, 0x0020, 0x0021, 0x0100, 0x0110, 0x0120, 0x0130, 0x0140, 0x0150]) : rng.int(0, 0x7fff);
        while (field === 0x0001 || field === 0x0030 || field === 0x0fff);
        const values = storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, messageId }).map((v) => (v.tag === Tag.CommandField ? { ...v, value: field } : v));
        return plan([...command(values), ...dataSet(ds)], 'status', `command field 0x${field.toString(16)}`);
      }
      if (m === 2) {
        // A US element of the wrong length (PS3.5: US is 2 bytes).
        const els = storeRawElements(CT_IMAGE_STORAGE, uid, messageId);
        const target = rng.pick([Tag.CommandField, Tag.MessageId, Tag.Priority]);
        const len = rng.pick([0, 1, 3, 4, 8]);
        const e = els.find((x) => x.tag === target)!;
        e.value = Buffer.concat([e.value, Buffer.alloc(8)]).subarray(0, len);
        return plan([...pdata(ctx, true, rawCommand(els)), ...dataSet(ds)], 'status', `(0000,${(target & 0xffff).toString(16).padStart(4, '0')}) of length ${len}`);
      }
      if (m === 3) {
        // No data set announced (0x0101): a C-STORE-RQ must carry one.
        const values = storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, messageId, dataSet: false });
        return plan(command(values), 'status', 'C-STORE-RQ with Command Data Set Type 0x0101');
      }
      // An empty Affected SOP Instance UID.
      const values = storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '', messageId });
      return plan([...command(values), ...dataSet(ds)], 'status', 'empty Affected SOP Instance UID');
    }
    case 'command-group-length-lie': {
      const els = storeRawElements(CT_IMAGE_STORAGE, uid, messageId);
      const actual = rawCommand(els, null).length;
      let lie: number;
      do lie = rng.pick([0, 2, actual - 2, actual + 2, actual + rng.int(3, 1000), 0xffffffff, rng.int(0, 0xffffffff)]);
      while (lie === actual || lie < 0);
      return plan([...pdata(ctx, true, rawCommand(els, lie)), ...dataSet(good().bytes)], 'status', `group length ${lie}, actual ${actual}`);
    }
    case 'command-undecodable': {
      const els = storeRawElements(CT_IMAGE_STORAGE, uid, messageId);
      const m = rng.int(0, 2);
      let cmd: Buffer;
      let what: string;
      if (m === 0) {
        // An element whose length runs past the end of the command set.
        cmd = rawCommand(els);
        // The first element after the group length: its length field is at byte 12 + 4.
        cmd.writeUInt32LE(cmd.length + rng.int(1, 100000), 16);
        what = 'command element runs past the end';
      } else if (m === 1) {
        // An element of another group in the command set.
        cmd = rawCommand([...els, { tag: 0x00080018, value: ui(uid) }]);
        what = 'data element inside the command set';
      } else {
        // An element header cut short.
        cmd = Buffer.concat([rawCommand(els), rng.bytes(rng.int(1, 7))]);
        what = 'command set ends inside an element header';
      }
      return plan(pdata(ctx, true, cmd), 'abort', what);
    }
    case 'length-past-end': {
      // One top-level element claims more bytes than the rest of the data set holds.
      const l = good();
      const i = rng.int(0, l.spans.length - 1);
      const s = l.spans[i]!;
      const valueStart = s.start + elementHeaderLength(s.el, enc);
      const remaining = l.bytes.length - valueStart;
      const short = explicit && !LONG_VRS.has(s.el.vr) && s.el.vr !== 'SQ';
      const max = short ? 0xffff : 0xfffffffe;
      if (remaining + 1 > max) return plan([...command(), ...dataSet(l.bytes.subarray(0, l.bytes.length - 1))], 'status', 'cut by one byte');
      const length = rng.int(remaining + 1, Math.min(max, remaining + rng.pick([1, 100, 100000, max])));
      const bytes = Buffer.from(l.bytes);
      if ('items' in s.el || 'fragments' in s.el) {
        // Sequences and encapsulated pixel data: their header's length field too.
        bytes.writeUInt32LE(length >>> 0, s.start + (explicit ? 8 : 4));
      } else setLength(bytes, s.start, s.el, enc, length);
      return plan([...command(), ...dataSet(bytes)], 'status', `element ${i} length ${length}, ${remaining} bytes left`);
    }
    case 'undefined-length-no-delimiter': {
      // (0008,1140) with undefined lengths; its item or sequence delimiter left out.
      const els = ctElements({ sopInstanceUid: uid, rows: rng.int(2, 8), cols: rng.int(2, 8), undefinedLengthSequence: true });
      const l = layOut(els, enc);
      const s = l.spans.find((x) => 'items' in x.el)!;
      const seq = l.bytes.subarray(s.start, s.end);
      const m = rng.int(0, 2);
      // The sequence ends with item delimiter (8) + sequence delimiter (8).
      const cut = m === 0 ? seq.subarray(0, seq.length - 8) : m === 1 ? Buffer.concat([seq.subarray(0, seq.length - 16), seq.subarray(seq.length - 8)]) : seq.subarray(0, seq.length - 16);
      const bytes = Buffer.concat([l.bytes.subarray(0, s.start), cut, l.bytes.subarray(s.end)]);
      return plan([...command(), ...dataSet(bytes)], 'status', ['no sequence delimiter', 'no item delimiter', 'neither delimiter'][m]!);
    }
    case 'deep-nesting': {
      const depth = rng.pick([rng.int(100, 999), rng.int(1000, 3000)]);
      // Defined-length sequences only in Explicit VR: in Implicit VR the gateway's check has no
      // data dictionary, so a defined-length SQ is an opaque value to it (a documented limit).
      const m = explicit ? rng.int(0, 3) : rng.pick([0, 1, 3]);
      const l = good();
      let nest: Buffer;
      let what: string;
      if (m === 3) {
        // Well formed, only too deep: undefined lengths all the way down and back up, tens of
        // thousands of levels (refused with 0xC005, src/dicom/dataset-walker.ts MAX_NESTING).
        const levels = rng.int(MAX_NESTING / 2 + 1, 20_000);
        nest = deepNest(levels, enc, { definedLengths: false }).bytes;
        what = `${levels} deep, well formed`;
      } else if (m === 0) {
        // Undefined lengths all the way down, the last few delimiters missing.
        const n = deepNest(depth, enc, { definedLengths: false });
        const missing = rng.int(1, Math.min(2 * depth, 50));
        nest = n.bytes.subarray(0, n.bytes.length - 8 * missing);
        what = `${depth} deep, ${missing} delimiters missing`;
      } else if (m === 1) {
        // Undefined lengths, one item delimiter swapped for a sequence delimiter (or back).
        const n = deepNest(depth, enc, { definedLengths: false });
        nest = Buffer.from(n.bytes);
        const at = rng.pick(n.delimiters);
        nest.writeUInt16LE(nest.readUInt16LE(at + 2) === 0xe00d ? 0xe0dd : 0xe00d, at + 2);
        what = `${depth} deep, a delimiter swapped`;
      } else {
        // Defined lengths all the way down, the innermost value one byte longer than its item.
        const n = deepNest(depth, enc, { definedLengths: true });
        nest = Buffer.from(n.bytes);
        // The leaf is the last element: its 32-bit length field just before its 4-byte value 'leaf'.
        nest.writeUInt32LE(5, nest.length - 8);
        what = `${depth} deep with defined lengths, innermost value overruns`;
      }
      const at = l.spans[rng.int(0, l.spans.length - 1)]!.end;
      return plan([...command(), ...dataSet(Buffer.concat([l.bytes.subarray(0, at), nest, l.bytes.subarray(at)]))], 'status', what);
    }
    case 'odd-length': {
      // The defined-length item variant only in Explicit VR (see 'deep-nesting').
      const m = explicit ? rng.int(0, 2) : rng.int(0, 1);
      if (m === 2) {
        // In the defined-length item of (0008,1140): a value one byte longer (odd) runs past the item.
        const els = ctElements({ sopInstanceUid: uid, rows: rng.int(2, 8), cols: rng.int(2, 8), undefinedLengthSequence: false });
        const l = layOut(els, enc);
        const s = l.spans.find((x) => 'items' in x.el)!;
        const bytes = Buffer.from(l.bytes);
        // The last element of the item: (0008,1155) UI '1.2.3.4' padded to 8 bytes, at the end of the sequence.
        const lenAt = s.end - 8 - (explicit ? 2 : 4);
        if (explicit) bytes.writeUInt16LE(9, lenAt);
        else bytes.writeUInt32LE(9, lenAt);
        return plan([...command(), ...dataSet(bytes)], 'status', 'odd length runs past its item');
      }
      // The last element's length made odd: one byte short of or past the end of the stream.
      const l = good();
      const s = l.spans[l.spans.length - 1]!;
      const valueLen = s.end - s.start - elementHeaderLength(s.el, enc);
      const bytes = Buffer.from(l.bytes);
      const newLen = m === 0 ? valueLen + 1 : valueLen - 1;
      setLength(bytes, s.start, s.el, enc, newLen);
      return plan([...command(), ...dataSet(bytes)], 'status', `last element's length ${valueLen} → ${newLen}`);
    }
    case 'bad-vr': {
      const l = good();
      if (!explicit) {
        // Implicit VR context, Explicit VR bytes: the VR and 16-bit length read as a 32-bit
        // length far beyond the data set.
        const ex = layOut(baseElements(rng, uid), ExplicitLE).bytes;
        return plan([...command(), ...dataSet(ex)], 'status', 'Explicit VR data set on the Implicit VR context');
      }
      if (rng.bool(0.25)) {
        // Explicit VR context, Implicit VR bytes: the VR bytes are the low bytes of a length.
        const im = layOut(baseElements(rng, uid), ImplicitLE).bytes;
        return plan([...command(), ...dataSet(im)], 'status', 'Implicit VR data set on the Explicit VR context');
      }
      const i = rng.int(0, l.spans.length - 1);
      const s = l.spans[i]!;
      const bytes = Buffer.from(l.bytes);
      let vr: Buffer;
      do vr = rng.bool(0.5) ? Buffer.from([rng.int(0x41, 0x5a), rng.int(0x41, 0x5a)]) : rng.bytes(2);
      while (ALL_VRS.has(vr.toString('latin1')));
      vr.copy(bytes, s.start + 4);
      return plan([...command(), ...dataSet(bytes)], 'status', `VR bytes ${vr.toString('hex')} on element ${i}`);
    }
    case 'truncated-last-fragment': {
      // The data set cut strictly inside one element (header or value), last fragment marked last.
      const l = good();
      const s = l.spans[rng.int(0, l.spans.length - 1)]!;
      const cut = rng.int(s.start + 1, s.end - 1);
      return plan([...command(), ...dataSet(l.bytes.subarray(0, cut))], 'status', `cut at ${cut} inside [${s.start}, ${s.end})`);
    }
    case 'encapsulated-no-delimiter': {
      const l = layOut(baseElements(rng, uid, { fragments: true }), enc);
      const s = l.spans[l.spans.length - 1]!; // pixel data is last
      const m = rng.int(0, 2);
      let bytes: Buffer;
      let what: string;
      if (m === 0) {
        bytes = l.bytes.subarray(0, l.bytes.length - 8);
        what = 'no sequence delimiter after the fragments';
      } else if (m === 1) {
        // A fragment of undefined length.
        bytes = Buffer.from(l.bytes);
        const firstFragment = s.start + (explicit ? 12 : 8) + 8; // after the empty offset table
        bytes.writeUInt32LE(0xffffffff, firstFragment + 4);
        what = 'a fragment of undefined length';
      } else {
        // A data element among the fragments, and no delimiter.
        bytes = Buffer.concat([l.bytes.subarray(0, l.bytes.length - 8), encodeDataset([{ tag: 0x00291012, vr: 'LO', value: 'AFTER ' }], enc)]);
        what = 'an element among the fragments';
      }
      return plan([...command(), ...dataSet(bytes)], 'status', what);
    }
    case 'deflate-bomb': {
      // On the Deflated Explicit VR Little Endian context (PS3.5 A.5): the data set after the
      // command is one raw deflate stream. Each variant must end in a failure status, never a
      // Success and never an inflate without bound (src/receive/dataset-check.ts caps the
      // inflated bytes at receive.maxObjectBytes: 0xA700 Out of Resources, DEFLATE_TOO_LARGE).
      const m = rng.int(0, 2);
      const head = layOut(baseElements(rng, uid), ExplicitLE).bytes;
      const dcmd = pdata(CTX.ctDeflated, true, encodeCommand(storeCommandValues({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, messageId })));
      const ddata = (b: Buffer) => pdata(CTX.ctDeflated, false, b, rng.pick([OUR_MAX_PDU - 12, rng.int(1, 4096)]));
      if (m === 0) {
        // Well formed, only too big: a private OB of zeros after the image, 1-16× the limit
        // (a few KB on the wire).
        const zeros = rng.int(FUZZ_MAX_OBJECT_BYTES + 1, 16 * FUZZ_MAX_OBJECT_BYTES) & ~1;
        const ob = Buffer.alloc(12);
        ob.writeUInt16LE(0x0009, 0);
        ob.writeUInt16LE(0x1010, 2);
        ob.write('OB', 4, 'latin1');
        ob.writeUInt32LE(zeros, 8);
        const bomb = deflateRawSync(Buffer.concat([head, ob, Buffer.alloc(zeros)]));
        return { pdus: [...dcmd, ...ddata(bomb)], want: 'status', what: `deflate bomb: ${bomb.length} bytes inflating to ${head.length + 12 + zeros} (Deflated Explicit VR LE)` };
      }
      if (m === 1) {
        // A deflate stream cut short: the inflater never sees its final block.
        const d = deflateRawSync(head);
        const cut = rng.int(1, d.length - 1);
        return { pdus: [...dcmd, ...ddata(d.subarray(0, cut))], want: 'status', what: `deflate stream cut at ${cut} of ${d.length} (Deflated Explicit VR LE)` };
      }
      // A deflate stream that is fine, holding a data set that is not: its last element cut in two.
      const d = deflateRawSync(head.subarray(0, head.length - rng.int(1, 3)));
      return { pdus: [...dcmd, ...ddata(d)], want: 'status', what: 'deflated data set cut inside its last element (Deflated Explicit VR LE)' };
    }
    case 'uid-mismatch': {
      const m = rng.int(0, 2);
      if (m === 0) {
        const ds = layOut(baseElements(rng, `${uid}.9`), enc).bytes;
        return plan([...command(), ...dataSet(ds)], 'status', 'data set SOP Instance UID differs from the command');
      }
      if (m === 1) {
        const ds = layOut(
          ctElements({ sopInstanceUid: uid, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', rows: 4, cols: 4 }),
          enc,
        ).bytes;
        return plan([...command(), ...dataSet(ds)], 'status', 'data set SOP Class UID differs from the command');
      }
      const dropped = rng.bool(0.5) ? 0x00080018 : 0x00080016;
      const els = baseElements(rng, uid).filter((e) => e.tag !== dropped);
      return plan([...command(), ...dataSet(layOut(els, enc).bytes)], 'status', 'data set without its SOP Class or Instance UID');
    }
  }
}

