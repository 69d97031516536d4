import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { CLI, type GatewayProcess, run } from './processes.js';

/** Every day file of the audit trail in `dir`, oldest first, as one text (one record a line). */
export function trailText(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('');
}

/**
 * The end of a test that reads what a gateway audited: stop it (exit 0, so the trail is flushed
 * and its lock released), check the whole chain with `pacs-edge audit verify` (exit 0), and
 * return the trail's text for the test's own assertions.
 */
export async function stopVerifyReadTrail(gw: GatewayProcess, auditDir: string): Promise<string> {
  expect(await gw.stop()).toBe(0);
  const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', gw.configFile], { timeoutMs: 30_000 });
  expect(v.code, v.stdout + v.stderr).toBe(0);
  return trailText(auditDir);
}
