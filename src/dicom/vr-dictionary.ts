import { ELEMENTS, REPEATING_GROUPS } from './dictionary-table.js';
import type { VrOf } from './vr-convert.js';

interface Tables {
  /** Tag → the VR as the table spells it, for every single element of the table. */
  single: Map<number, string>;
  /** Element → the repeating-group ranges that define it (PS3.5 §7.6: 50xx, 60xx, 7Fxx). */
  repeating: Map<number, { first: number; last: number; raw: string }[]>;
}
let tables: Tables | undefined;

/**
 * The table in lookup form, built on first use (about 5000 entries). No cache of other tags: a data
 * set full of distinct private or unknown tags must not grow memory.
 */
function lookupTables(): Tables {
  if (tables) return tables;
  const single = new Map<number, string>();
  for (const [group, list] of Object.entries(ELEMENTS)) {
    const g = parseInt(group, 16) * 0x10000;
    for (const [element, raw] of entriesOf(list)) single.set(g + element, raw);
  }
  const repeating = new Map<number, { first: number; last: number; raw: string }[]>();
  for (const [range, list] of Object.entries(REPEATING_GROUPS)) {
    const [first, last] = range.split('-').map((h) => parseInt(h, 16)) as [number, number];
    for (const [element, raw] of entriesOf(list)) repeating.set(element, [...(repeating.get(element) ?? []), { first, last, raw }]);
  }
  tables = { single, repeating };
  return tables;
}

/** The table's 6-character entries: 4 hex digits of element, then the VR as dcmjs spells it. */
function* entriesOf(list: string): Generator<[number, string]> {
  for (let i = 0; i + 6 <= list.length; i += 6) yield [parseInt(list.slice(i, i + 4), 16), list.slice(i + 4, i + 6)];
}

/** dcmjs's spelling of a VR → the VR to write, or undefined (UN). */
function resolve(raw: string): string | undefined {
  if (raw === 'ox') return 'OW';
  if (raw === 'xs') return 'US';
  return /^[A-Z]{2}$/.test(raw) && raw !== 'NA' ? raw : undefined;
}

/**
 * The VR of a standard data element, for reading Implicit VR data. The data dictionary is
 * dictionary-table.ts, generated from dcmjs's copy of PS3.6 by scripts/gen-dictionary.mjs (the
 * gateway does not load dcmjs itself). Rules on top of the dictionary:
 * - group lengths (gggg,0000) are UL; private creators (odd group, 0010-00FF) are LO;
 * - other private elements and unknown tags: undefined (the caller writes UN);
 * - ambiguous entries: "OB or OW" (`ox`) is OW (Implicit VR pixel and overlay data are OW,
 *   PS3.5 §A.1), "US or SS" (`xs`) is US; the others dcmjs marks in lower case ("US or OW"
 *   `lt`, LUT Data; `up`, a UL file offset; `na`, item delimiters) are undefined, so UN: their
 *   values are copied untouched.
 *
 * @see PS3.6 Table 6-1, PS3.5 §6.2.2, §7.6 (repeating groups) and §7.8 (private elements)
 */
export const dictionaryVr: VrOf = (tag) => {
  const group = tag >>> 16;
  const element = tag & 0xffff;
  if (element === 0x0000) return 'UL';
  if (group % 2 === 1) return element >= 0x0010 && element <= 0x00ff ? 'LO' : undefined;
  const { single, repeating } = lookupTables();
  // A single entry wins over a repeating range even when it resolves to UN (as in dcmjs's lookup).
  const raw = single.get(tag >>> 0) ?? repeating.get(element)?.find((r) => group >= r.first && group <= r.last)?.raw;
  return raw === undefined ? undefined : resolve(raw);
};
