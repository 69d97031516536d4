import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/processes.js';

/**
 * The import layering of src/ (scripts/check-imports.mjs):
 *   util → dicom → config → security → audit → spool → (receive | compress) → forward → health → startup → gateway.ts → cli
 * with errors.ts, error-codes.ts, log.ts, version.ts and types/ at the bottom. The script has one
 * allow-list for violations still to be removed; it is empty, and this test keeps it so.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = path.join(ROOT, 'scripts/check-imports.mjs');

function check(root: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--root', root, '--list'], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** Every .ts file under `dir`, relative to ROOT. */
function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

describe('file size', () => {
  it('no file of src/ is over 450 lines: one job per file', () => {
    const long = sources('src')
      .map((f) => ({ f, lines: readFileSync(path.join(ROOT, f), 'utf8').split('\n').length }))
      .filter((x) => x.lines > 450);
    expect(long).toEqual([]);
  });
});

describe('tests and benchmarks', () => {
  it('no test imports from bench/ (benchmarks measure the product; the suite must not depend on them)', () => {
    const importing = sources('test').filter((f) => /from\s+'(\.\.\/)+bench\//.test(readFileSync(path.join(ROOT, f), 'utf8')));
    expect(importing).toEqual([]);
  });
});

describe('durable writes', () => {
  it('no module of src/ writes, renames or fsyncs a file by hand: small state files are replaced through src/util/durable-write.ts', () => {
    // Files made with O_EXCL that need not outlive a power loss (a lock naming its pid, the
    // spool's informational owner note) are the exceptions, each named with its reason.
    const exempt: Record<string, RegExp> = {
      'src/audit/lock.ts': /writeFile\(file, `\$\{process\.pid\}\\n`, \{ flag: 'wx'/,
      'src/spool/open.ts': /writeFile\(ownerFile,/,
      // A received object's file, written by the spool write worker (its commit order: level-spool.ts).
      'src/spool/write-worker.ts': /fsync\(o\.fd, /,
    };
    const byHand = /\b(writeFileSync|writeFile|renameSync|rename|fsyncSync|fsync|fdatasyncSync)\s*\(/;
    const found = sources('src')
      // The helper itself, and the fd primitives the spool's object files are written and synced with.
      .filter((f) => !['durable-write.ts', 'fd.ts', 'coalesced-fsync.ts'].some((u) => f.endsWith(path.join('util', u))))
      .flatMap((f) =>
        readFileSync(path.join(ROOT, f), 'utf8')
          .split('\n')
          .filter((l) => byHand.test(l) && !l.trim().startsWith('*') && !l.trim().startsWith('//') && !exempt[f.split(path.sep).join('/')]?.test(l))
          .map((l) => `${f}: ${l.trim()}`),
      );
    expect(found).toEqual([]);
  });
});

describe('import layering', () => {
  it('the allow-list of violations is empty', () => {
    expect(readFileSync(SCRIPT, 'utf8')).toMatch(/^const ALLOWED = \[\];$/m);
  });

  it('no module of src/ imports against the layering (outside the allow-list)', () => {
    const r = check(ROOT);
    expect(r.out).not.toMatch(/VIOLATION/);
    expect(r.code, r.out).toBe(0);
    // It did look: the gateway imports the spool, and the summary counts what it read.
    expect(r.out).toMatch(/^src\/gateway\.ts -> src\/spool\//m);
    expect(r.out).toMatch(/^\d+ files, \d+ imports of our own modules/m);
  });

  it('names an import against the layering and an import cycle, and fails', () => {
    const tmp = tempDir('pacs-edge-imports-');
    try {
      const write = (rel: string, text: string) => {
        mkdirSync(path.dirname(path.join(tmp.dir, rel)), { recursive: true });
        writeFileSync(path.join(tmp.dir, rel), text);
      };
      write('src/errors.ts', 'export class E {}\n');
      write('src/spool/store.ts', "import { E } from '../errors.js';\nexport const s = E;\n");
      // util must not build on spool; a comment that mentions an import is not one.
      write('src/util/helper.ts', "// import { x } from '../health/web.js';\nimport { s } from '../spool/store.js';\nexport const h = s;\n");
      // A cycle inside one folder.
      write('src/audit/a.ts', "import type { B } from './b.js';\nexport type A = B;\n");
      write('src/audit/b.ts', "import { a } from './a.js';\nexport type B = number;\nexport const b = a;\n");
      const r = check(tmp.dir);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/VIOLATION: src\/util\/helper\.ts -> src\/spool\/store\.ts: util may not import spool/);
      expect(r.out).toMatch(/VIOLATION: import cycle: src\/audit\/a\.ts → src\/audit\/b\.ts/);
      expect(r.out).not.toMatch(/health\/web/);
      expect(r.out).toMatch(/2 violations/);
    } finally {
      tmp.cleanup();
    }
  });
});
