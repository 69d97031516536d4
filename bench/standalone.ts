import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll } from './proc.js';
import { renderTargets, resultCell, type BenchSection } from './targets.js';

/** True when `moduleUrl` is the script node was started with (a bench run alone, not imported by run-all). */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(moduleUrl);
}

/** Quick (smoke) mode: small counts, one repetition — proves a bench works, its figures mean little. */
export const QUICK = process.env.PACS_EDGE_BENCH_QUICK === '1';

export function envInt(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, got ${v}`);
  return n;
}

/**
 * Run one bench alone (`node dist/bench/<name>.js`): its section and target rows go to stdout,
 * docs/ is not touched (docs/benchmarks.md is only ever written whole, by bench/run-all.ts).
 * With PACS_EDGE_BENCH_OUT set, the raw figures are also written to `<out>/<name>.json`.
 */
export function runStandalone(name: string, fn: () => Promise<BenchSection | Omit<BenchSection, 'targets'>>, cleanup: () => void = () => undefined): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAll();
      cleanup();
      process.exit(130);
    });
  }
  fn()
    .then((s) => {
      console.log(s.markdown);
      const targets = 'targets' in s ? s.targets : [];
      if (targets.length) {
        console.log(`\n${renderTargets([{ section: name, targets }])}`);
        console.log(targets.map((t) => `${resultCell(t.pass)}: ${t.target}`).join('\n'));
      }
      const out = process.env.PACS_EDGE_BENCH_OUT;
      if (out) {
        mkdirSync(out, { recursive: true });
        writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(s.raw, null, 2)}\n`);
      }
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      process.exitCode = 1;
    })
    .finally(() => {
      killAll();
      cleanup();
    });
}
