import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, REPEATING_GROUPS } from '../../src/dicom/dictionary-table.js';
import { dictionaryVr } from '../../src/dicom/vr-dictionary.js';

// The gateway reads the data dictionary from a generated table (src/dicom/dictionary-table.ts), not
// from dcmjs, which is a devDependency kept as the table's source. These tests fail when the
// installed dcmjs says something else than the committed table, so a dcmjs upgrade cannot change
// (or fail to change) the gateway's VRs silently.

const ROOT = path.resolve(import.meta.dirname, '../..');
const TABLE = path.join(ROOT, 'src/dicom/dictionary-table.ts');
const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** dcmjs's own lookup, the one the gateway used before the table: '(GGGG,EEEE)' → entry. */
const dcmjsLookup = (createRequire(import.meta.url)('dcmjs') as { data: { DicomMetaDictionary: { dictionary: Record<string, { vr?: string } | undefined> } } }).data
  .DicomMetaDictionary.dictionary;

/**
 * The VR rule the gateway applied on top of dcmjs's lookup before the table existed (PS3.5 §6.2.2,
 * §7.8, §A.1), kept here as the reference the table must reproduce.
 */
function vrFromDcmjs(tag: number): string | undefined {
  const group = tag >>> 16;
  const element = tag & 0xffff;
  if (element === 0) return 'UL';
  if (group % 2 === 1) return element >= 0x10 && element <= 0xff ? 'LO' : undefined;
  const raw = dcmjsLookup[`(${hex4(group)},${hex4(element)})`]?.vr;
  if (raw === 'ox') return 'OW';
  if (raw === 'xs') return 'US';
  return raw && /^[A-Z]{2}$/.test(raw) && raw !== 'NA' ? raw : undefined;
}

describe('generated data dictionary (src/dicom/dictionary-table.ts)', () => {
  it('is what scripts/gen-dictionary.mjs generates from the installed dcmjs, byte for byte', async () => {
    // A computed specifier: the script is plain JavaScript without type declarations.
    const script = pathToFileURL(path.join(ROOT, 'scripts/gen-dictionary.mjs')).href;
    const { generateDictionaryTable } = (await import(script)) as { generateDictionaryTable: () => Promise<string> };
    const regenerated = await generateDictionaryTable();
    const committed = readFileSync(TABLE, 'utf8');
    // Not toBe on 40 KB of text: name the first line that differs, which says what to regenerate.
    const a = committed.split('\n');
    const b = regenerated.split('\n');
    const first = a.findIndex((line, i) => line !== b[i]);
    expect(first === -1 && a.length === b.length ? 'identical' : `line ${first + 1}: committed ${JSON.stringify(a[first])}, dcmjs ${JSON.stringify(b[first])} (run node scripts/gen-dictionary.mjs)`).toBe('identical');
  });

  it('gives the VR dcmjs gives for every element of every group the table or a repeating group names', () => {
    // Every element number that occurs anywhere in the table, with its neighbours, asked in every
    // group the table names and in every group of every repeating range (odd ones too: the rules
    // for private groups must still win there).
    const elements = new Set<number>([0x0000, 0xffff]);
    const groups = new Set<number>();
    for (const [group, list] of Object.entries(ELEMENTS)) {
      groups.add(parseInt(group, 16));
      for (let i = 0; i + 6 <= list.length; i += 6) {
        const e = parseInt(list.slice(i, i + 4), 16);
        for (const n of [e - 1, e, e + 1]) if (n >= 0 && n <= 0xffff) elements.add(n);
      }
    }
    for (const [range, list] of Object.entries(REPEATING_GROUPS)) {
      const [first, last] = range.split('-').map((h) => parseInt(h, 16)) as [number, number];
      for (let g = Math.max(0, first - 2); g <= Math.min(0xffff, last + 2); g++) groups.add(g);
      for (let i = 0; i + 6 <= list.length; i += 6) {
        const e = parseInt(list.slice(i, i + 4), 16);
        for (const n of [e - 1, e, e + 1]) if (n >= 0 && n <= 0xffff) elements.add(n);
      }
    }
    let known = 0;
    const differences: string[] = [];
    for (const group of groups) {
      for (const element of elements) {
        const tag = group * 0x10000 + element;
        const expected = vrFromDcmjs(tag);
        if (expected !== undefined) known++;
        const actual = dictionaryVr(tag);
        if (actual !== expected && differences.length < 10) differences.push(`(${hex4(group)},${hex4(element)}): table ${actual}, dcmjs ${expected}`);
      }
    }
    expect(differences).toEqual([]);
    // The comparison covered the dictionary, not an empty table against an empty lookup.
    expect(known).toBeGreaterThan(Object.values(ELEMENTS).reduce((n, list) => n + list.length / 6, 0));
  });

  it('resolves the ambiguous VRs the way Implicit VR pixel, overlay and LUT data need (PS3.5 §A.1)', () => {
    // Pixel Data "OB or OW", Overlay Data in a repeating group, Smallest Image Pixel Value "US or
    // SS", LUT Data "US or OW", a private creator, a private element, a group length.
    const cases: [number, string | undefined][] = [
      [0x7fe00010, 'OW'],
      [0x60023000, 'OW'],
      [0x00280106, 'US'],
      [0x00283006, undefined],
      [0x00090010, 'LO'],
      [0x00091001, undefined],
      [0x00080000, 'UL'],
    ];
    for (const [tag, vr] of cases) {
      expect({ tag: hex4(tag >>> 16) + hex4(tag & 0xffff), vr: dictionaryVr(tag) }).toEqual({ tag: hex4(tag >>> 16) + hex4(tag & 0xffff), vr });
      // And dcmjs agrees, so these cases are not figures of this test's own making.
      expect(vrFromDcmjs(tag)).toBe(vr);
    }
  });
});
