import dicomParser from 'dicom-parser';
import { describe, expect, it } from 'vitest';
import { buildPart10Header, readPart10Header } from '../../src/dicom/file-meta.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../src/dicom/uids.js';
import { CT_IMAGE_STORAGE, ctElements, encodeDataset, ExplicitLE, ImplicitLE, TS_UID } from '../helpers/dicom-builder.js';

const ODD_INSTANCE = '1.2.826.0.1.3680043.8.498.1'; // 27 chars
const EVEN_INSTANCE = '1.2.826.0.1.3680043.8.498.12'; // 28 chars

/** Explicit VR LE group 0002 elements, read independently of readPart10Header. */
function metaElements(buf: Buffer): Map<number, { vr: string; value: Buffer; offset: number }> {
  const out = new Map<number, { vr: string; value: Buffer; offset: number }>();
  let off = 132;
  while (off + 8 <= buf.length && buf.readUInt16LE(off) === 0x0002) {
    const tag = ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
    const vr = buf.toString('latin1', off + 4, off + 6);
    const long = vr === 'OB';
    const len = long ? buf.readUInt32LE(off + 8) : buf.readUInt16LE(off + 6);
    if (long) expect(buf.readUInt16LE(off + 6), 'reserved bytes of a long VR').toBe(0);
    const start = off + (long ? 12 : 8);
    out.set(tag, { vr, value: buf.subarray(start, start + len), offset: off });
    off = start + len;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('buildPart10Header', () => {
  const header = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: TS_UID.explicit, sourceAeTitle: 'MODALITY1' });

  it('starts with a 128-byte zero preamble and "DICM"', () => {
    expect(header.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(header.toString('latin1', 128, 132)).toBe('DICM');
  });

  it('writes (0002,0000) UL first, equal to the byte count of the rest of the group', () => {
    const els = metaElements(header);
    const gl = els.get(0x00020000)!;
    expect(gl.offset).toBe(132);
    expect(gl.vr).toBe('UL');
    expect(gl.value.length).toBe(4);
    expect(gl.value.readUInt32LE(0)).toBe(header.length - (132 + 12));
  });

  it('writes the elements of PS3.10 Table 7.1-1 in tag order with their VRs', () => {
    const els = metaElements(header);
    expect([...els.keys()]).toEqual([0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013, 0x00020016]);
    expect([...els.values()].map((e) => e.vr)).toEqual(['UL', 'OB', 'UI', 'UI', 'UI', 'UI', 'SH', 'AE']);
    expect([...els.get(0x00020001)!.value]).toEqual([0x00, 0x01]);
  });

  it('pads odd-length UIs with one NUL, text with one space, and keeps all values even', () => {
    const els = metaElements(header);
    for (const [, e] of els) expect(e.value.length % 2).toBe(0);
    expect(els.get(0x00020003)!.value.toString('latin1')).toBe(`${ODD_INSTANCE}\0`);
    expect(els.get(0x00020002)!.value.toString('latin1')).toBe(`${CT_IMAGE_STORAGE}\0`); // 25 chars
    expect(els.get(0x00020010)!.value.toString('latin1')).toBe(`${TS_UID.explicit}\0`); // 19 chars
    expect(els.get(0x00020016)!.value.toString('latin1')).toBe('MODALITY1 ');
    const version = els.get(0x00020013)!.value.toString('latin1');
    expect(version.trimEnd()).toBe(IMPLEMENTATION_VERSION_NAME);
    expect(els.get(0x00020012)!.value.toString('latin1').replace(/\0$/, '')).toBe(IMPLEMENTATION_CLASS_UID);
  });

  it('does not pad even-length UIs', () => {
    const h = buildPart10Header({ sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: EVEN_INSTANCE, transferSyntaxUid: TS_UID.implicit });
    const els = metaElements(h);
    expect(els.get(0x00020003)!.value.toString('latin1')).toBe(EVEN_INSTANCE);
    expect(els.get(0x00020010)!.value.toString('latin1')).toBe(`${TS_UID.implicit}\0`); // 17 chars
  });

  it('leaves out (0002,0016) when no source AE title is given', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: EVEN_INSTANCE, transferSyntaxUid: TS_UID.explicit });
    expect(metaElements(h).has(0x00020016)).toBe(false);
    expect(h.length).toBeLessThan(header.length);
  });
});

describe('readPart10Header', () => {
  it('round-trips what buildPart10Header wrote and points at the data set', () => {
    for (const ts of Object.values(TS_UID)) {
      for (const uid of [ODD_INSTANCE, EVEN_INSTANCE]) {
        const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, transferSyntaxUid: ts, sourceAeTitle: 'AE' });
        const dataset = encodeDataset(ctElements({ sopInstanceUid: uid, rows: 2, cols: 2 }), ts === TS_UID.implicit ? ImplicitLE : ExplicitLE);
        const r = readPart10Header(Buffer.concat([h, dataset]));
        expect(r).toEqual({ datasetOffset: h.length, transferSyntaxUid: ts, sopInstanceUid: uid, sopClassUid: CT_IMAGE_STORAGE });
      }
    }
  });

  it('stops at the end given by the group length even if more group-0002 elements follow', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: EVEN_INSTANCE, transferSyntaxUid: TS_UID.explicit });
    // A stray (0002,0010) after the declared group, as a malformed data set might start.
    const stray = Buffer.from([0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0x04, 0x00, 0x31, 0x2e, 0x32, 0x00]);
    const r = readPart10Header(Buffer.concat([h, stray]))!;
    expect(r.datasetOffset).toBe(h.length);
    expect(r.transferSyntaxUid).toBe(TS_UID.explicit);
  });

  it('works on a header alone (no data set yet)', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: TS_UID.rle });
    expect(readPart10Header(h)?.datasetOffset).toBe(h.length);
  });

  it('returns undefined for non-Part-10 input', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: TS_UID.explicit });
    expect(readPart10Header(Buffer.alloc(0))).toBeUndefined();
    expect(readPart10Header(h.subarray(0, 143))).toBeUndefined();
    const noMagic = Buffer.from(h);
    noMagic.write('DICN', 128, 'latin1');
    expect(readPart10Header(noMagic)).toBeUndefined();
  });

  it('returns undefined when a meta element runs past the end of the buffer', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: TS_UID.explicit });
    expect(readPart10Header(h.subarray(0, h.length - 3))).toBeUndefined();
  });
});

describe('cross-check with dicom-parser (independent implementation)', () => {
  it('reads the same File Meta values from our header', () => {
    const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: TS_UID.implicit, sourceAeTitle: 'CT_SCANNER_7' });
    const ds = dicomParser.readPart10Header(new Uint8Array(h));
    expect(ds.uint32('x00020000')).toBe(h.length - 144);
    expect(ds.string('x00020002')).toBe(CT_IMAGE_STORAGE);
    expect(ds.string('x00020003')).toBe(ODD_INSTANCE);
    expect(ds.string('x00020010')).toBe(TS_UID.implicit);
    expect(ds.string('x00020012')).toBe(IMPLEMENTATION_CLASS_UID);
    expect(ds.string('x00020013')).toBe(IMPLEMENTATION_VERSION_NAME);
    expect(ds.string('x00020016')).toBe('CT_SCANNER_7');
    const version = ds.elements.x00020001!;
    expect(version.vr).toBe('OB');
    expect([...h.subarray(version.dataOffset, version.dataOffset + version.length)]).toEqual([0, 1]);
    expect(ds.warnings).toEqual([]);
  });

  it('parses a whole file (header + Explicit and Implicit VR LE data sets) to the same values', () => {
    for (const [ts, enc] of [
      [TS_UID.explicit, ExplicitLE],
      [TS_UID.implicit, ImplicitLE],
    ] as const) {
      const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: ODD_INSTANCE, transferSyntaxUid: ts });
      const file = Buffer.concat([h, encodeDataset(ctElements({ sopInstanceUid: ODD_INSTANCE, rows: 2, cols: 2 }), enc)]);
      const ds = dicomParser.parseDicom(new Uint8Array(file));
      expect(ds.string('x00020010')).toBe(ts);
      expect(ds.string('x00020003')).toBe(ODD_INSTANCE);
      // The data set that follows the header is found where readPart10Header says it starts.
      const ours = readPart10Header(file)!;
      const firstDatasetElement = Object.values(ds.elements)
        .filter((e) => !e.tag.startsWith('x0002'))
        .sort((a, b) => a.dataOffset - b.dataOffset)[0]!;
      const at = ours.datasetOffset;
      const tagThere = `x${file.readUInt16LE(at).toString(16).padStart(4, '0')}${file.readUInt16LE(at + 2).toString(16).padStart(4, '0')}`;
      expect(tagThere).toBe(firstDatasetElement.tag);
      expect(firstDatasetElement.dataOffset - at).toBe(8); // (0008,0005) CS: 8-byte header in both syntaxes
      expect(ds.string('x00080018')).toBe(ODD_INSTANCE);
      expect(ds.string('x00080016')).toBe(CT_IMAGE_STORAGE);
    }
  });
});

describe('preamble (CVE-2019-11687: DICOM/PE polyglots)', () => {
  it('every built header starts with exactly 128 zero bytes followed by "DICM", whatever the input', () => {
    for (const ts of Object.values(TS_UID)) {
      for (const [uid, ae] of [
        [ODD_INSTANCE, 'MZ'],
        [EVEN_INSTANCE, undefined],
      ] as const) {
        const h = buildPart10Header({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, transferSyntaxUid: ts, sourceAeTitle: ae });
        expect(h.subarray(0, 128).equals(Buffer.alloc(128)), `preamble for ${ts}`).toBe(true);
        expect(h.subarray(128, 132).toString('latin1')).toBe('DICM');
        // No "MZ" (PE), "\x7fELF" or "#!" at the start: nothing an OS would execute.
        expect(h.subarray(0, 2).toString('latin1')).not.toBe('MZ');
      }
    }
  });
});
