import type { TestContext } from 'vitest';
import { missingRoot, skipTest } from './requirements.js';

/**
 * Tests that need root (chown to another user, mounts): they run as root in CI (`.ci/run`) and
 * fail there when root is missing; on a developer's machine without root they are skipped with
 * the reason. Returns true when the test may go on.
 */
export function requireRoot(ctx: TestContext, why: string): boolean {
  return skipTest(ctx, 'this test', missingRoot(why));
}
