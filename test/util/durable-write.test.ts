import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { stageDurable, stageDurableSync, writeDurable, writeDurableSync } from '../../src/util/durable-write.js';
import { tempDir } from '../helpers/processes.js';

/*
 * The durable-write helper (src/util/durable-write.ts) is killed between each of its steps by
 * its own crash points (src/util/crashpoint.ts) in a child process; after each kill the target
 * holds the old bytes or the new ones, whole. A SIGKILL shows the order of the steps is right
 * as far as the process can see it (what reaches the disk on a power cut depends on the fsyncs,
 * which the helper's code does in the order the comment at its top gives).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODULE = path.join(ROOT, 'dist/src/util/durable-write.js');
const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));
function fresh(prefix: string): string {
  const t = tempDir(prefix);
  cleanups.push(t.cleanup);
  return t.dir;
}

const STEPS = ['durable-written', 'durable-synced', 'durable-renamed', 'durable-done'] as const;

/** Run one write of `data` to `file` in a child that dies at `point` (or, with no point, finishes). */
function childWrite(file: string, data: string, form: 'async' | 'sync', point?: string, opts: object = {}): { signal: NodeJS.Signals | null; status: number | null; stderr: string } {
  const call = form === 'async' ? 'await m.writeDurable' : 'm.writeDurableSync';
  const script = `const m = await import(${JSON.stringify(MODULE)}); ${call}(${JSON.stringify(file)}, ${JSON.stringify(data)}, ${JSON.stringify(opts)});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, PACS_EDGE_CRASHPOINT: point ?? '' },
    encoding: 'utf8',
  });
  return { signal: r.signal, status: r.status, stderr: r.stderr };
}

/** Contents long enough that a torn write would show (several pages), and different per run. */
const content = (tag: string): string => `${tag}:`.padEnd(3 * 4096 + 17, tag);

describe('durable write: killed between its steps', () => {
  for (const form of ['async', 'sync'] as const) {
    it(`${form}: the target is the old content or the new, never empty or partial, after a kill at every step`, () => {
      const dir = fresh('durable-');
      const file = path.join(dir, 'state.json');
      const seen: Record<string, 'old' | 'new'> = {};
      for (const step of STEPS) {
        const old = content(`old-${step}`);
        const next = content(`new-${step}`);
        writeFileSync(file, old);
        const r = childWrite(file, next, form, `${step}@state.json:1`);
        expect(r.signal, r.stderr).toBe('SIGKILL');
        const after = readFileSync(file, 'utf8');
        expect([old, next]).toContain(after);
        seen[step] = after === old ? 'old' : 'new';
      }
      // The kill landed where each step says: before the rename the old bytes, after it the new.
      expect(seen).toEqual({ 'durable-written': 'old', 'durable-synced': 'old', 'durable-renamed': 'new', 'durable-done': 'new' });
    });

    it(`${form}: a first write killed at every step leaves no target or the whole new one; the next write completes`, () => {
      for (const step of STEPS) {
        const dir = fresh('durable-first-');
        const file = path.join(dir, 'anchor');
        const next = content(`first-${step}`);
        expect(childWrite(file, next, form, `${step}@anchor:1`).signal).toBe('SIGKILL');
        if (existsSync(file)) expect(readFileSync(file, 'utf8')).toBe(next);
        else expect(['durable-written', 'durable-synced']).toContain(step);
        // A crashed write's temporary file is reused by the next write, which leaves nothing else behind.
        const r = childWrite(file, 'again', form);
        expect(r.status, r.stderr).toBe(0);
        expect(readFileSync(file, 'utf8')).toBe('again');
        expect(readdirSync(dir)).toEqual(['anchor']);
      }
    });
  }

  it('a crash point scoped to another file does not fire; an unscoped one counts every write', () => {
    const dir = fresh('durable-scope-');
    const file = path.join(dir, 'a');
    const other = childWrite(file, 'one', 'sync', 'durable-renamed@b:1');
    expect(other.status, other.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('one');
    expect(childWrite(file, 'two', 'sync', 'durable-renamed:1').signal).toBe('SIGKILL');
    expect(readFileSync(file, 'utf8')).toBe('two');
  });

  it('exclusive: a create killed at every step leaves no file or the whole one, never an empty one', () => {
    for (const step of STEPS) {
      const dir = fresh('durable-excl-');
      const file = path.join(dir, 'device.key');
      const next = content(`key-${step}`);
      expect(childWrite(file, next, 'sync', `${step}@device.key:1`, { exclusive: true, mode: 0o600 }).signal).toBe('SIGKILL');
      if (existsSync(file)) expect(readFileSync(file, 'utf8')).toBe(next);
      else expect(['durable-written', 'durable-synced']).toContain(step);
    }
  });
});

describe('durable write: in process', () => {
  it('async and sync forms replace the content and leave no temporary file', async () => {
    const dir = fresh('durable-inproc-');
    const file = path.join(dir, 'x.json');
    writeFileSync(file, 'old');
    await writeDurable(file, new Uint8Array(Buffer.from('async new')));
    expect(readFileSync(file, 'utf8')).toBe('async new');
    writeDurableSync(file, 'sync new');
    expect(readFileSync(file, 'utf8')).toBe('sync new');
    expect(readdirSync(dir)).toEqual(['x.json']);
  });

  it('exactMode sets the mode whatever the umask; mode alone is reduced by it like fs.writeFile', () => {
    const dir = fresh('durable-mode-');
    const old = process.umask(0o077);
    try {
      writeDurableSync(path.join(dir, 'exact'), 'x', { mode: 0o640, exactMode: true });
      writeDurableSync(path.join(dir, 'masked'), 'x', { mode: 0o640 });
    } finally {
      process.umask(old);
    }
    expect(statSync(path.join(dir, 'exact')).mode & 0o777).toBe(0o640);
    expect(statSync(path.join(dir, 'masked')).mode & 0o777).toBe(0o600);
  });

  it('exclusive refuses an existing target (EEXIST) and leaves it and the directory as they were', async () => {
    const dir = fresh('durable-eexist-');
    const file = path.join(dir, 'key');
    writeFileSync(file, 'mine');
    expect(() => writeDurableSync(file, 'theirs', { exclusive: true })).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    await expect(writeDurable(file, 'theirs', { exclusive: true })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(file, 'utf8')).toBe('mine');
    expect(readdirSync(dir)).toEqual(['key']);
  });

  it('staged: the new bytes can be read before they count; discard leaves the target untouched', async () => {
    const dir = fresh('durable-stage-');
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, 'old');
    const a = await stageDurable(file, 'candidate');
    expect(readFileSync(a.tmp, 'utf8')).toBe('candidate');
    expect(readFileSync(file, 'utf8')).toBe('old');
    await a.discard();
    const b = stageDurableSync(file, 'kept', { tmp: path.join(dir, 'config.yaml.init.tmp') });
    expect(readFileSync(file, 'utf8')).toBe('old');
    b.commit();
    expect(readFileSync(file, 'utf8')).toBe('kept');
    expect(readdirSync(dir)).toEqual(['config.yaml']);
  });

  it('refuses a temporary file outside the target directory (rename is atomic only within one file system)', () => {
    const dir = fresh('durable-tmp-');
    mkdirSync(path.join(dir, 'sub'));
    expect(() => writeDurableSync(path.join(dir, 'f'), 'x', { tmp: path.join(dir, 'sub', 'f.tmp') })).toThrow(/not in the directory/);
    expect(existsSync(path.join(dir, 'f'))).toBe(false);
  });
});
