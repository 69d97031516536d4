import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/processes.js';

/**
 * Issue 12: one way to open the spool. A command that built its own LevelSpool without the
 * device key once moved every sealed object out of the queue. Only src/spool/open.ts may
 * construct a LevelSpool or open the spool's LevelDB index; everything else goes through it.
 */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const full = path.join(dir, n);
    return statSync(full).isDirectory() ? sources(full) : n.endsWith('.ts') ? [full] : [];
  });
}

describe('one way to open the spool', () => {
  it('no module of src/ but src/spool/open.ts constructs a LevelSpool or opens a LevelDB', () => {
    const offenders: string[] = [];
    for (const file of sources(path.join(ROOT, 'src'))) {
      const rel = path.relative(ROOT, file);
      if (rel === 'src/spool/open.ts' || rel === 'src/spool/level-spool.ts') continue;
      const text = readFileSync(file, 'utf8');
      if (/new\s+LevelSpool\s*\(/.test(text) || /new\s+Level\s*[<(]/.test(text) || /from\s+'level'/.test(text) && !/import type/.test(text.match(/.*from\s+'level'.*/)?.[0] ?? '')) offenders.push(rel);
    }
    expect(offenders).toEqual([]);
  });

  it('LevelSpool itself opens only its own index (constructed by open.ts)', () => {
    const text = readFileSync(path.join(ROOT, 'src/spool/level-spool.ts'), 'utf8');
    expect(text.match(/new\s+Level\s*[<(]/g)).toHaveLength(1);
  });
});
