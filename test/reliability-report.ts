import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { FaultResult } from './helpers/reliability.js';
import { RELIABILITY_DIR } from './helpers/reliability.js';
import { ROOT } from './helpers/processes.js';
import { runOutcome } from './run-guard.js';

/**
 * Vitest global setup: gives the run its own directory of fault rows and, when
 * PACS_EDGE_RELIABILITY_OUT names a file, writes the rows the fault tests recorded into it as
 * the reliability report: `make test` → .tmp/reliability.md (git-ignored), `make reliability`
 * → docs/reliability.md, `make chaos` → docs/reliability-chaos.md.
 *
 * The report is written only by a run in which every test passed (as the run guard,
 * test/run-guard.ts, saw it end) and every row lost 0 objects; otherwise the file is left as it
 * was and a loud line says why. It names the commit measured (taken when the run starts), which
 * is also given to the tests (`inject('measuredCommit')`) for the reports they write themselves.
 */
let measured = 'unknown (git not available)';
/** This run's rows (see recordFault). */
const rowsDir = path.join(RELIABILITY_DIR, String(process.pid));

export function setup(project: TestProject): void {
  clearStaleRows();
  rmSync(rowsDir, { recursive: true, force: true });
  measured = commitMeasured();
  project.provide('reliabilityRows', rowsDir);
  project.provide('measuredCommit', measured);
}

/** Rows left by runs that are over (their process is gone: interrupted before their teardown). */
function clearStaleRows(): void {
  if (!existsSync(RELIABILITY_DIR)) return;
  for (const name of readdirSync(RELIABILITY_DIR)) {
    if (/^\d+$/.test(name) && !alive(Number(name))) rmSync(path.join(RELIABILITY_DIR, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Git's output, or undefined when git is absent or fails (not a clone, …). */
function git(args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return r.error || r.status !== 0 ? undefined : r.stdout;
}

/** `abc1234`, plus "+ uncommitted changes" when the working tree differs (the run's own output files aside). */
function commitMeasured(): string {
  const head = git(['rev-parse', '--short', 'HEAD'])?.trim();
  if (!head) return 'unknown (git not available)';
  const top = git(['rev-parse', '--show-toplevel'])?.trim() ?? ROOT;
  const own = [process.env.PACS_EDGE_RELIABILITY_OUT, process.env.PACS_EDGE_CHAOS_OUT]
    .filter((f): f is string => !!f)
    .map((f) => path.relative(top, path.resolve(f)))
    .filter((rel) => rel && !rel.startsWith('..') && !path.isAbsolute(rel))
    .map((rel) => `:(exclude,top)${rel}`);
  const status = git(['status', '--porcelain', '--', ':(top)', ...own]);
  if (status === undefined) return `\`${head}\` (working tree state unknown)`;
  return status.trim() ? `\`${head}\` + uncommitted changes` : `\`${head}\``;
}

export function teardown(): void {
  const out = process.env.PACS_EDGE_RELIABILITY_OUT;
  if (!out) {
    rmSync(rowsDir, { recursive: true, force: true });
    return;
  }
  const rows = existsSync(rowsDir)
    ? readdirSync(rowsDir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => JSON.parse(readFileSync(path.join(rowsDir, f), 'utf8')) as FaultResult)
    : [];
  const shown = path.relative(process.cwd(), out) || out;
  rmSync(rowsDir, { recursive: true, force: true });
  if (rows.length === 0) {
    console.log(`reliability report: no fault test recorded a row in this run; ${shown} not written`);
    return;
  }
  const outcome = runOutcome();
  if (outcome?.reason !== 'passed') {
    const why = outcome ? `the run ${outcome.reason === 'interrupted' ? 'was interrupted' : 'had failures or tests that did not run'}` : 'the run guard (test/run-guard.ts) did not report how the run ended';
    console.error(`\n!!! RELIABILITY REPORT NOT WRITTEN: ${why}; ${shown} left unchanged !!!\n`);
    return;
  }
  const losing = rows.filter((r) => r.lost !== 0);
  if (losing.length > 0) {
    const which = losing.map((r) => `${r.key} lost ${r.lost}`).join(', ');
    console.error(`\n!!! RELIABILITY REPORT NOT WRITTEN: ${losing.length} fault row(s) lost acknowledged objects (${which}); ${shown} left unchanged !!!\n`);
    return;
  }
  const by = process.env.PACS_EDGE_RELIABILITY_RUN ?? (process.env.PACS_EDGE_CHAOS ? 'make chaos' : 'make test');
  const lines = [
    '# Reliability under faults',
    '',
    `Produced by the test suite itself (\`${by}\`) on ${new Date().toISOString()}, commit ${measured},`,
    `Node ${process.version}, ${os.arch()}, ${os.cpus().length} cores. Each row is one fault test; its figures are counted by the`,
    'test (acknowledged = Success answers the modality saw; lost = acknowledged objects missing or different at the PACS or in the',
    'spool; dead-lettered = acknowledged objects the fault itself damaged, held back from the PACS in the dead-letter queue and',
    'alarmed; duplicated = objects the PACS received more than once, allowed after a crash). Recovery is the longest time from the',
    'end of a fault to normal service again. The report is written only when every row lost 0 objects.',
    '',
    `**Lost in this run: 0.**`,
    '',
    '| Fault | Injected | Acknowledged | Lost | Dead-lettered | Duplicated | Recovery (s) | Also checked | Test |',
    '|---|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.injected} | ${r.acknowledged} | ${r.lost} | ${r.deadLettered ?? 0} | ${r.duplicated} | ${r.recoverySeconds === null ? '–' : r.recoverySeconds.toFixed(1)} | ${r.notes} | \`${r.test}\` |`,
    ),
    '',
  ];
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, lines.join('\n'));
  console.log(`reliability report (${rows.length} fault row${rows.length === 1 ? '' : 's'}, 0 lost, commit ${measured.replace(/`/g, '')}): ${shown}`);
}
