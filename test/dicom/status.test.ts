import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { category, describe as describeStatus, hex4, Status, type StatusCategory } from '../../src/dicom/status.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SRC = path.join(ROOT, 'src');

/** The category PS3.7 Annex C assigns to a code by its range alone (independent of the table). */
function rangeCategory(code: number): StatusCategory {
  if (code === 0x0000) return 'success';
  if (code === 0x0001 || code === 0x0107 || code === 0x0116) return 'warning';
  if (code >= 0xb000 && code <= 0xbfff) return 'warning';
  if (code === 0xfe00) return 'cancel';
  if (code === 0xff00 || code === 0xff01) return 'pending';
  return 'failure';
}

describe('category() over the PS3.7 Annex C ranges', () => {
  it('0x0000 is success', () => {
    expect(category(0x0000)).toBe('success');
  });

  it('0x0001, 0x0107 and 0x0116 are warnings', () => {
    expect(category(0x0001)).toBe('warning');
    expect(category(0x0107)).toBe('warning');
    expect(category(0x0116)).toBe('warning');
  });

  it('the whole 0xB000-0xBFFF range is warning, table entry or not', () => {
    for (let code = 0xb000; code <= 0xbfff; code++) expect(category(code), hex4(code)).toBe('warning');
    // The neighbours of the range are not warnings.
    expect(category(0xafff)).toBe('failure');
    expect(category(0xc000)).toBe('failure');
  });

  it('0xA700, 0xA900 and 0xA7xx/0xA9xx sub-codes are failures', () => {
    expect(category(0xa700)).toBe('failure');
    expect(category(0xa7ff)).toBe('failure');
    expect(category(0xa900)).toBe('failure');
    expect(category(0xa9ff)).toBe('failure');
  });

  it('the whole 0xC000-0xCFFF range is failure', () => {
    for (let code = 0xc000; code <= 0xcfff; code++) expect(category(code), hex4(code)).toBe('failure');
  });

  it('the general PS3.7 C.4 failures are failures', () => {
    for (const code of [0x0110, 0x0111, 0x0118, 0x0119, 0x0120, 0x0122, 0x0124, 0x0210, 0x0211, 0x0212, 0x0213]) {
      expect(category(code), hex4(code)).toBe('failure');
    }
  });

  it('0xFE00 is cancel; 0xFF00 and 0xFF01 are pending', () => {
    expect(category(0xfe00)).toBe('cancel');
    expect(category(0xff00)).toBe('pending');
    expect(category(0xff01)).toBe('pending');
    // Only those exact codes: neighbours fall back to failure.
    expect(category(0xfe01)).toBe('failure');
    expect(category(0xff02)).toBe('failure');
    expect(category(0xfeff)).toBe('failure');
  });

  it('agrees with the range rule for every 16-bit code', () => {
    for (let code = 0; code <= 0xffff; code++) {
      if (category(code) !== rangeCategory(code)) expect.fail(`0x${hex4(code)}: ${category(code)} != ${rangeCategory(code)}`);
    }
  });
});

describe('the Status table', () => {
  const entries = Object.entries(Status);

  it('has the entries the receiver relies on with their PS3.4/PS3.7 codes', () => {
    expect(Status.Success.code).toBe(0x0000);
    expect(Status.OutOfResources.code).toBe(0xa700);
    expect(Status.DataSetDoesNotMatchSopClass.code).toBe(0xa900);
    expect(Status.CannotUnderstand.code).toBe(0xc000);
    expect(Status.ProcessingFailure.code).toBe(0x0110);
    expect(Status.SopClassNotSupported.code).toBe(0x0122);
    expect(Status.NotAuthorized.code).toBe(0x0124);
    expect(Status.UnrecognizedOperation.code).toBe(0x0211);
    expect(Status.ResourceLimitation.code).toBe(0x0213);
    expect(Status.WarningCoercionOfDataElements.code).toBe(0xb000);
    expect(Status.Cancel.code).toBe(0xfe00);
    expect(Status.Pending.code).toBe(0xff00);
    expect(Status.PendingWithWarnings.code).toBe(0xff01);
  });

  it("every entry's category is the category of its code's range", () => {
    for (const [key, s] of entries) {
      expect(s.category, `${key} (0x${hex4(s.code)})`).toBe(rangeCategory(s.code));
      expect(category(s.code), key).toBe(s.category);
    }
  });

  it('codes are unique 16-bit values and names are unique', () => {
    const codes = entries.map(([, s]) => s.code);
    expect(new Set(codes).size).toBe(codes.length);
    const names = entries.map(([, s]) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const c of codes) {
      expect(Number.isInteger(c)).toBe(true);
      expect(c).toBeGreaterThanOrEqual(0);
      expect(c).toBeLessThanOrEqual(0xffff);
    }
  });

  it('gateway-specific codes sit inside the 0xC000-0xCFFF "Cannot understand" range', () => {
    const gateway = entries.filter(([, s]) => s.source === 'gateway');
    expect(gateway.length).toBeGreaterThan(0);
    for (const [key, s] of gateway) {
      expect(s.code, key).toBeGreaterThan(0xc000);
      expect(s.code, key).toBeLessThanOrEqual(0xcfff);
      expect(s.category, key).toBe('failure');
    }
  });

  it('the name prefix matches the category', () => {
    for (const [key, s] of entries) {
      if (s.category === 'warning') expect(s.name, key).toMatch(/^Warning/);
      if (s.category === 'failure') expect(s.name, key).toMatch(/^(Failure|Refused|Error):/);
      if (s.category === 'pending') expect(s.name, key).toMatch(/^Pending/);
    }
  });
});

describe('describe()', () => {
  it('returns the table entry for a known code', () => {
    expect(describeStatus(0xa700)).toBe(Status.OutOfResources);
    expect(describeStatus(0xc002)).toBe(Status.CannotUnderstandMalformed);
    expect(describeStatus(0x0000)).toBe(Status.Success);
  });

  it('synthesises a description for unknown codes, with the range category', () => {
    expect(describeStatus(0xb123)).toEqual({ code: 0xb123, name: 'Status 0xB123', category: 'warning', source: 'PS3.7' });
    expect(describeStatus(0xc0ff)).toEqual({ code: 0xc0ff, name: 'Status 0xC0FF', category: 'failure', source: 'PS3.7' });
    expect(describeStatus(0x0107)).toEqual({ code: 0x0107, name: 'Status 0x0107', category: 'warning', source: 'PS3.7' });
    expect(describeStatus(0xa701)).toMatchObject({ name: 'Status 0xA701', category: 'failure' });
    expect(describeStatus(0x0001)).toMatchObject({ name: 'Status 0x0001', category: 'warning' });
  });

  it('hex4 pads to four upper-case digits', () => {
    expect(hex4(0)).toBe('0000');
    expect(hex4(0x1a)).toBe('001A');
    expect(hex4(0xc001)).toBe('C001');
  });
});

// ---------------------------------------------------------------------------------------------
// "Nothing else in the code base may write a status as a bare hex literal: import it from here."
// ---------------------------------------------------------------------------------------------

const STATUS_LITERAL = [/^0x(A7|A9|C0|B0)[0-9A-F]{2}$/i, /^0x0(110|122|124|211|213)$/i];
/** Same patterns as the brief's grep, for the raw source text (comments removed). */
const STATUS_TEXT = [/0x(A7|A9|C0|B0)[0-9A-F]{2}\b/gi, /\b0x0(110|122|124|211|213)\b/gi];

/**
 * Literals that match the patterns but are not DIMSE statuses. Each is pinned to its file and
 * the exact source line so that a status written elsewhere in that file is still caught.
 */
const NOT_A_STATUS: { file: string; line: RegExp; why: string }[] = [
  { file: 'src/dicom/command.ts', line: /^\s*NGetRq: 0x0110,\s*$/, why: 'N-GET-RQ Command Field value (PS3.7 Table E.1-1)' },
];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Every numeric literal in a file, found with the TypeScript parser (exact, comments excluded). */
function literalsOf(file: string, text = readFileSync(file, 'utf8')): { literal: string; line: string; lineNo: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: { literal: string; line: string; lineNo: number }[] = [];
  const lines = text.split('\n');
  const visit = (node: ts.Node): void => {
    if (ts.isNumericLiteral(node)) {
      const lineNo = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      out.push({ literal: node.getText(sf), line: lines[lineNo - 1] ?? '', lineNo });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The file's text with every comment blanked out (comment ranges found by the TypeScript parser). */
function withoutComments(file: string, text: string): string {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const ranges = new Map<number, number>();
  const collect = (node: ts.Node): void => {
    for (const r of ts.getLeadingCommentRanges(text, node.pos) ?? []) ranges.set(r.pos, r.end);
    for (const r of ts.getTrailingCommentRanges(text, node.end) ?? []) ranges.set(r.pos, r.end);
    for (const child of node.getChildren(sf)) collect(child);
  };
  collect(sf);
  let out = text;
  for (const [pos, end] of ranges) out = out.slice(0, pos) + out.slice(pos, end).replace(/[^\n]/g, ' ') + out.slice(end);
  return out;
}

describe('no bare DIMSE status hex literals outside src/dicom/status.ts', () => {
  const files = tsFiles(SRC).filter((f) => path.relative(ROOT, f) !== path.join('src', 'dicom', 'status.ts'));

  it('finds the source files to check', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(files.some((f) => f.endsWith(path.join('receive', 'store-reception.ts')))).toBe(true);
  });

  it('no numeric literal in src/ (other than status.ts) is a DIMSE status code', () => {
    const offenders: string[] = [];
    for (const f of files) {
      const rel = path.relative(ROOT, f).split(path.sep).join('/');
      for (const { literal, line, lineNo } of literalsOf(f)) {
        if (!STATUS_LITERAL.some((re) => re.test(literal))) continue;
        if (NOT_A_STATUS.some((x) => x.file === rel && x.line.test(line))) continue;
        offenders.push(`${rel}:${lineNo}: ${line.trim()}`);
      }
    }
    expect(offenders, 'import the status from src/dicom/status.ts instead').toEqual([]);
  });

  it('the raw source text (code, comments stripped) has no status-like hex either', () => {
    const offenders: string[] = [];
    for (const f of files) {
      const rel = path.relative(ROOT, f).split(path.sep).join('/');
      const text = readFileSync(f, 'utf8');
      const code = withoutComments(f, text);
      code.split('\n').forEach((line, i) => {
        const original = text.split('\n')[i] ?? '';
        for (const re of STATUS_TEXT) {
          for (const m of line.matchAll(re)) {
            if (NOT_A_STATUS.some((x) => x.file === rel && x.line.test(original))) continue;
            offenders.push(`${rel}:${i + 1}: ${m[0]} in ${original.trim()}`);
          }
        }
      });
    }
    expect(offenders).toEqual([]);
  });

  it('withoutComments() blanks comments but keeps code, strings and line numbers', () => {
    const sample = "const a = '0xA700'; // 0xA900\n/**\n * 0xC000\n */\nconst b = 0x0110; /* 0xB000 */ const c = `${a} 0xC001`;\n";
    const code = withoutComments('sample.ts', sample);
    expect(code.split('\n')).toHaveLength(sample.split('\n').length);
    const hits = STATUS_TEXT.flatMap((re) => [...code.matchAll(re)].map((m) => m[0]));
    expect(hits.sort()).toEqual(['0x0110', '0xA700', '0xC001'].sort());
  });

  it('the check itself catches a bare status literal', () => {
    const sample = 'const a = 0xA700;\nconst b = 0xc001; // ok\nconst c = 0x0110;\nconst d = 0x00000110; // a tag, not a status\n/* 0xA900 in a comment */\n';
    const found = literalsOf('sample.ts', sample)
      .filter((l) => STATUS_LITERAL.some((re) => re.test(l.literal)))
      .map((l) => `${l.lineNo}:${l.literal}`);
    expect(found).toEqual(['1:0xA700', '2:0xc001', '3:0x0110']);
  });

  it('every allow-listed non-status literal still exists (the list does not rot)', () => {
    for (const x of NOT_A_STATUS) {
      const lines = readFileSync(path.join(ROOT, x.file), 'utf8').split('\n');
      expect(lines.some((l) => x.line.test(l)), `${x.file}: ${x.why}`).toBe(true);
    }
  });
});
