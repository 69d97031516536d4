import assert from 'node:assert/strict';
import { atLeastRatio, atMost, atMostRatio, median, renderTargets, reported, resultCell, tally } from './targets.js';

/**
 * The rule `make bench` applies to issue 17's targets (targets.ts), checked by run-all.ts before
 * any figure is measured: a row's PASS/FAIL is computed from the measured figures, at the
 * precision the table shows them. (A bench self-check, not a vitest test: no test imports bench/.)
 */
export function checkTargetRules(): void {
  {
    // a ratio exactly at the line passes, one just below fails
    assert.strictEqual(atLeastRatio('≥ 0.6× storescp', 300, 500, 0.6, 'images/s').pass, true);
    assert.strictEqual(atLeastRatio('≥ 0.6× storescp', 297, 500, 0.6, 'images/s').pass, false); // 0.594 shows as 0.59
    assert.strictEqual(atLeastRatio('≥ 1.0× storescp --fork', 500, 500, 1.0, 'images/s').pass, true);
    assert.strictEqual(atLeastRatio('≥ 1.0× storescp --fork', 490, 500, 1.0, 'images/s').pass, false);
    assert.strictEqual(atMostRatio('CPU ≤ 2×', 2.4, 1.2, 2, 'ms').pass, true);
    assert.strictEqual(atMostRatio('CPU ≤ 2×', 2.47, 1.2, 2, 'ms').pass, false); // 2.06×
  }

  {
    // compares at the two decimals it shows, so the cell and the verdict agree
    const row = atLeastRatio('≥ 0.6×', 0.5996, 1, 0.6, 'images/s');
    assert.ok(row.measured.includes('**0.60×**'));
    assert.strictEqual(row.pass, true);
  }

  {
    // a missing figure fails rather than passes
    const row = atLeastRatio('≥ 0.6×', null, 500, 0.6, 'images/s');
    assert.strictEqual(row.pass, false);
    assert.match(row.measured, /^n\/a/);
    assert.strictEqual(atMostRatio('≤ 2×', 1, 0, 2, 'ms').pass, false);
    assert.strictEqual(atMost('≤ 150 MB', null, 150, 'MB').pass, false);
  }

  {
    // an absolute ceiling: at the line passes, above fails
    assert.strictEqual(atMost('≤ 150 MB', 150.0, 150, 'MB').pass, true);
    assert.strictEqual(atMost('≤ 150 MB', 150.04, 150, 'MB').pass, true); // shows as 150.0
    assert.strictEqual(atMost('≤ 150 MB', 150.06, 150, 'MB').pass, false);
  }

  {
    // a reported row has no verdict and renders as "reported"
    const row = reported('AES masked, 1 association', '0.31× storescp');
    assert.strictEqual(row.pass, null);
    assert.strictEqual(resultCell(row.pass), 'reported');
    const table = renderTargets([{ section: 'Receive', targets: [row, atMost('≤ 150 MB', 120, 150, 'MB'), atMost('≤ 200 MB', 250, 200, 'MB')] }]);
    assert.deepStrictEqual(table.split('\n'), [
      '| Part | Target | Measured | Result |',
      '| --- | --- | --- | --- |',
      '| Receive | AES masked, 1 association | 0.31× storescp | reported |',
      '| Receive | ≤ 150 MB | **120.0 MB** | PASS |',
      '| Receive | ≤ 200 MB | **250.0 MB** | FAIL |',
    ]);
    assert.deepStrictEqual(tally([row, atMost('a', 1, 2, 'MB'), atMost('b', 3, 2, 'MB')]), { pass: 1, fail: 1, reported: 1 });
  }

  {
    // medians of odd and even counts; none of nothing
    assert.strictEqual(median([3, 1, 2]), 2);
    assert.strictEqual(median([4, 1, 3, 2]), 2.5);
    assert.strictEqual(median([]), null);
  }
}
