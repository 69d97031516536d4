import type { Reporter, TestModule, TestRunEndReason } from 'vitest/node';
import { inCi } from './helpers/requirements.js';

/**
 * A vitest reporter that keeps a CI run from going green by not running things.
 *
 * - With CI set, a run that reports any skipped or todo test (or a test file with no test run
 *   at all) fails, and the tests are listed with the reason each gave. Outside CI they are only
 *   listed, so that a developer sees what the run left out.
 * - It records how the run ended ({@link runOutcome}), so that the reports written at the end
 *   of a run (test/reliability-report.ts) are written only by a run in which every test passed.
 *
 * The reporter and the global setup live in the same vitest process but may be loaded as
 * separate module instances, hence the outcome is kept on `globalThis` under a registered symbol.
 */
const OUTCOME = Symbol.for('pacs-edge.test-run-outcome');

export interface RunOutcome {
  /** vitest's own verdict on the run. */
  reason: TestRunEndReason;
  /** Tests that did not run (skipped or todo), as "file > test: why". */
  notRun: string[];
}

/** How the run that is ending ended; undefined before the reporter saw the end (or without it). */
export function runOutcome(): RunOutcome | undefined {
  return (globalThis as Record<symbol, RunOutcome | undefined>)[OUTCOME];
}

/** The tests of `modules` that did not run, with where and why. */
export function notRunTests(modules: ReadonlyArray<TestModule>): string[] {
  const out: string[] = [];
  for (const mod of modules) {
    let tests = 0;
    for (const test of mod.children.allTests()) {
      tests++;
      const result = test.result();
      if (result.state !== 'skipped') continue;
      const why = result.note ?? (test.options.mode === 'todo' ? 'todo' : 'skipped');
      out.push(`${mod.relativeModuleId} > ${test.fullName}: ${why}`);
    }
    // A file whose describe blocks were all skipped when collected may hold no test at all.
    if (tests === 0 && mod.state() !== 'failed') out.push(`${mod.relativeModuleId}: no test ran`);
  }
  return out;
}

export default class RunGuard implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, _errors: unknown, reason: TestRunEndReason): void {
    const notRun = notRunTests(modules);
    const outcome: RunOutcome = { reason, notRun };
    (globalThis as Record<symbol, RunOutcome | undefined>)[OUTCOME] = outcome;
    if (notRun.length === 0) return;
    const list = notRun.map((t) => `  - ${t}`).join('\n');
    if (inCi()) {
      console.error(`\n!!! ${notRun.length} test(s) did not run and CI is set: the run fails !!!\n${list}\n`);
      process.exitCode = 1;
      outcome.reason = 'failed';
    } else {
      console.warn(`\n${notRun.length} test(s) did not run (with CI set this fails the run):\n${list}\n`);
    }
  }
}
