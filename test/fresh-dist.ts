import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { MANIFEST_PATH } from '../src/security/integrity.js';
import { ROOT } from './helpers/processes.js';

/**
 * Vitest global setup: the tests run the gateway as it ships, `node dist/src/cli/main.js`, and
 * the source they import loads its worker threads from dist/ too (src/compress/pool.ts,
 * src/util/hash-pool.ts). A dist/ older than src/ would make the suite judge yesterday's code,
 * so before any test starts, every source file of tsconfig.json (src/, bench/) is compared with
 * its compiled file; if one is missing or older, dist/ is rebuilt with `tsc -p tsconfig.json`
 * (a type error then fails the run). The installation manifest (dist/MANIFEST.sha256, checked by
 * `run` at start: src/security/integrity.ts) is rewritten whenever it is older than dist/, as
 * `make build` does, so the gateways of the tests start from an intact installation.
 *
 * When dist/ is current this costs one stat per source file.
 */
const SOURCE_DIRS = ['src', 'bench'];

/** `.ts` files under `dir` (declaration files aside), relative to ROOT. */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(path.join(ROOT, d), { withFileTypes: true })) {
      const rel = path.join(d, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  if (existsSync(path.join(ROOT, dir))) walk(dir);
  return out;
}

const mtime = (file: string): number => (existsSync(file) ? statSync(file).mtimeMs : -1);

/** Source files whose compiled file is missing or older than they are (or than tsconfig.json). */
function staleSources(): string[] {
  const config = mtime(path.join(ROOT, 'tsconfig.json'));
  return SOURCE_DIRS.flatMap(sources).filter((src) => {
    const out = mtime(path.join(ROOT, 'dist', src.replace(/\.ts$/, '.js')));
    return out < 0 || out < mtime(path.join(ROOT, src)) || out < config;
  });
}

/** The newest compiled file under dist/ (the manifest itself aside). */
function newestOutput(): number {
  let newest = -1;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (f !== path.join(ROOT, MANIFEST_PATH)) newest = Math.max(newest, statSync(f).mtimeMs);
    }
  };
  walk(path.join(ROOT, 'dist'));
  return newest;
}

function runOrThrow(what: string, args: string[]): void {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): the tests would run code that is not the current source.\n${(r.stdout + r.stderr).slice(-6000)}`);
}

export function setup(): void {
  const stale = staleSources();
  if (stale.length > 0) {
    const t0 = performance.now();
    runOrThrow('tsc -p tsconfig.json', [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
    chmodSync(path.join(ROOT, 'dist/src/cli/main.js'), 0o755);
    const still = staleSources();
    if (still.length > 0) throw new Error(`tsc -p tsconfig.json left dist/ older than ${still.slice(0, 5).join(', ')}`);
    console.log(`dist/ was older than the source (${stale[0]}${stale.length > 1 ? ` and ${stale.length - 1} more` : ''}): rebuilt with tsc -p tsconfig.json in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const manifest = path.join(ROOT, MANIFEST_PATH);
  if (mtime(manifest) < newestOutput()) {
    runOrThrow('pacs-edge manifest', [path.join(ROOT, 'dist/src/cli/main.js'), 'manifest']);
    console.log(`${MANIFEST_PATH} was older than dist/: rewritten (pacs-edge manifest)`);
  }
}
