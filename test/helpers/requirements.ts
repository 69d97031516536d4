import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'vitest';

/**
 * What a test needs from the machine (a tool, root, the corpus) and what happens when it is not
 * there: on a developer's machine the test is skipped with a note naming what is missing; with
 * CI set it fails instead, with the same words, so that a CI run can never go green by skipping.
 * (The run guard, test/run-guard.ts, also fails a CI run that reports any skipped test at all.)
 */

/** CI is set (any value but empty, `0` or `false`). */
export function inCi(): boolean {
  const ci = process.env.CI;
  return !!ci && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** True when `cmd` is on the PATH (or is an absolute path to an executable file). */
export function hasCommand(cmd: string): boolean {
  if (cmd.startsWith('/')) return existsSync(cmd);
  return spawnSync('sh', ['-c', `command -v '${cmd.replace(/'/g, '')}'`]).status === 0;
}

/**
 * The tools of `needs` (command name or absolute path → how to get it) that are missing, as one
 * sentence; undefined when all are there.
 */
export function missingTools(needs: Record<string, string>): string | undefined {
  const missing = Object.entries(needs).filter(([cmd]) => !hasCommand(cmd));
  if (missing.length === 0) return undefined;
  return missing.map(([cmd, how]) => `${cmd} is missing (${how})`).join('; ');
}

function ciFailure(what: string, missing: string): Error {
  return new Error(`${what} cannot run: ${missing}. CI is set, so this is a failure, not a skip.`);
}

/**
 * For `describe.skipIf(skipSuite(...))` (or `it.skipIf`): `missing` says what the suite lacks,
 * undefined when nothing. Returns true (skip) with a printed note on a developer's machine;
 * throws with CI set (the test file then fails as it loads, naming what is missing).
 */
export function skipSuite(what: string, missing: string | undefined): boolean {
  if (missing === undefined) return false;
  if (inCi()) throw ciFailure(what, missing);
  console.warn(`SKIPPED ${what}: ${missing}`);
  return true;
}

/**
 * Inside a test: skips it (`ctx.skip`, with the reason) when `missing` names something, or
 * throws with CI set. Returns true when the test may go on; a test that gets false must return.
 */
export function skipTest(ctx: TestContext, what: string, missing: string | undefined): boolean {
  if (missing === undefined) return true;
  if (inCi()) throw ciFailure(what, missing);
  ctx.skip(`${what}: ${missing}`);
  return false;
}

/** Root, or why not (for {@link skipSuite} / {@link skipTest}). */
export function missingRoot(why: string): string | undefined {
  return process.getuid?.() === 0 ? undefined : `needs root (${why}); CI runs as root`;
}
