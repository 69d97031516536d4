import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type DatasetIdentity, DatasetWalker, MAX_NESTING } from '../../src/dicom/dataset-walker.js';
import { transferSyntax, TS } from '../../src/dicom/transfer-syntaxes.js';
import { DicomParseError } from '../../src/errors.js';
import { createDatasetCheck } from '../../src/receive/dataset-check.js';
import { CT_IMAGE_STORAGE, ctElements, type El, type Encoding, encodeDataset, ExplicitBE, ExplicitLE, ImplicitLE } from '../helpers/dicom-builder.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ENCODINGS: [string, Encoding][] = [
  ['Explicit VR LE', ExplicitLE],
  ['Implicit VR LE', ImplicitLE],
  ['Explicit VR BE', ExplicitBE],
];

const IDENTITY_KEYS = ['sopClassUid', 'sopInstanceUid', 'studyInstanceUid', 'seriesInstanceUid', 'modality', 'numberOfFrames'] as const;
const CAPTURED: Record<number, keyof DatasetIdentity> = {
  0x00080016: 'sopClassUid',
  0x00080018: 'sopInstanceUid',
  0x0020000d: 'studyInstanceUid',
  0x0020000e: 'seriesInstanceUid',
  0x00080060: 'modality',
  0x00280008: 'numberOfFrames',
};

const INSTANCE = '1.2.826.0.1.3680043.8.498.12345678901234567'; // odd length → NUL padded
const STUDY = '1.2.826.0.1.3680043.2.1125.1';
const SERIES = '1.2.826.0.1.3680043.2.1125.2';

type Outcome =
  | { ok: true; identity: DatasetIdentity; bytes: number; elements: number }
  | { ok: false; code: string; phase: 'write' | 'end'; error: DicomParseError };

/** Feed the chunks to a fresh walker and say how it went. */
function run(enc: Encoding, chunks: Buffer[]): Outcome {
  const w = new DatasetWalker(enc);
  let phase: 'write' | 'end' = 'write';
  try {
    for (const c of chunks) w.write(c);
    phase = 'end';
    const identity = w.end();
    return { ok: true, identity, bytes: w.bytes, elements: w.elements };
  } catch (e) {
    if (!(e instanceof DicomParseError)) throw e;
    return { ok: false, code: e.code, phase, error: e };
  }
}

function walk(enc: Encoding, bytes: Buffer): { identity: DatasetIdentity; bytes: number; elements: number } {
  const o = run(enc, [bytes]);
  if (!o.ok) return expect.fail(`walker failed: ${o.code} ${o.error.message}`);
  return o;
}

function expectFailure(enc: Encoding, bytes: Buffer, code: 'DATASET_MALFORMED' | 'DATASET_TRUNCATED', phase?: 'write' | 'end'): DicomParseError {
  const o = run(enc, [bytes]);
  if (o.ok) return expect.fail(`expected ${code}, walker accepted ${bytes.length} bytes`);
  expect(o.code, o.error.message).toBe(code);
  if (phase) expect(o.phase, o.error.message).toBe(phase);
  expect(o.error).toBeInstanceOf(DicomParseError);
  expect(o.error.retryable).toBe(false);
  return o.error;
}

/** All two-chunk splits and the byte-by-byte feed give the same outcome as one chunk. */
function expectSplitInvariant(enc: Encoding, bytes: Buffer): void {
  const whole = run(enc, [bytes]);
  const summary = (o: Outcome) => (o.ok ? { ok: true, identity: o.identity, bytes: o.bytes, elements: o.elements } : { ok: false, code: o.code });
  const expected = summary(whole);
  for (let i = 0; i <= bytes.length; i++) {
    const o = run(enc, [bytes.subarray(0, i), bytes.subarray(i)]);
    const s = summary(o);
    if (JSON.stringify(s) !== JSON.stringify(expected)) expect(s, `split at ${i}`).toEqual(expected);
  }
  const bytewise: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) bytewise.push(bytes.subarray(i, i + 1));
  expect(summary(run(enc, bytewise))).toEqual(expected);
}

const strip = (s: string) => s.replace(/[\0 ]+$/, '').replace(/^ +/, '');

/** The identity an independent reading of the top-level elements gives. */
function expectedIdentity(els: El[]): DatasetIdentity {
  const out: DatasetIdentity = {};
  for (const e of els) {
    const key = CAPTURED[e.tag];
    if (!key || !('value' in e)) continue;
    const s = strip(typeof e.value === 'string' ? e.value : e.value.toString('latin1'));
    if (key === 'numberOfFrames') out.numberOfFrames = Number.parseInt(s, 10);
    else out[key] = s;
  }
  return out;
}

/**
 * Headers the walker will see: elements, items, delimiters, fragments. In Implicit VR a
 * defined-length sequence looks like any other value (there is no VR and the walker has no data
 * dictionary), so it is one opaque element; undefined-length ones are recognised by their length.
 */
function countHeaders(els: El[], enc: Encoding): number {
  let n = 0;
  for (const e of els) {
    n++;
    if ('items' in e) {
      if (!enc.explicitVr && !e.undefinedLength) continue;
      const undef = e.undefinedLength ? 1 : 0;
      for (const it of e.items) n += 1 + countHeaders(it, enc) + undef;
      n += undef;
    } else if ('fragments' in e) {
      n += 1 + e.fragments.length + 1; // basic offset table item, fragments, sequence delimiter
    }
  }
  return n;
}

/** The same elements with every sequence (at any depth) of defined or of undefined length. */
function sequencesLength(els: El[], undefinedLength: boolean): El[] {
  return els.map((e) => ('items' in e ? { ...e, undefinedLength, items: e.items.map((it) => sequencesLength(it, undefinedLength)) } : e));
}

const pad = (s: string, c = ' ') => (s.length % 2 ? s + c : s);
const ui = (tag: number, v: string): El => ({ tag, vr: 'UI', value: pad(v, '\0') });
const cs = (tag: number, v: string): El => ({ tag, vr: 'CS', value: pad(v) });
const identityEls = (instance = INSTANCE): El[] => [
  ui(0x00080016, CT_IMAGE_STORAGE),
  ui(0x00080018, instance),
  cs(0x00080060, 'MR'),
  ui(0x0020000d, STUDY),
  ui(0x0020000e, SERIES),
];

// Raw Explicit VR LE / delimiter headers for hand-made (malformed) streams.
function exHeader(tag: number, vr: string, length: number, le = true): Buffer {
  const long = ['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'].includes(vr);
  const b = Buffer.alloc(long ? 12 : 8);
  if (le) {
    b.writeUInt16LE(tag >>> 16, 0);
    b.writeUInt16LE(tag & 0xffff, 2);
  } else {
    b.writeUInt16BE(tag >>> 16, 0);
    b.writeUInt16BE(tag & 0xffff, 2);
  }
  b.write(vr, 4, 'latin1');
  if (long) {
    if (le) b.writeUInt32LE(length, 8);
    else b.writeUInt32BE(length, 8);
  } else if (le) b.writeUInt16LE(length, 6);
  else b.writeUInt16BE(length, 6);
  return b;
}
/** Implicit VR LE header (also the form of every item and delimiter in LE). */
function imHeader(tag: number, length: number, le = true): Buffer {
  const b = Buffer.alloc(8);
  if (le) {
    b.writeUInt16LE(tag >>> 16, 0);
    b.writeUInt16LE(tag & 0xffff, 2);
    b.writeUInt32LE(length, 4);
  } else {
    b.writeUInt16BE(tag >>> 16, 0);
    b.writeUInt16BE(tag & 0xffff, 2);
    b.writeUInt32BE(length, 4);
  }
  return b;
}
const UNDEF = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIM = 0xfffee00d;
const SEQ_DELIM = 0xfffee0dd;
const itemDelim = (le = true) => imHeader(ITEM_DELIM, 0, le);
const seqDelim = (le = true) => imHeader(SEQ_DELIM, 0, le);
const exValue = (tag: number, vr: string, value: Buffer | string) => {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return Buffer.concat([exHeader(tag, vr, v.length), v]);
};
/** A valid, short top-level prefix (Explicit VR LE) so malformed parts are not at byte 0. */
const prefix = () => exValue(0x00080018, 'UI', pad(INSTANCE, '\0'));

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

describe('DatasetWalker identity', () => {
  for (const [encName, enc] of ENCODINGS) for (const undef of [false, true]) {
    const name = `${encName}, ${undef ? 'undefined' : 'defined'}-length sequences`;
    describe(name, () => {
      const els = sequencesLength(ctElements({ sopInstanceUid: INSTANCE, frames: 3, rows: 4, cols: 4, littleEndian: enc.littleEndian }), undef);
      expect(els.some((e) => 'items' in e)).toBe(true);
      const bytes = encodeDataset(els, enc);

      it('extracts the six identity attributes and nothing else', () => {
        const r = walk(enc, bytes);
        expect(r.identity).toEqual({
          sopClassUid: CT_IMAGE_STORAGE,
          sopInstanceUid: INSTANCE,
          studyInstanceUid: STUDY,
          seriesInstanceUid: SERIES,
          modality: 'CT',
          numberOfFrames: 3,
        });
        expect(Object.keys(r.identity).sort()).toEqual([...IDENTITY_KEYS].sort());
      });

      it('counts every byte and every header (elements, items, delimiters)', () => {
        const r = walk(enc, bytes);
        expect(r.bytes).toBe(bytes.length);
        expect(r.elements).toBe(countHeaders(els, enc));
      });

      it('follows encapsulated pixel data fragments', () => {
        const fr = sequencesLength(ctElements({ sopInstanceUid: INSTANCE, fragments: [Buffer.alloc(10, 1), Buffer.alloc(0), Buffer.alloc(4000, 2)], littleEndian: enc.littleEndian }), undef);
        const b = encodeDataset([...fr, { tag: 0xfffcfffc, vr: 'OB', value: Buffer.alloc(6) }], enc);
        const r = walk(enc, b);
        expect(r.identity).toEqual(expectedIdentity(fr));
        expect(r.identity.numberOfFrames).toBeUndefined();
        expect(r.bytes).toBe(b.length);
        expect(r.elements).toBe(countHeaders(fr, enc) + 1);
      });

      it('gives identical results for every two-chunk split and byte by byte', () => {
        expectSplitInvariant(enc, bytes);
      });

      it('gives identical results for every split of an encapsulated object', () => {
        const fr = sequencesLength(ctElements({ sopInstanceUid: INSTANCE, fragments: [Buffer.alloc(6, 1), Buffer.alloc(8, 2)], littleEndian: enc.littleEndian }), undef);
        expectSplitInvariant(enc, encodeDataset(fr, enc));
      });
    });
  }

  it('captures identity attributes only at the top level, never from inside a sequence', () => {
    const els: El[] = [
      ...identityEls(),
      {
        tag: 0x00081140,
        vr: 'SQ',
        items: [[ui(0x00080016, '1.2.3.999'), ui(0x00080018, '1.2.3.998'), cs(0x00080060, 'OT'), ui(0x0020000d, '1.2.3.997')]],
      },
      {
        tag: 0x00081115,
        vr: 'SQ',
        undefinedLength: true,
        items: [[ui(0x0020000e, '1.2.3.996'), { tag: 0x00280008, vr: 'IS', value: '99' }]],
      },
    ];
    for (const [, enc] of ENCODINGS) {
      const r = walk(enc, encodeDataset(els, enc));
      expect(r.identity).toEqual({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: INSTANCE, modality: 'MR', studyInstanceUid: STUDY, seriesInstanceUid: SERIES });
    }
  });

  it('returns only what is present (a data set without identity gives {})', () => {
    const r = walk(ExplicitLE, encodeDataset([{ tag: 0x00100010, vr: 'PN', value: 'Doe^Jane' }], ExplicitLE));
    expect(r.identity).toEqual({});
  });

  it('strips NUL/space padding and leading spaces, parses IS Number of Frames', () => {
    const els: El[] = [
      { tag: 0x00080018, vr: 'UI', value: '1.2.3\0' },
      { tag: 0x00080060, vr: 'CS', value: ' CT ' },
      { tag: 0x00280008, vr: 'IS', value: ' 12 ' },
    ];
    expect(walk(ExplicitLE, encodeDataset(els, ExplicitLE)).identity).toEqual({ sopInstanceUid: '1.2.3', modality: 'CT', numberOfFrames: 12 });
  });

  it('leaves numberOfFrames out when the IS value is not a number', () => {
    const els: El[] = [{ tag: 0x00280008, vr: 'IS', value: 'ab' }, ui(0x00080018, '1.2.3')];
    expect(walk(ExplicitLE, encodeDataset(els, ExplicitLE)).identity).toEqual({ sopInstanceUid: '1.2.3' });
  });

  it('captures values up to 256 bytes but not longer ones (bounded memory)', () => {
    const v256 = `1.${'2'.repeat(254)}`;
    const v258 = `1.${'2'.repeat(256)}`;
    expect(walk(ExplicitLE, encodeDataset([ui(0x00080018, v256)], ExplicitLE)).identity.sopInstanceUid).toBe(v256);
    const r = walk(ExplicitLE, encodeDataset([ui(0x00080018, v258), cs(0x00080060, 'CT')], ExplicitLE));
    expect(r.identity).toEqual({ modality: 'CT' });
  });

  it('a later duplicate of a top-level identity element wins (last value)', () => {
    const els: El[] = [ui(0x00080018, '1.2.3'), ui(0x00080018, '1.2.4')];
    expect(walk(ImplicitLE, encodeDataset(els, ImplicitLE)).identity.sopInstanceUid).toBe('1.2.4');
  });
});

describe('the walker never captures patient data', () => {
  const NAME = 'Doe^Jane^Secret^Patient';
  const els: El[] = [
    ...identityEls(),
    { tag: 0x00100010, vr: 'PN', value: pad(NAME) },
    { tag: 0x00100020, vr: 'LO', value: pad('PID-7788-SECRET') },
    { tag: 0x00100030, vr: 'DA', value: '19700101' },
  ];

  /** Everything reachable from the walker object, as text. */
  function reachableText(root: unknown): string {
    const seen = new Set<unknown>();
    const parts: string[] = [];
    const visit = (x: unknown): void => {
      if (x === null || typeof x !== 'object' || seen.has(x)) {
        if (typeof x === 'string') parts.push(x);
        return;
      }
      seen.add(x);
      if (Buffer.isBuffer(x)) {
        parts.push(x.toString('latin1'));
        return;
      }
      if (x instanceof Map) {
        for (const [k, v] of x) {
          visit(k);
          visit(v);
        }
        return;
      }
      for (const v of Object.values(x as Record<string, unknown>)) visit(v);
    };
    visit(root);
    return parts.join('\n');
  }

  for (const [name, enc] of ENCODINGS) {
    it(`${name}: identity has only documented keys and no patient attribute`, () => {
      const w = new DatasetWalker(enc);
      const bytes = encodeDataset(els, enc);
      // Feed in small slices so that any accidental retention of a slice would be visible.
      for (let i = 0; i < bytes.length; i += 7) w.write(bytes.subarray(i, i + 7));
      const id = w.end();
      for (const k of Object.keys(id)) expect(IDENTITY_KEYS).toContain(k);
      const text = JSON.stringify(id);
      expect(text).not.toContain('Doe');
      expect(text).not.toContain('PID-7788');
      expect(text).not.toContain('1970');
      // Nor does the walker keep them anywhere after the fact.
      const inside = reachableText(w);
      expect(inside).not.toContain('Secret');
      expect(inside).not.toContain('PID-7788');
    });

    it(`${name}: with a patientRef function (audit.patientId), identity holds only what it made of the Patient ID, never the ID`, () => {
      const seen: string[] = [];
      const w = new DatasetWalker(enc, (id) => {
        seen.push(id);
        return 'pseudonym-of-the-id';
      });
      const bytes = encodeDataset(els, enc);
      for (let i = 0; i < bytes.length; i += 7) w.write(bytes.subarray(i, i + 7));
      const id = w.end();
      expect(seen).toEqual(['PID-7788-SECRET']);
      expect(id.patientRef).toBe('pseudonym-of-the-id');
      expect(JSON.stringify(id)).not.toContain('PID-7788');
      expect(reachableText(w)).not.toContain('PID-7788');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Sequences and items
// ---------------------------------------------------------------------------------------------

describe('sequences and items', () => {
  const nested: El[] = [
    ui(0x00080016, CT_IMAGE_STORAGE),
    // Defined-length sequence with two items, one holding an undefined-length nested sequence.
    {
      tag: 0x00081140,
      vr: 'SQ',
      items: [
        [ui(0x00081150, CT_IMAGE_STORAGE), ui(0x00081155, '1.2.3.4')],
        [
          {
            tag: 0x00089215,
            vr: 'SQ',
            undefinedLength: true,
            items: [[cs(0x00080100, '121311'), { tag: 0x00080104, vr: 'LO', value: pad('Localizer') }], []],
          },
        ],
      ],
    },
    // Undefined-length sequence holding a defined-length sequence three levels deep.
    {
      tag: 0x00400275,
      vr: 'SQ',
      undefinedLength: true,
      items: [
        [
          {
            tag: 0x00400008,
            vr: 'SQ',
            items: [[{ tag: 0x00080100, vr: 'SH', value: 'AB' }, { tag: 0x00400008, vr: 'SQ', items: [[], [cs(0x00080100, 'X')]] }]],
          },
        ],
      ],
    },
    // Empty sequences: defined length 0 and undefined length with only the delimiter.
    { tag: 0x00081110, vr: 'SQ', items: [] },
    { tag: 0x00081111, vr: 'SQ', undefinedLength: true, items: [] },
    // Sequences of empty items.
    { tag: 0x00081120, vr: 'SQ', items: [[], []] },
    { tag: 0x00081125, vr: 'SQ', undefinedLength: true, items: [[], [], []] },
    // Zero-length element.
    { tag: 0x00081030, vr: 'LO', value: '' },
    ui(0x00080018, INSTANCE),
    cs(0x00080060, 'CT'),
  ];

  for (const [name, enc] of ENCODINGS) {
    it(`${name}: walks defined/undefined, nested and empty sequences and resumes at the top level`, () => {
      const bytes = encodeDataset(nested, enc);
      const r = walk(enc, bytes);
      expect(r.identity).toEqual({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: INSTANCE, modality: 'CT' });
      expect(r.bytes).toBe(bytes.length);
      expect(r.elements).toBe(countHeaders(nested, enc));
    });

    it(`${name}: split invariance with nested sequences`, () => {
      expectSplitInvariant(enc, encodeDataset(nested, enc));
    });
  }

  it('accepts a defined-length item inside an undefined-length sequence and vice versa (hand-built)', () => {
    const inner = exValue(0x00081150, 'UI', pad('1.2.3', '\0'));
    // SQ(undefined) > item(defined) ; SQ(defined) > item(undefined)
    const undefSeqDefItem = Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF), imHeader(ITEM, inner.length), inner, seqDelim()]);
    const undefItemBody = Buffer.concat([imHeader(ITEM, UNDEF), inner, itemDelim()]);
    const defSeqUndefItem = Buffer.concat([exHeader(0x00081141, 'SQ', undefItemBody.length), undefItemBody]);
    const r = walk(ExplicitLE, Buffer.concat([undefSeqDefItem, defSeqUndefItem, prefix()]));
    expect(r.identity).toEqual({ sopInstanceUid: INSTANCE });
  });

  it('in Implicit VR, an undefined-length element is a sequence whatever its tag', () => {
    const inner = imHeader(0x00081150, 6);
    const bytes = Buffer.concat([
      imHeader(0x00091010, UNDEF), // private, undefined length → SQ
      imHeader(ITEM, UNDEF),
      inner,
      Buffer.from('1.2.3\0'),
      itemDelim(),
      seqDelim(),
      imHeader(0x00080018, 6),
      Buffer.from('1.2.4\0'),
    ]);
    expect(walk(ImplicitLE, bytes).identity).toEqual({ sopInstanceUid: '1.2.4' });
  });
});

// ---------------------------------------------------------------------------------------------
// UN with undefined length
// ---------------------------------------------------------------------------------------------

describe('UN of undefined length (content is Implicit VR Little Endian, PS3.5 §6.2.2)', () => {
  /** A private sequence sent as UN: items and elements in Implicit VR LE whatever the data set's syntax. */
  function unSequence(le: boolean): Buffer {
    const el = (tag: number, v: string) => Buffer.concat([imHeader(tag, Buffer.byteLength(v)), Buffer.from(v, 'latin1')]);
    const nestedSq = Buffer.concat([imHeader(0x00091012, UNDEF), imHeader(ITEM, 10), el(0x00091013, 'AB'), seqDelim()]);
    const item1Body = Buffer.concat([el(0x00091011, 'VALUE1'), el(0x00080018, '9.9.9\0'), nestedSq]);
    const item2Body = el(0x00091011, 'V2');
    return Buffer.concat([
      exHeader(0x00091010, 'UN', UNDEF, le),
      imHeader(ITEM, UNDEF),
      item1Body,
      itemDelim(),
      imHeader(ITEM, item2Body.length),
      item2Body,
      seqDelim(),
    ]);
  }

  it('Explicit VR LE: walks the implicit items and returns to explicit VR afterwards', () => {
    const bytes = Buffer.concat([exValue(0x00080016, 'UI', pad(CT_IMAGE_STORAGE, '\0')), unSequence(true), prefix(), exValue(0x00080060, 'CS', 'CT')]);
    const r = walk(ExplicitLE, bytes);
    // (0008,0018) inside the UN item is not the object's identity; the top-level one is.
    expect(r.identity).toEqual({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: INSTANCE, modality: 'CT' });
    expect(r.bytes).toBe(bytes.length);
    expectSplitInvariant(ExplicitLE, bytes);
  });

  it('Explicit VR BE: content stays little endian, the rest big endian', () => {
    const be = (tag: number, vr: string, v: string) => Buffer.concat([exHeader(tag, vr, v.length, false), Buffer.from(v, 'latin1')]);
    const bytes = Buffer.concat([unSequence(false), be(0x00080018, 'UI', '1.2.5\0'), be(0x00080060, 'CS', 'MR')]);
    const r = walk(ExplicitBE, bytes);
    expect(r.identity).toEqual({ sopInstanceUid: '1.2.5', modality: 'MR' });
    expectSplitInvariant(ExplicitBE, bytes);
  });

  it('a UN of defined length is an opaque value (not parsed)', () => {
    const garbage = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff, 1, 2]);
    const bytes = Buffer.concat([exHeader(0x00091010, 'UN', garbage.length), garbage, prefix()]);
    expect(walk(ExplicitLE, bytes).identity).toEqual({ sopInstanceUid: INSTANCE });
  });

  it('an unterminated UN sequence is truncated', () => {
    const full = unSequence(true);
    expectFailure(ExplicitLE, full.subarray(0, full.length - 8), 'DATASET_TRUNCATED', 'end');
  });
});

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

describe('truncation', () => {
  /**
   * A cut at a top-level element boundary leaves a valid, shorter data set: the walker must accept
   * it (completeness of the object is the DIMSE layer's business, not the walker's). Every other
   * cut leaves something open (a header, a value, a sequence, an item, fragments) and must fail
   * at end() with DATASET_TRUNCATED. A prefix of a valid stream never makes write() fail: the
   * walker has seen nothing impossible yet.
   */
  function checkEveryCut(enc: Encoding, els: El[]): void {
    const bytes = encodeDataset(els, enc);
    const boundaries = new Map<number, number>(); // offset → number of complete top-level elements
    let off = 0;
    els.forEach((e, i) => {
      off += encodeDataset([e], enc).length;
      boundaries.set(off, i + 1);
    });
    expect(off).toBe(bytes.length);
    let accepted = 0;
    for (let cut = 0; cut < bytes.length; cut++) {
      const o = run(enc, [bytes.subarray(0, cut)]);
      const k = boundaries.get(cut);
      if (k !== undefined) {
        if (!o.ok) return expect.fail(`cut ${cut} at a top-level boundary was refused: ${o.code} ${o.error.message}`);
        expect(o.identity, `cut ${cut}`).toEqual(expectedIdentity(els.slice(0, k)));
        expect(o.bytes).toBe(cut);
        accepted++;
      } else {
        if (o.ok) return expect.fail(`cut ${cut} of ${bytes.length} was silently accepted`);
        expect(['DATASET_TRUNCATED', 'DATASET_MALFORMED']).toContain(o.code);
        // Stricter: it is the end-of-stream check that notices, never write().
        if (o.code !== 'DATASET_TRUNCATED' || o.phase !== 'end') expect.fail(`cut ${cut}: ${o.phase} ${o.code} ${o.error.message}`);
      }
    }
    expect(accepted).toBe(els.length - 1);
  }

  for (const [name, enc] of ENCODINGS) {
    it(`${name}: native pixel data object, cut at every offset`, () => {
      const els = ctElements({ sopInstanceUid: INSTANCE, rows: 2, cols: 2, frames: 2, littleEndian: enc.littleEndian });
      checkEveryCut(enc, sequencesLength(els, false));
      checkEveryCut(enc, sequencesLength(els, true));
    });

    it(`${name}: encapsulated object with nested sequences, cut at every offset`, () => {
      const els: El[] = [
        ...identityEls(),
        { tag: 0x00081140, vr: 'SQ', items: [[ui(0x00081150, '1.2'), { tag: 0x00400008, vr: 'SQ', undefinedLength: true, items: [[], [cs(0x00080100, 'X')]] }]] },
        { tag: 0x00081141, vr: 'SQ', items: [] },
        { tag: 0x7fe00010, vr: 'OB', fragments: [Buffer.alloc(4, 9), Buffer.alloc(2, 8)] },
      ];
      checkEveryCut(enc, els);
    });
  }

  it('an empty stream is a truncated data set', () => {
    const err = expectFailure(ExplicitLE, Buffer.alloc(0), 'DATASET_TRUNCATED', 'end');
    expect(err.message).toMatch(/empty/);
  });

  it('reports where a data set ends inside an element', () => {
    const bytes = encodeDataset(identityEls(), ExplicitLE);
    // Inside the first value: 8-byte header + 26-byte UID, cut after 3 value bytes.
    const inValue = expectFailure(ExplicitLE, bytes.subarray(0, 11), 'DATASET_TRUNCATED', 'end');
    expect(inValue.details.offset).toBe(11);
    // Inside the second header (starts at 34), cut after 3 header bytes.
    const inHeader = expectFailure(ExplicitLE, bytes.subarray(0, 37), 'DATASET_TRUNCATED', 'end');
    expect(inHeader.details.offset).toBe(34);
    expect(inHeader.message).toContain('byte 37');
  });

  it('reports open sequence levels', () => {
    const bytes = Buffer.concat([prefix(), exHeader(0x00081140, 'SQ', UNDEF), imHeader(ITEM, UNDEF)]);
    const err = expectFailure(ExplicitLE, bytes, 'DATASET_TRUNCATED', 'end');
    expect(err.message).toMatch(/2 open item/);
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed
// ---------------------------------------------------------------------------------------------

describe('malformed data sets → DATASET_MALFORMED from write()', () => {
  const uiVal = exValue(0x00081155, 'UI', '1.2.3.4\0'); // 16 bytes

  const cases: [string, Buffer][] = [
    ['item at the top level (outside any sequence)', Buffer.concat([prefix(), imHeader(ITEM, 0)])],
    ['item directly inside an item', Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF), imHeader(ITEM, UNDEF), imHeader(ITEM, 0)])],
    ['element directly inside a sequence (item expected)', Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF), uiVal])],
    ['element directly inside fragments', Buffer.concat([exHeader(0x7fe00010, 'OB', UNDEF), imHeader(ITEM, 0), uiVal])],
    ['element value running past its defined-length item', Buffer.concat([exHeader(0x00081140, 'SQ', 8 + 12), imHeader(ITEM, 12), uiVal])],
    ['item running past its defined-length sequence', Buffer.concat([exHeader(0x00081140, 'SQ', 10), imHeader(ITEM, uiVal.length), uiVal])],
    [
      'element in an undefined-length item running past the enclosing defined-length sequence',
      Buffer.concat([exHeader(0x00081140, 'SQ', 20), imHeader(ITEM, UNDEF), uiVal, itemDelim()]),
    ],
    [
      'nested defined-length sequence longer than its defined-length item',
      Buffer.concat([exHeader(0x00081140, 'SQ', 8 + 12 + 8), imHeader(ITEM, 12 + 8), exHeader(0x00400008, 'SQ', 100), imHeader(ITEM, 0)]),
    ],
    ['pixel data fragment of undefined length', Buffer.concat([exHeader(0x7fe00010, 'OB', UNDEF), imHeader(ITEM, UNDEF)])],
    ['unknown VR bytes 0x5A5A', Buffer.concat([prefix(), exHeader(0x00081030, 'ZZ', 2), Buffer.from('AB')])],
    ['VR of two NUL bytes', Buffer.concat([prefix(), exHeader(0x00081030, '\0\0', 2), Buffer.from('AB')])],
    ['lower-case VR "ui"', Buffer.concat([exHeader(0x00080018, 'ui', 2), Buffer.from('1\0')])],
    ['undefined length on OB that is not Pixel Data', Buffer.concat([prefix(), exHeader(0x00291010, 'OB', UNDEF), imHeader(ITEM, 0), seqDelim()])],
    ['undefined length on UT', Buffer.concat([prefix(), exHeader(0x00081030, 'UT', UNDEF)])],
    ['undefined length on OW', Buffer.concat([exHeader(0x00660023, 'OW', UNDEF)])],
    ['item delimiter at the top level', Buffer.concat([prefix(), itemDelim()])],
    ['sequence delimiter at the top level', Buffer.concat([prefix(), seqDelim()])],
    ['sequence delimiter inside a defined-length sequence', Buffer.concat([exHeader(0x00081140, 'SQ', 8), seqDelim()])],
    ['item delimiter inside a defined-length item', Buffer.concat([exHeader(0x00081140, 'SQ', 16), imHeader(ITEM, 8), itemDelim()])],
    ['item delimiter directly inside a sequence', Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF), itemDelim()])],
    ['sequence delimiter where an item delimiter is due', Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF), imHeader(ITEM, UNDEF), seqDelim()])],
    ['item delimiter inside fragments', Buffer.concat([exHeader(0x7fe00010, 'OB', UNDEF), imHeader(ITEM, 0), itemDelim()])],
    ['unknown (FFFE,xxxx) delimitation tag', Buffer.concat([prefix(), imHeader(0xfffee0aa, 0)])],
  ];

  for (const [what, bytes] of cases) {
    it(what, () => {
      expectFailure(ExplicitLE, bytes, 'DATASET_MALFORMED', 'write');
    });
  }

  it('reports the tag and offset of the offending header', () => {
    const p = prefix();
    const err = expectFailure(ExplicitLE, Buffer.concat([p, exHeader(0x00081030, 'ZZ', 2), Buffer.from('AB')]), 'DATASET_MALFORMED', 'write');
    expect(err.details).toMatchObject({ tag: '(0008,1030)', offset: p.length });
    expect(err.message).toContain('unknown VR bytes 0x5A5A');
    const nul = expectFailure(ExplicitLE, Buffer.concat([p, exHeader(0x00081030, '\0\0', 2)]), 'DATASET_MALFORMED');
    expect(nul.message).toContain('unknown VR bytes 0x0000');
  });

  it('malformed in Implicit VR LE and Explicit VR BE too', () => {
    expectFailure(ImplicitLE, Buffer.concat([imHeader(0x00080018, 4), Buffer.from('1.2\0'), imHeader(ITEM, 0)]), 'DATASET_MALFORMED', 'write');
    // Implicit VR knows a sequence only by its undefined length: item of 10 bytes holding a 14-byte element.
    expectFailure(ImplicitLE, Buffer.concat([imHeader(0x00081140, UNDEF), imHeader(ITEM, 10), imHeader(0x00081150, 6), Buffer.from('1.2.3\0')]), 'DATASET_MALFORMED', 'write');
    expectFailure(ExplicitBE, Buffer.concat([exHeader(0x00081140, 'SQ', UNDEF, false), itemDelim(false)]), 'DATASET_MALFORMED', 'write');
    expectFailure(ExplicitBE, Buffer.concat([exHeader(0x00081030, 'UT', UNDEF, false)]), 'DATASET_MALFORMED', 'write');
  });

  it('fails the same way whatever the chunking', () => {
    for (const [, bytes] of cases.slice(0, 8)) expectSplitInvariant(ExplicitLE, bytes);
  });

  describe('a header that itself crosses the end of its defined-length parent', () => {
    // A defined-length sequence of 4 bytes cannot hold an 8-byte item header: whatever follows,
    // the structure overruns what the sequence declared.
    it('undefined-length item header in a 4-byte sequence', () => {
      const bytes = Buffer.concat([exHeader(0x00081140, 'SQ', 4), imHeader(ITEM, UNDEF), itemDelim(), prefix()]);
      const err = expectFailure(ExplicitLE, bytes, 'DATASET_MALFORMED', 'write');
      expect(err.details).toMatchObject({ tag: '(FFFE,E000)', offset: 12 });
    });

    it('undefined-length sequence header in a too-short defined-length item', () => {
      const bytes = Buffer.concat([exHeader(0x00081140, 'SQ', 8 + 4), imHeader(ITEM, 4), exHeader(0x00400008, 'SQ', UNDEF), seqDelim(), prefix()]);
      expectFailure(ExplicitLE, bytes, 'DATASET_MALFORMED', 'write');
    });

    it('item delimiter past the end of the defined-length sequence holding its item', () => {
      // SQ length 8 covers only the item header; the item delimiter lies beyond it.
      const bytes = Buffer.concat([exHeader(0x00081140, 'SQ', 8), imHeader(ITEM, UNDEF), itemDelim(), prefix()]);
      expectFailure(ExplicitLE, bytes, 'DATASET_MALFORMED', 'write');
    });

    it('still accepts a delimited item that ends exactly at its sequence end', () => {
      const body = Buffer.concat([imHeader(ITEM, UNDEF), itemDelim()]);
      const bytes = Buffer.concat([exHeader(0x00081140, 'SQ', body.length), body, prefix()]);
      expect(walk(ExplicitLE, bytes).identity).toEqual({ sopInstanceUid: INSTANCE });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// createDatasetCheck
// ---------------------------------------------------------------------------------------------

describe('createDatasetCheck', () => {
  const els = ctElements({ sopInstanceUid: INSTANCE, rows: 8, cols: 8, frames: 2 });
  const explicit = encodeDataset(els, ExplicitLE);
  const deflatedTs = transferSyntax(TS.DeflatedExplicitVRLittleEndian)!;

  async function check(tsUid: string, chunks: Buffer[]): Promise<DatasetIdentity> {
    const c = createDatasetCheck(transferSyntax(tsUid)!);
    for (const b of chunks) c.write(b);
    return c.end();
  }

  async function rejection(p: Promise<unknown>): Promise<DicomParseError> {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(DicomParseError);
      return e as DicomParseError;
    }
    return expect.fail('expected a rejection');
  }

  it('checks a native syntax and resolves with the identity', async () => {
    await expect(check(TS.ExplicitVRLittleEndian, [explicit])).resolves.toEqual(expectedIdentity(els));
    const implicit = encodeDataset(els, ImplicitLE);
    await expect(check(TS.ImplicitVRLittleEndian, [implicit.subarray(0, 5), implicit.subarray(5)])).resolves.toEqual(expectedIdentity(els));
  });

  it('defers a native-syntax structural error to end() and ignores later writes', async () => {
    const c = createDatasetCheck(transferSyntax(TS.ExplicitVRLittleEndian)!);
    expect(() => c.write(Buffer.concat([prefix(), imHeader(ITEM, 0)]))).not.toThrow();
    expect(() => c.write(explicit)).not.toThrow();
    expect((await rejection(c.end())).code).toBe('DATASET_MALFORMED');
  });

  it('rejects a truncated native data set', async () => {
    expect((await rejection(check(TS.ExplicitVRLittleEndian, [explicit.subarray(0, explicit.length - 3)]))).code).toBe('DATASET_TRUNCATED');
  });

  it('Deflated Explicit VR LE: inflates to check, resolves with the identity', async () => {
    expect(deflatedTs.deflated).toBe(true);
    const deflated = deflateRawSync(explicit);
    expect(deflated.length).toBeLessThan(explicit.length);
    await expect(check(TS.DeflatedExplicitVRLittleEndian, [deflated])).resolves.toEqual(expectedIdentity(els));
  });

  it('Deflated: the same result when the compressed stream arrives in small chunks', async () => {
    const deflated = deflateRawSync(explicit);
    const chunks: Buffer[] = [];
    for (let i = 0; i < deflated.length; i += 3) chunks.push(deflated.subarray(i, i + 3));
    await expect(check(TS.DeflatedExplicitVRLittleEndian, chunks)).resolves.toEqual(expectedIdentity(els));
  });

  it('Deflated: a bomb (200 MB of zeros in 200 KB) is refused once it inflates past the limit, and inflating stops', async () => {
    // A valid start, then a 200 MB OB value of zeros: the walker itself would accept all of it.
    const bomb = deflateRawSync(Buffer.concat([prefix(), exHeader(0x7fe00010, 'OB', 200_000_000), Buffer.alloc(200_000_000)]));
    expect(bomb.length).toBeLessThan(300_000);
    const c = createDatasetCheck(deflatedTs, { maxInflatedBytes: 4 * 1024 * 1024 });
    for (let i = 0; i < bomb.length; i += 16_384) c.write(bomb.subarray(i, i + 16_384));
    await expect(c.end()).rejects.toMatchObject({ code: 'DEFLATE_TOO_LARGE' });
    // Under the limit the same shape is an ordinary object.
    const small = Buffer.concat([explicit, exHeader(0x7fe10010, 'OB', 1000), Buffer.alloc(1000)]);
    const ok = createDatasetCheck(deflatedTs, { maxInflatedBytes: small.length });
    ok.write(deflateRawSync(small));
    await expect(ok.end()).resolves.toMatchObject({ sopInstanceUid: INSTANCE });
  });

  it('Deflated: garbage that is not a deflate stream rejects with DicomParseError', async () => {
    const garbage = Buffer.alloc(64, 0xff);
    const err = await rejection(check(TS.DeflatedExplicitVRLittleEndian, [garbage]));
    expect(err.code).toBe('DATASET_MALFORMED');
    expect(err.message).toMatch(/inflate/);
  });

  it('Deflated: a corrupted byte in the compressed stream rejects with DicomParseError', async () => {
    const deflated = Buffer.from(deflateRawSync(explicit));
    deflated[0] = 0xff; // invalid block type in the first block header
    const err = await rejection(check(TS.DeflatedExplicitVRLittleEndian, [deflated]));
    expect(['DATASET_MALFORMED', 'DATASET_TRUNCATED']).toContain(err.code);
  });

  it('Deflated: a compressed stream cut short rejects with DicomParseError', async () => {
    const deflated = deflateRawSync(explicit);
    const err = await rejection(check(TS.DeflatedExplicitVRLittleEndian, [deflated.subarray(0, Math.floor(deflated.length / 2))]));
    expect(['DATASET_MALFORMED', 'DATASET_TRUNCATED']).toContain(err.code);
  });

  it('Deflated: a valid deflate stream of a structurally broken data set rejects with the walker error', async () => {
    const broken = deflateRawSync(Buffer.concat([explicit, imHeader(ITEM, 0)]));
    expect((await rejection(check(TS.DeflatedExplicitVRLittleEndian, [broken]))).code).toBe('DATASET_MALFORMED');
    const truncated = deflateRawSync(explicit.subarray(0, explicit.length - 1));
    expect((await rejection(check(TS.DeflatedExplicitVRLittleEndian, [truncated]))).code).toBe('DATASET_TRUNCATED');
  });

  it('Deflated: an empty stream rejects', async () => {
    await rejection(check(TS.DeflatedExplicitVRLittleEndian, []));
  });
});

// ---------------------------------------------------------------------------------------------
// Nesting depth
// ---------------------------------------------------------------------------------------------

describe('nesting depth (a data set of nothing but nested sequences is refused, not walked)', () => {
  /** `pairs` undefined-length sequences, each with one undefined-length item, around `leaf`. */
  const nested = (pairs: number, leaf: Buffer) => {
    const open = Buffer.concat([exHeader(0x0040a730, 'SQ', UNDEF), imHeader(ITEM, UNDEF)]);
    const close = Buffer.concat([itemDelim(), seqDelim()]);
    return Buffer.concat([prefix(), ...Array<Buffer>(pairs).fill(open), leaf, ...Array<Buffer>(pairs).fill(close)]);
  };
  const leaf = exValue(0x0040a040, 'CS', 'TEXT');

  it(`accepts ${MAX_NESTING} levels (a sequence and its item are two) and refuses one more with DATASET_TOO_DEEP`, () => {
    const ok = run(ExplicitLE, [nested(MAX_NESTING / 2, leaf)]);
    expect(ok.ok).toBe(true);
    const deep = run(ExplicitLE, [nested(MAX_NESTING / 2 + 1, leaf)]);
    expect(deep).toMatchObject({ ok: false, code: 'DATASET_TOO_DEEP', phase: 'write' });
  });

  it('checks every element at the deepest level against its defined-length parent (the check does not walk the stack)', () => {
    // 20 000 elements at depth 250 inside a defined-length item near the top: all fit, and one
    // element that runs past that item is still caught from the bottom of the nesting.
    const many = Buffer.concat(Array<Buffer>(20_000).fill(leaf));
    const inner = nested(125, many).subarray(prefix().length);
    const item = Buffer.concat([imHeader(ITEM, inner.length), inner]);
    const outer = Buffer.concat([prefix(), exHeader(0x0040a730, 'SQ', item.length), item]);
    expect(run(ExplicitLE, [outer]).ok).toBe(true);
    const tooLong = Buffer.concat([imHeader(ITEM, inner.length - 1), inner]);
    const bad = Buffer.concat([prefix(), exHeader(0x0040a730, 'SQ', tooLong.length), tooLong]);
    expect(run(ExplicitLE, [bad])).toMatchObject({ ok: false, code: 'DATASET_MALFORMED' });
  });
});
