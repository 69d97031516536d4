/**
 * `make bench`: every benchmark, in one process, in a fixed order, on the current commit; then
 * docs/benchmarks.md is written whole (nothing kept from the old file) with issue 17's targets
 * computed from this run's figures at the top, and docs/benchmarks.json holds every raw figure.
 *
 * Knobs (environment; the header of the generated file lists them too): see KNOBS below.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bigObjectOptionsFromEnv, runBigObjectBench } from './big-object-bench.js';
import { runCodecBench } from './codec-bench.js';
import { compressReceiveOptionsFromEnv, runCompressReceiveBench } from './compress-receive-bench.js';
import { machineFacts } from './machine.js';
import { killAll } from './proc.js';
import { ROOT } from './receivers.js';
import { receiveCleanupSync, receiveOptionsFromEnv, runReceiveBench } from './receive-bench.js';
import { envInt, QUICK } from './standalone.js';
import { type BenchSection, mdTable, renderTargets, tally, type TargetRow } from './targets.js';
import { checkTargetRules } from './targets-check.js';
import { runForwardBench } from './forward-bench.js';
import { runWanBench, wanCleanupSync, wanOptionsFromEnv } from './wan-bench.js';

/** The environment knobs of `make bench`, as documented in the generated header. */
export const KNOBS: [string, string][] = [
  ['PACS_EDGE_CORPUS', 'corpus directory (default `../shared/corpus/public`; the CT template is `693_UNCR.dcm`)'],
  ['PACS_EDGE_BENCH_OUT', 'where benchmarks.md and benchmarks.json are written (default `docs/`)'],
  ['PACS_EDGE_BENCH_QUICK', '`1`: smoke run — small counts, one repetition (figures not meaningful; default off)'],
  ['PACS_EDGE_BENCH_REPS', 'repetitions of the receive, compress-receive and forward benches (default 3)'],
  ['PACS_EDGE_BENCH_COUNT', 'instances of the receive study (default 500)'],
  ['PACS_EDGE_BENCH_RECEIVERS', 'receive bench receivers, comma list of gateway, storescp, orthanc, dcmjs-dimse, gateway-aes-masked, gateway-chacha-masked (default all)'],
  ['PACS_EDGE_COMPRESS_COUNT', 'instances of the receive-while-compressing study (default 1000)'],
  ['PACS_EDGE_BIG_MIB', 'size of the big object in MiB (default 1024)'],
  ['PACS_EDGE_BIG_REPS', 'repetitions of the big object (default 3)'],
  ['PACS_EDGE_CODEC_REPS', 'timings per codec and image (default 5)'],
  ['PACS_EDGE_WAN_COUNT', 'instances over the shaped link (default 100)'],
  ['PACS_EDGE_WAN_REPS', 'repetitions over the shaped link (default 3)'],
  ['PACS_EDGE_BENCH_ONLY', 'comma list of section ids to run (receive, compress-receive, big-object, forward, seal, codecs, wan); the others are listed as not run (default all)'],
];

interface Part {
  id: string;
  title: string;
  run: (log: (s: string) => void) => Promise<(BenchSection | Omit<BenchSection, 'targets'>) | { skipped: string }>;
}

type RunSealBench = () => Promise<Omit<BenchSection, 'targets'>>;

/** True when the built module `name` (dist/bench/<name>.js) exists and mentions `exportName`, so importing it is safe. */
function builtModuleHas(name: string, exportName: string): boolean {
  const js = path.join(import.meta.dirname, `${name}.js`);
  return existsSync(js) && readFileSync(js, 'utf8').includes(exportName);
}

const PARTS: Part[] = [
  { id: 'receive', title: 'Receive (ingest)', run: (log) => runReceiveBench({ ...receiveOptionsFromEnv(), log }) },
  { id: 'compress-receive', title: 'Receiving while compressing', run: (log) => runCompressReceiveBench({ ...compressReceiveOptionsFromEnv(), log }) },
  { id: 'big-object', title: 'One 1 GiB object', run: (log) => runBigObjectBench({ ...bigObjectOptionsFromEnv(), log }) },
  {
    id: 'forward',
    title: 'Forwarding (drain)',
    run: () => runForwardBench({ reps: envInt('PACS_EDGE_BENCH_REPS', QUICK ? 1 : 3), quick: QUICK }),
  },
  {
    id: 'seal',
    title: 'Sealing throughput',
    run: async () => {
      if (!builtModuleHas('seal-throughput', 'runSealBench')) return { skipped: 'bench/seal-throughput.ts is not in this build' };
      const mod = (await import(path.join(import.meta.dirname, 'seal-throughput.js'))) as { runSealBench: RunSealBench };
      return mod.runSealBench();
    },
  },
  { id: 'codecs', title: 'Lossless codecs', run: (log) => runCodecBench({ reps: envInt('PACS_EDGE_CODEC_REPS', QUICK ? 1 : 5), log }) },
  {
    id: 'wan',
    title: 'Forwarding over a slow WAN link',
    run: async () => (process.getuid?.() === 0 ? runWanBench(wanOptionsFromEnv()) : { skipped: 'needs root (network namespaces and tc); `make bench` was not run as root' }),
  },
];

function git(args: string[]): string {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  // trimEnd only: a porcelain line starts with a space when only the work tree differs.
  return r.status === 0 ? r.stdout.trimEnd() : 'unknown';
}

/** The commit, and whether the tree differs from it (the files this run writes do not count). */
function commitOf(outDir: string): { commit: string; dirty: string[] } {
  const commit = git(['rev-parse', 'HEAD']);
  const ours = path.relative(ROOT, outDir);
  const dirty = git(['status', '--porcelain'])
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3))
    .filter((f) => !(path.dirname(f) === ours && /^benchmarks.*\.(md|json)$/.test(path.basename(f))));
  return { commit, dirty };
}

const minutes = (s: number): string => `${(s / 60).toFixed(1)} min`;

async function main(): Promise<void> {
  // The PASS/FAIL arithmetic is checked before anything is measured (a failure stops the run).
  checkTargetRules();
  const started = Date.now();
  const outDir = path.resolve(ROOT, process.env.PACS_EDGE_BENCH_OUT ?? 'docs');
  const only = process.env.PACS_EDGE_BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  const { commit, dirty } = commitOf(outDir);
  const machine = machineFacts();
  const log = (s: string): void => console.log(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${s}`);
  log(`commit ${commit}${dirty.length ? ' (dirty)' : ''}${QUICK ? ', QUICK mode' : ''}`);

  const done: { part: Part; seconds: number; result?: BenchSection | Omit<BenchSection, 'targets'>; skipped?: string; error?: string }[] = [];
  for (const part of PARTS) {
    if (only && !only.includes(part.id)) {
      done.push({ part, seconds: 0, skipped: 'not selected (PACS_EDGE_BENCH_ONLY)' });
      continue;
    }
    const t = Date.now();
    log(`${part.id}: start`);
    try {
      const r = await part.run(log);
      if ('skipped' in r) done.push({ part, seconds: (Date.now() - t) / 1000, skipped: r.skipped });
      else done.push({ part, seconds: (Date.now() - t) / 1000, result: r });
    } catch (err) {
      done.push({ part, seconds: (Date.now() - t) / 1000, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    } finally {
      killAll();
    }
    const d = done.at(-1)!;
    log(`${part.id}: ${d.error ? `FAILED: ${d.error.split('\n')[0]}` : d.skipped ? `skipped: ${d.skipped}` : 'done'} in ${d.seconds.toFixed(0)} s`);
  }
  const runtimeSeconds = (Date.now() - started) / 1000;

  const targetSections = done.map((d) => ({
    section: d.part.title,
    targets: d.error
      ? [{ target: `${d.part.title} bench ran`, measured: `failed: ${d.error.split('\n')[0]!.replace(/`/g, "'")}`, pass: false } satisfies TargetRow]
      : d.result && 'targets' in d.result
        ? d.result.targets
        : [],
  }));
  const allTargets = targetSections.flatMap((s) => s.targets);
  const t = tally(allTargets);
  const m = machine;
  const md: string[] = [
    '# Benchmarks',
    '',
    `Generated whole by \`make bench\` (\`node dist/bench/run-all.js\`) from commit \`${commit}\`${dirty.length ? ` **with uncommitted changes** (${dirty.length} file(s): ${dirty.slice(0, 8).map((f) => `\`${f}\``).join(', ')}${dirty.length > 8 ? ', …' : ''})` : ''}, ` +
      `started ${new Date(started).toISOString()}; the whole run took **${minutes(runtimeSeconds)}**. Every figure and every PASS/FAIL below comes from that one run; ` +
      'the raw figures are in [benchmarks.json](benchmarks.json). Do not edit this file: run `make bench` again.' +
      (QUICK ? ' **QUICK (smoke) run: small counts, one repetition — the figures prove the benches work, they are not measurements.**' : ''),
    '',
    mdTable(
      ['', ''],
      [
        ['CPUs (`nproc`)', String(m.nproc)],
        ['CPU model', m.cpuModel],
        ['RAM', `${(m.memTotalBytes / 2 ** 30).toFixed(1)} GiB`],
        ['Kernel', m.kernel],
        ['Node.js (OpenSSL)', `${m.node} (${process.versions.openssl})`],
        ['pacs-edge', m.gateway],
        ['DCMTK', m.dcmtk],
        ['Orthanc', m.orthanc],
        ['dcmjs-dimse', m.dcmjsDimse],
        ['strace', m.strace ?? 'not installed'],
        ['Temp dir (studies and all receiver storage)', `\`${m.tmpDir}\` on ${m.tmpFilesystem.type} (\`${m.tmpFilesystem.device}\` at \`${m.tmpFilesystem.mountPoint}\`)`],
        ['Time per part', done.map((d) => `${d.part.id} ${d.skipped ? `skipped` : `${d.seconds.toFixed(0)} s`}`).join(', ')],
      ],
    ),
    '',
    `Knobs (environment): ${KNOBS.map(([k, v]) => `\`${k}\` — ${v}`).join('; ')}.`,
    '',
    '## Targets (issue 17)',
    '',
    renderTargets(targetSections),
    '',
    `${t.pass} pass, ${t.fail} fail, ${t.reported} reported without a threshold. Ratios are medians over the repetitions of this run, compared with the line at the two decimals shown (0.60× meets "≥ 0.6×"). ` +
      'The drain targets (spool → PACS) are the forward section\'s.',
    '',
  ];
  for (const d of done) {
    if (d.result) {
      const text = d.result.markdown.trim();
      // Every part under its own heading (a bench that prints none gets its part's title).
      md.push(...(text.startsWith('## ') ? [] : [`## ${d.part.title}`, '']), text, '');
    } else {
      md.push(`## ${d.part.title}`, '', d.error ? `**Failed** after ${d.seconds.toFixed(0)} s:\n\n\`\`\`\n${d.error.slice(0, 3000)}\n\`\`\`` : `Not run: ${d.skipped}.`, '');
    }
  }

  const raw = {
    generatedAt: new Date().toISOString(),
    commit,
    dirty,
    quick: QUICK,
    runtimeSeconds,
    machine,
    openssl: process.versions.openssl,
    knobs: Object.fromEntries(KNOBS.map(([k]) => [k, process.env[k] ?? null])),
    targets: targetSections,
    sections: Object.fromEntries(done.map((d) => [d.part.id, { seconds: d.seconds, ...(d.result ? { raw: d.result.raw } : {}), ...(d.skipped ? { skipped: d.skipped } : {}), ...(d.error ? { error: d.error } : {}) }])),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'benchmarks.md'), `${md.join('\n').trimEnd()}\n`);
  writeFileSync(path.join(outDir, 'benchmarks.json'), `${JSON.stringify(raw, null, 2)}\n`);
  // The per-bench files of earlier versions would be stale beside the new ones: this run owns the whole set.
  for (const old of ['benchmarks-forward.json', 'benchmarks-wan.json', 'benchmarks-codecs.json', 'benchmarks-compress-receive.json']) rmSync(path.join(outDir, old), { force: true });
  log(`wrote ${path.join(outDir, 'benchmarks.md')} and benchmarks.json in ${minutes(runtimeSeconds)}: ${t.pass} pass, ${t.fail} fail, ${t.reported} reported`);
  process.exitCode = done.some((d) => d.error) ? 1 : 0;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    wanCleanupSync();
    receiveCleanupSync();
    process.exit(130);
  });
}

main().catch((err: unknown) => {
  killAll();
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
