import { describe, expect, it } from 'vitest';
import { topLevelElements } from '../../src/dicom/elements.js';
import { explicitToImplicit, implicitToExplicit } from '../../src/dicom/vr-convert.js';
import { dictionaryVr } from '../../src/dicom/vr-dictionary.js';
import { ctElements, encodeDataset, ExplicitLE, ImplicitLE, testUid } from '../helpers/dicom-builder.js';

describe('Implicit ↔ Explicit VR Little Endian', () => {
  for (const undefinedLengthSequence of [false, true]) {
    it(`implicit → explicit → implicit gives back the same bytes (${undefinedLengthSequence ? 'undefined' : 'defined'}-length sequences)`, () => {
      const implicit = encodeDataset(ctElements({ sopInstanceUid: testUid(), undefinedLengthSequence }), ImplicitLE);
      const explicit = implicitToExplicit(implicit, dictionaryVr);
      expect(explicitToImplicit(explicit).equals(implicit)).toBe(true);
      // Standard elements get their dictionary VR, private ones UN; values are untouched.
      const els = topLevelElements(explicit);
      const vr = (tag: number) => els.find((e) => e.tag === tag)?.vr;
      expect(vr(0x00080016)).toBe('UI');
      expect(vr(0x00081140)).toBe('SQ');
      expect(vr(0x00180050)).toBe('DS');
      expect(vr(0x00280010)).toBe('US');
      expect(vr(0x00290010)).toBe('LO'); // private creator
      expect(vr(0x00291010)).toBe('UN'); // private element: unknown VR
      expect(vr(0x7fe00010)).toBe('OW');
      const value = (ds: Buffer, tag: number) => {
        const e = topLevelElements(ds).find((x) => x.tag === tag)!;
        return ds.subarray(e.valueOffset, e.valueOffset + (e.length ?? 0));
      };
      const reference = encodeDataset(ctElements({ sopInstanceUid: 'x', undefinedLengthSequence }), ExplicitLE);
      expect(value(explicit, 0x00180050).equals(value(reference, 0x00180050))).toBe(true);
    });
  }

  it('explicit → implicit → explicit keeps every standard VR (sequences re-measured)', () => {
    const explicit = encodeDataset(ctElements({ sopInstanceUid: testUid() }).filter((e) => e.tag >>> 16 !== 0x0029), ExplicitLE);
    const back = implicitToExplicit(explicitToImplicit(explicit), dictionaryVr);
    expect(back.equals(explicit)).toBe(true);
  });

  it('a malformed implicit data set is a DicomParseError, not a crash', () => {
    const implicit = encodeDataset(ctElements({ sopInstanceUid: testUid(), undefinedLengthSequence: true }), ImplicitLE);
    expect(() => implicitToExplicit(implicit.subarray(0, 200), dictionaryVr)).toThrow(/past the end|delimiter/);
  });
});
