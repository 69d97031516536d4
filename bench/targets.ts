/**
 * The target rows of `make bench` (issue 17, "Targets"): each one is computed from measured
 * figures, never typed in. Pure functions, no I/O, so the rule at the line can be tested
 * (test/bench/targets.test.ts).
 */

/** One row of the "Targets (issue 17)" table. `pass: null` = reported only, no threshold. */
export interface TargetRow {
  target: string;
  measured: string;
  pass: boolean | null;
}

/** What every bench section returns to bench/run-all.ts. */
export interface BenchSection {
  markdown: string;
  raw: unknown;
  targets: TargetRow[];
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

/**
 * Ratios are compared at the precision they are shown (two decimals), so a row never reads
 * "0.60× … FAIL" against a 0.6× line: 0.5996 shows as 0.60 and passes, 0.5949 shows as 0.59
 * and fails. A tiny epsilon absorbs the binary error of x.xx5 values.
 */
const shown = (x: number): number => Math.round(x * 100 + 1e-9) / 100;

/** measured ÷ reference ≥ min (e.g. images/s ≥ 0.6× storescp's). Missing figures fail. */
export function atLeastRatio(target: string, measured: number | null, reference: number | null, min: number, unit: string): TargetRow {
  const r = ratio(measured, reference);
  return {
    target,
    measured: r === null ? `n/a (measured ${fmt(measured)}, reference ${fmt(reference)} ${unit})` : `${fmt(measured)} vs ${fmt(reference)} ${unit} = **${r.toFixed(2)}×**`,
    pass: r !== null && shown(r) >= min,
  };
}

/** measured ÷ reference ≤ max (e.g. CPU per image ≤ 2× storescp's). Missing figures fail. */
export function atMostRatio(target: string, measured: number | null, reference: number | null, max: number, unit: string): TargetRow {
  const r = ratio(measured, reference);
  return {
    target,
    measured: r === null ? `n/a (measured ${fmt(measured)}, reference ${fmt(reference)} ${unit})` : `${fmt(measured)} vs ${fmt(reference)} ${unit} = **${r.toFixed(2)}×**`,
    pass: r !== null && shown(r) <= max,
  };
}

/** An absolute ceiling (e.g. peak RSS ≤ 150 MB), compared at one decimal as shown. Missing figures fail. */
export function atMost(target: string, measured: number | null, max: number, unit: string, detail = ''): TargetRow {
  return {
    target,
    measured: measured === null ? 'n/a' : `**${measured.toFixed(1)} ${unit}**${detail ? ` (${detail})` : ''}`,
    pass: measured !== null && Math.round(measured * 10 + 1e-9) / 10 <= max,
  };
}

/** A figure reported beside the targets without a threshold. */
export function reported(target: string, measured: string): TargetRow {
  return { target, measured, pass: null };
}

export function resultCell(pass: boolean | null): string {
  return pass === null ? 'reported' : pass ? 'PASS' : 'FAIL';
}

export function mdTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The "Targets (issue 17)" table: one row per target, each section's rows under its name. */
export function renderTargets(sections: { section: string; targets: TargetRow[] }[]): string {
  const rows = sections.flatMap((s) => s.targets.map((t) => [s.section, t.target, t.measured, resultCell(t.pass)]));
  return mdTable(['Part', 'Target', 'Measured', 'Result'], rows);
}

/** Counts for the summary line under the table. */
export function tally(rows: TargetRow[]): { pass: number; fail: number; reported: number } {
  return {
    pass: rows.filter((r) => r.pass === true).length,
    fail: rows.filter((r) => r.pass === false).length,
    reported: rows.filter((r) => r.pass === null).length,
  };
}

function fmt(x: number | null): string {
  if (x === null) return 'n/a';
  return Math.abs(x) >= 100 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(3);
}
