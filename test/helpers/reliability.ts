import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';
import { ROOT } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** This run's directory of fault rows (test/reliability-report.ts). */
    reliabilityRows?: string;
    /** The commit the run measures, e.g. "`abc1234`" or "`abc1234` + uncommitted changes" (test/reliability-report.ts). */
    measuredCommit?: string;
  }
}

/**
 * One row of `docs/reliability.md`: what a fault test injected and what it measured.
 * Every fault test calls {@link recordFault} with figures it counted itself; the global
 * teardown (test/reliability-report.ts) turns the rows of the run into the report.
 */
export interface FaultResult {
  /** Stable key, also the order of the table (e.g. "01-sigkill-ingest-forward"). */
  key: string;
  /** The fault, as the report names it. */
  fault: string;
  /** The test file that measured it (relative to the project). */
  test: string;
  /** How many times the fault was injected (kills, restarts, malformed cases…). */
  injected: number;
  /** Objects the gateway acknowledged with Success during the test. */
  acknowledged: number;
  /** Acknowledged objects missing (or different) where they should be: must be 0. */
  lost: number;
  /**
   * Acknowledged objects that the injected fault itself damaged (a flipped byte) and that the
   * gateway therefore held back in its dead-letter queue, alarmed, instead of delivering them:
   * not lost (they are kept and reported), not delivered either. 0 when not given.
   */
  deadLettered?: number;
  /** Objects the PACS received more than once (allowed after a crash; reported). */
  duplicated: number;
  /** Longest time from the end of a fault to normal service again, in seconds (null: not measured). */
  recoverySeconds: number | null;
  /** One line on what else was checked. */
  notes: string;
}

/**
 * Where the rows are written: one directory per run (`<pid of the vitest run>`), made by the
 * global setup, so that two runs in the same checkout at once do not clear each other's rows.
 */
export const RELIABILITY_DIR = path.join(ROOT, '.tmp', 'reliability');

/** The commit this run measures, for the reports a test writes itself (the chaos reports). */
export function measuredCommit(): string {
  return inject('measuredCommit') ?? 'unknown (run without test/reliability-report.ts)';
}

export function recordFault(r: FaultResult): void {
  // Without the global setup (another configuration), the shared directory.
  const dir = inject('reliabilityRows') ?? RELIABILITY_DIR;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${r.key}.json`), JSON.stringify(r, null, 2));
}
