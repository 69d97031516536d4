import type { TestContext } from 'vitest';

/**
 * Tests that need root (chown to another user, mounts): they run as root in CI (`.ci/run`) and
 * fail there when root is missing; on a developer's machine without root they are skipped with
 * the reason. Returns true when the test may go on.
 */
export function requireRoot(ctx: TestContext, why: string): boolean {
  if (process.getuid?.() === 0) return true;
  const ci = process.env.CI;
  if (ci && ci !== '0' && ci.toLowerCase() !== 'false') throw new Error(`this test needs root (${why}) and CI is set: run it as root`);
  ctx.skip(`needs root: ${why}`);
  return false;
}
