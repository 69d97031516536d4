/**
 * TEMPORARY adapter, to be dropped at merge: bench/forward-bench.ts is being rewritten elsewhere to
 * export `runForwardBench(opts)`; until that lands, bench/run-all.ts runs today's forward bench as
 * a child process (it writes its section into docs/benchmarks.md and docs/benchmarks-forward.json
 * itself), takes its section and JSON, and puts docs/benchmarks.md back as it was.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './proc.js';
import { ROOT } from './receivers.js';
import type { BenchSection } from './targets.js';

export async function legacyForwardBench(opts: { reps: number; quick?: boolean }, log: (s: string) => void): Promise<BenchSection> {
  const md = path.join(ROOT, 'docs/benchmarks.md');
  const json = path.join(ROOT, 'docs/benchmarks-forward.json');
  const before = existsSync(md) ? readFileSync(md, 'utf8') : undefined;
  try {
    const r = await run(process.execPath, [path.join(import.meta.dirname, 'forward-bench.js')], {
      timeoutMs: 30 * 60_000,
      env: { PACS_EDGE_BENCH_REPS: String(opts.reps), ...(opts.quick ? { PACS_EDGE_BENCH_COUNT: '100' } : {}) },
    });
    for (const l of r.stdout.trim().split('\n')) log(l);
    if (r.code !== 0) throw new Error(`forward-bench exited ${r.code}: ${r.stderr.slice(-1000)}`);
    const text = readFileSync(md, 'utf8');
    const section = /<!-- forward-bench:start -->\n([\s\S]*?)\n<!-- forward-bench:end -->/.exec(text)?.[1];
    if (!section) throw new Error('forward-bench wrote no section');
    // Its own target table types PASS/FAIL: the rows are dropped here, the figures stay.
    const markdown = section.replace(/\n\| Target \(from the issue\)[\s\S]*$/, '\n\n(Drain targets: computed by the new forward bench, not by this temporary adapter.)');
    return { markdown, raw: JSON.parse(readFileSync(json, 'utf8')) as unknown, targets: [] };
  } finally {
    if (before === undefined) rmSync(md, { force: true });
    else writeFileSync(md, before);
    rmSync(json, { force: true });
  }
}
