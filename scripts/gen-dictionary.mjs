#!/usr/bin/env node
// Writes src/dicom/dictionary-table.ts: the VR of every standard data element, taken from dcmjs's
// copy of the PS3.6 data dictionary. The gateway needs only tag → VR (to read Implicit VR data,
// src/dicom/vr-dictionary.ts), so a generated table of about 36 KB replaces the 11 MB dcmjs
// package (and its own dependencies) in the production install; dcmjs stays a devDependency, and
// test/dicom/dictionary.test.ts regenerates the table in memory and fails when the committed one
// differs from what the installed dcmjs says.
//
// usage: node scripts/gen-dictionary.mjs            write src/dicom/dictionary-table.ts
//        node scripts/gen-dictionary.mjs --check    exit 1 when the committed table is out of date
//
// What the table holds is what dcmjs's own lookup (DicomMetaDictionary.dictionary['(GGGG,EEEE)'],
// which the gateway called before) answers, nothing more:
// - every element of dcmjs's keyword map and of its source dictionary, looked up by tag;
// - repeating groups (50xx curves, 60xx overlays, 7Fxx variable pixel data, PS3.5 §7.6): for
//   every element that answers in two neighbouring even groups, all 32768 even groups are asked,
//   and runs of consecutive groups with the same entry are written as one range;
// - the VR as dcmjs spells it: two upper-case letters, or `ox` (OB or OW), `xs` (US or SS),
//   `lt` (US or OW), `up` (UL, a file offset), `na` (none). vr-dictionary.ts decides what the
//   lower-case ones mean; entries without a two-letter VR are left out (it ignores them);
// - even groups only: vr-dictionary.ts answers odd (private) groups and group lengths
//   (gggg,0000) by rule and never asks the dictionary about them.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TABLE_FILE = path.join(ROOT, 'src/dicom/dictionary-table.ts');

const hex4 = (n) => n.toString(16).toUpperCase().padStart(4, '0');
const key = (group, element) => `(${hex4(group)},${hex4(element)})`;
const TWO_LETTERS = /^[A-Za-z]{2}$/;

/** The installed dcmjs's version (its package.json is not among the paths it exports). */
function dcmjsVersion() {
  let dir = path.dirname(createRequire(import.meta.url).resolve('dcmjs'));
  while (path.basename(dir) !== 'dcmjs' && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

/** The source text of src/dicom/dictionary-table.ts, from the installed dcmjs. */
export async function generateDictionaryTable() {
  const { default: dcmjs } = await import('dcmjs');
  const { dictionary: source } = await import('dcmjs/dictionary');
  const version = dcmjsVersion();
  const { dictionary: lookup, nameMap } = dcmjs.data.DicomMetaDictionary;
  const entry = (group, element) => {
    const e = lookup[key(group, element)];
    return e && TWO_LETTERS.test(e.vr ?? '') ? `${e.name}\t${e.vr}` : undefined;
  };

  // Candidate tags: the keyword map (one tag per keyword) and every plain (GGGG,EEEE) key of the
  // source dictionary (which catches tags that share a keyword with another one).
  const candidates = new Set();
  for (const e of Object.values(nameMap)) candidates.add(e.tag);
  for (const k of Object.keys(source)) candidates.add(k);
  const tags = [];
  for (const k of candidates) {
    const m = /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/.exec(k);
    if (!m) continue;
    const group = parseInt(m[1], 16);
    const element = parseInt(m[2], 16);
    if (group % 2 === 0 && element !== 0) tags.push([group, element]);
  }

  // Elements of repeating groups: asked about in every even group.
  const repeating = new Set();
  for (const [group, element] of tags) {
    const e = entry(group, element);
    if (e && ((group >= 2 && entry(group - 2, element) === e) || (group <= 0xfffc && entry(group + 2, element) === e))) repeating.add(element);
  }
  const ranges = [];
  const inRange = new Set();
  for (const element of [...repeating].sort((a, b) => a - b)) {
    let run;
    const close = () => {
      if (run && run.last > run.first) {
        ranges.push(run);
        for (let g = run.first; g <= run.last; g += 2) inRange.add(g * 0x10000 + element);
      }
      run = undefined;
    };
    for (let group = 0; group <= 0xfffe; group += 2) {
      const e = entry(group, element);
      if (run && e === run.entry && group === run.last + 2) run.last = group;
      else {
        close();
        if (e) run = { first: group, last: group, element, entry: e };
      }
    }
    close();
  }

  // Single elements, by group.
  const byGroup = new Map();
  for (const [group, element] of tags.sort((a, b) => a[0] - b[0] || a[1] - b[1])) {
    if (inRange.has(group * 0x10000 + element)) continue;
    const e = entry(group, element);
    if (!e) continue;
    const list = byGroup.get(group) ?? [];
    if (list.at(-1)?.[0] !== element) list.push([element, e.split('\t')[1]]);
    byGroup.set(group, list);
  }

  const count = [...byGroup.values()].reduce((n, l) => n + l.length, 0);
  const out = [
    `// Generated by scripts/gen-dictionary.mjs from dcmjs ${version}: do not edit. Regenerate with`,
    '// `node scripts/gen-dictionary.mjs` after upgrading dcmjs; test/dicom/dictionary.test.ts fails',
    '// while this file differs from what the installed dcmjs says.',
    '',
    '/** The dictionary this table was generated from. */',
    `export const DICTIONARY_SOURCE = 'dcmjs ${version}';`,
    '',
    '/**',
    ` * The VR of ${count} standard data elements (PS3.6 Tables 6-1, 7-1 and 8-1, as dcmjs has them),`,
    ' * by group: the group in 4 hex digits → its elements, each 4 hex digits followed by the VR as',
    ' * dcmjs spells it (two upper-case letters, or `ox` = OB or OW, `xs` = US or SS, `lt` = US or OW,',
    ' * `up` = UL, `na` = none). Even groups only, group lengths (gggg,0000) left out.',
    ' */',
    'export const ELEMENTS: Readonly<Record<string, string>> = {',
  ];
  // Repeating groups in the same text form, by range: 'FIRST-LAST' → elements. Strings rather than
  // numeric literals, like ELEMENTS: a hex literal such as 0x0110 would read as a DIMSE status to
  // test/dicom/status.test.ts, and the table is data, not code.
  const byRange = new Map();
  for (const r of ranges) {
    const k = `${hex4(r.first)}-${hex4(r.last)}`;
    byRange.set(k, (byRange.get(k) ?? '') + `${hex4(r.element)}${r.entry.split('\t')[1]}`);
  }
  const entries = (map) => {
    const lines = [];
    for (const [k, text] of map) {
      // 16 entries (96 characters) per line keeps the file readable and its diffs small.
      const parts = [];
      for (let i = 0; i < text.length; i += 96) parts.push(`'${text.slice(i, i + 96)}'`);
      lines.push(`  '${k}':${parts.length === 1 ? ' ' : '\n    '}${parts.join(' +\n    ')},`);
    }
    return lines;
  };
  out.push(
    ...entries(new Map([...byGroup].map(([group, list]) => [hex4(group), list.map(([element, vr]) => `${hex4(element)}${vr}`).join('')]))),
    '};',
    '',
    '/**',
    ' * Repeating groups (PS3.5 §7.6): \'FIRST-LAST\' (4 hex digits each) → elements in the form of',
    ' * ELEMENTS; each has that VR in every even group from FIRST to LAST, both included, unless',
    ' * ELEMENTS lists that group and element.',
    ' */',
    'export const REPEATING_GROUPS: Readonly<Record<string, string>> = {',
    ...entries(byRange),
    '};',
    '',
  );
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = await generateDictionaryTable();
  if (process.argv.includes('--check')) {
    const same = readFileSync(TABLE_FILE, 'utf8') === text;
    console.log(same ? `${path.relative(ROOT, TABLE_FILE)}: up to date` : `${path.relative(ROOT, TABLE_FILE)}: out of date: run node scripts/gen-dictionary.mjs`);
    process.exit(same ? 0 : 1);
  }
  writeFileSync(TABLE_FILE, text);
  console.log(`${path.relative(ROOT, TABLE_FILE)} written (${text.length} bytes)`);
}
