import { describe, expect, it } from 'vitest';
import { atLeastRatio, atMost, atMostRatio, median, renderTargets, reported, resultCell, tally } from '../../bench/targets.js';

/**
 * The rule `make bench` applies to issue 17's targets (bench/targets.ts): a row's PASS/FAIL is
 * computed from the measured figures, at the precision the table shows them.
 */
describe('bench targets', () => {
  it('a ratio exactly at the line passes, one just below fails', () => {
    expect(atLeastRatio('≥ 0.6× storescp', 300, 500, 0.6, 'images/s').pass).toBe(true);
    expect(atLeastRatio('≥ 0.6× storescp', 297, 500, 0.6, 'images/s').pass).toBe(false); // 0.594 shows as 0.59
    expect(atLeastRatio('≥ 1.0× storescp --fork', 500, 500, 1.0, 'images/s').pass).toBe(true);
    expect(atLeastRatio('≥ 1.0× storescp --fork', 490, 500, 1.0, 'images/s').pass).toBe(false);
    expect(atMostRatio('CPU ≤ 2×', 2.4, 1.2, 2, 'ms').pass).toBe(true);
    expect(atMostRatio('CPU ≤ 2×', 2.47, 1.2, 2, 'ms').pass).toBe(false); // 2.06×
  });

  it('compares at the two decimals it shows, so the cell and the verdict agree', () => {
    const row = atLeastRatio('≥ 0.6×', 0.5996, 1, 0.6, 'images/s');
    expect(row.measured).toContain('**0.60×**');
    expect(row.pass).toBe(true);
  });

  it('a missing figure fails rather than passes', () => {
    const row = atLeastRatio('≥ 0.6×', null, 500, 0.6, 'images/s');
    expect(row.pass).toBe(false);
    expect(row.measured).toMatch(/^n\/a/);
    expect(atMostRatio('≤ 2×', 1, 0, 2, 'ms').pass).toBe(false);
    expect(atMost('≤ 150 MB', null, 150, 'MB').pass).toBe(false);
  });

  it('an absolute ceiling: at the line passes, above fails', () => {
    expect(atMost('≤ 150 MB', 150.0, 150, 'MB').pass).toBe(true);
    expect(atMost('≤ 150 MB', 150.04, 150, 'MB').pass).toBe(true); // shows as 150.0
    expect(atMost('≤ 150 MB', 150.06, 150, 'MB').pass).toBe(false);
  });

  it('a reported row has no verdict and renders as "reported"', () => {
    const row = reported('AES masked, 1 association', '0.31× storescp');
    expect(row.pass).toBeNull();
    expect(resultCell(row.pass)).toBe('reported');
    const table = renderTargets([{ section: 'Receive', targets: [row, atMost('≤ 150 MB', 120, 150, 'MB'), atMost('≤ 200 MB', 250, 200, 'MB')] }]);
    expect(table.split('\n')).toEqual([
      '| Part | Target | Measured | Result |',
      '| --- | --- | --- | --- |',
      '| Receive | AES masked, 1 association | 0.31× storescp | reported |',
      '| Receive | ≤ 150 MB | **120.0 MB** | PASS |',
      '| Receive | ≤ 200 MB | **250.0 MB** | FAIL |',
    ]);
    expect(tally([row, atMost('a', 1, 2, 'MB'), atMost('b', 3, 2, 'MB')])).toEqual({ pass: 1, fail: 1, reported: 1 });
  });

  it('medians of odd and even counts; none of nothing', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });
});
