/**
 * Receive benchmark (`make bench`): the pacs-edge gateway against DCMTK storescp, Orthanc and a
 * naive dcmjs-dimse SCP, with DCMTK storescu as the modality. Writes docs/benchmarks.md and
 * docs/benchmarks.json; every figure in them comes from this run.
 *
 * Knobs (environment): PACS_EDGE_CORPUS (corpus dir), PACS_EDGE_BENCH_REPS (default 3),
 * PACS_EDGE_BENCH_COUNT (default 500), PACS_EDGE_BENCH_RECEIVERS (comma list, default all),
 * PACS_EDGE_BENCH_OUT (output dir for the docs, default docs/).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { durableWriteFloor } from './disk-probe.js';
import { traceSyncCalls } from './fsync-audit.js';
import { machineFacts } from './machine.js';
import { killAll, memoryOf, run, sleep, treeCpuSecondsOf } from './proc.js';
import { type Receiver, type ReceiverKind, ROOT, startReceiver } from './receivers.js';
import { type AuditResult, type BenchResult, type FloorRun, median, type RunRecord, renderMarkdown, type Scenario, summarize } from './report.js';
import { buildStudy } from './study.js';

const STORESCU_TIMEOUT_MS = 5 * 60_000;
const ALL: ReceiverKind[] = ['gateway', 'storescp', 'orthanc', 'dcmjs-dimse'];
const SCENARIOS: Scenario[] = [
  { name: '1 association', senders: 1 },
  { name: '4 parallel senders', senders: 4 },
];
const AUDIT_OBJECTS = 20;
/** Instances sent, untimed, to every fresh receiver before the timed run: the steady state of a long-running service (a JIT warms up). */
const WARMUP_OBJECTS = 100;
const FLOOR_OBJECTS = 200;

function envInt(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, got ${v}`);
  return n;
}

function chunks<T>(xs: T[], n: number): T[][] {
  const size = Math.ceil(xs.length / n);
  return Array.from({ length: n }, (_, i) => xs.slice(i * size, (i + 1) * size)).filter((c) => c.length > 0);
}

/** storescu: one process per chunk, all started together; wall time from first start to last exit. */
async function send(port: number, aeTitle: string, groups: string[][]): Promise<{ wallMs: number; errors: string[] }> {
  const t0 = performance.now();
  const results = await Promise.all(
    groups.map((files) =>
      run('storescu', ['-R', '-aet', 'BENCH', '-aec', aeTitle, '127.0.0.1', String(port), ...files], {
        timeoutMs: STORESCU_TIMEOUT_MS,
        env: { TCP_NODELAY: '1' },
      }),
    ),
  );
  const wallMs = performance.now() - t0;
  const errors: string[] = [];
  for (const r of results) {
    if (r.timedOut) errors.push(`storescu timed out after ${STORESCU_TIMEOUT_MS} ms`);
    else if (r.code !== 0) errors.push(`storescu exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    else {
      const e = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /^E:/.test(l));
      if (e.length) errors.push(`storescu: ${e.slice(0, 3).join(' | ')}`);
    }
  }
  return { wallMs, errors };
}

/**
 * `sync` between runs (untimed): what one receiver left dirty in the page cache (storescp and
 * dcmjs-dimse never flush) is written back now, not during the next receiver's run.
 */
async function settleDisk(): Promise<void> {
  const r = await run('sync', [], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`sync failed: ${r.stderr}`);
}

/** The receiver's own count of stored objects, given a moment to settle after the last response. */
async function settledCount(count: () => Promise<number>, expected: number): Promise<number> {
  let n = await count();
  for (let i = 0; i < 20 && n < expected; i++) {
    await sleep(100);
    n = await count();
  }
  return n;
}

async function measure(kind: ReceiverKind, scenario: Scenario, rep: number, files: string[], bytes: number, work: string, warmup: string[]): Promise<RunRecord> {
  const dir = mkdtempSync(path.join(work, `${kind}-`));
  const rec: RunRecord = { receiver: kind, scenario: scenario.name, senders: scenario.senders, rep, objects: files.length, bytes, ok: false };
  let receiver: Receiver;
  try {
    receiver = await startReceiver(kind, dir, { parallel: scenario.senders > 1 });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { ...rec, error: `could not start: ${(err as Error).message}` };
  }
  try {
    rec.idleRssBytes = memoryOf(receiver.pid).rss;
    const warm = await send(receiver.port, receiver.aeTitle, [warmup]);
    if (warm.errors.length) throw new Error(`warm-up failed: ${warm.errors.join('; ')}`);
    // The receiver's process and whatever it forked (storescp --fork serves each sender in a child).
    const cpu0 = treeCpuSecondsOf(receiver.pid);
    const { wallMs, errors } = await send(receiver.port, receiver.aeTitle, chunks(files, scenario.senders));
    rec.receiverCpuSec = treeCpuSecondsOf(receiver.pid) - cpu0;
    rec.wallMs = wallMs;
    rec.imagesPerSec = files.length / (wallMs / 1000);
    rec.mbPerSec = bytes / 1e6 / (wallMs / 1000);
    rec.stored = (await settledCount(receiver.storedCount, files.length + warmup.length)) - warmup.length;
    // VmHWM just before the stop: the receiver's peak resident set over its whole life (one scenario).
    rec.peakRssBytes = memoryOf(receiver.pid).hwm;
    const problems = [...errors];
    if (rec.stored !== files.length) problems.push(`receiver holds ${rec.stored} objects, expected ${files.length}`);
    rec.ok = problems.length === 0;
    if (problems.length) rec.error = problems.join('; ');
  } catch (err) {
    rec.error = (err as Error).message;
  } finally {
    await receiver.stop();
    const logged = receiver.problems();
    if (logged.length) rec.receiverLog = logged.slice(0, 20);
    rmSync(dir, { recursive: true, force: true });
    await settleDisk();
  }
  return rec;
}

async function audit(kind: ReceiverKind, files: string[], work: string): Promise<AuditResult> {
  const dir = mkdtempSync(path.join(work, `audit-${kind}-`));
  let receiver: Receiver;
  try {
    receiver = await startReceiver(kind, dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { receiver: kind, objects: files.length, stored: 0, calls: {}, targets: {}, perObject: null, error: `could not start: ${(err as Error).message}` };
  }
  try {
    let sendErrors: string[] = [];
    const trace = await traceSyncCalls(receiver.pid, path.join(work, `strace-${kind}.txt`), dir, async () => {
      sendErrors = (await send(receiver.port, receiver.aeTitle, [files])).errors;
    });
    const total = Object.values(trace.calls).reduce((a, b) => a + b, 0);
    const stored = await settledCount(receiver.storedCount, files.length);
    const result: AuditResult = { receiver: kind, objects: files.length, stored, ...trace, perObject: total / files.length };
    if (sendErrors.length) result.error = sendErrors.join('; ');
    return result;
  } catch (err) {
    return { receiver: kind, objects: files.length, stored: 0, calls: {}, targets: {}, perObject: null, error: (err as Error).message };
  } finally {
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bench's scratch directory, removed on exit and on SIGINT/SIGTERM. */
let workDir: string | undefined;

async function main(): Promise<void> {
  const started = Date.now();
  const reps = envInt('PACS_EDGE_BENCH_REPS', 3);
  const count = envInt('PACS_EDGE_BENCH_COUNT', 500);
  const receivers = (process.env.PACS_EDGE_BENCH_RECEIVERS ?? ALL.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as ReceiverKind[];
  for (const r of receivers) if (!ALL.includes(r)) throw new Error(`unknown receiver "${r}" (known: ${ALL.join(', ')})`);
  const corpus = path.resolve(ROOT, process.env.PACS_EDGE_CORPUS ?? '../shared/corpus/public');
  const template = path.join(corpus, '693_UNCR.dcm');
  if (!existsSync(template)) throw new Error(`template ${template} not found (set PACS_EDGE_CORPUS)`);
  const outDir = path.resolve(ROOT, process.env.PACS_EDGE_BENCH_OUT ?? 'docs');

  const machine = machineFacts();
  const work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-bench-'));
  workDir = work;
  const log = (s: string): void => console.log(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
  try {
    log(`building a ${count}-instance study from ${template} in ${work}`);
    const study = buildStudy({ template, dir: path.join(work, 'study'), count });
    const warmup = buildStudy({ template, dir: path.join(work, 'warmup'), count: WARMUP_OBJECTS });
    log(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB, transfer syntax ${study.transferSyntax}`);

    await settleDisk();
    const runs: RunRecord[] = [];
    const floor: FloorRun[] = [];
    for (let rep = 1; rep <= reps; rep++) {
      const floorDir = path.join(work, `floor-${rep}`);
      const f = durableWriteFloor(study.files[0]!, floorDir, FLOOR_OBJECTS);
      rmSync(floorDir, { recursive: true, force: true });
      await settleDisk();
      floor.push({ rep, ...f });
      log(`rep ${rep} disk floor  write + fsync file + fsync dir: ${f.objectsPerSec.toFixed(1)} objects/s`);
      // Receivers interleaved inside each repetition, so a drift of the machine hits all of them alike.
      for (const kind of receivers) {
        for (const scenario of SCENARIOS) {
          const r = await measure(kind, scenario, rep, study.files, study.bytes, work, warmup.files);
          runs.push(r);
          log(
            `rep ${rep} ${kind.padEnd(11)} ${scenario.name.padEnd(18)} ` +
              (r.ok
                ? `${r.imagesPerSec!.toFixed(1)} img/s ${r.mbPerSec!.toFixed(1)} MB/s peak RSS ${(r.peakRssBytes! / 1e6).toFixed(1)} MB ` +
                  `receiver CPU ${r.receiverCpuSec!.toFixed(2)} s`
                : `FAILED: ${r.error}`) +
              (r.receiverLog ? ` (receiver logged ${r.receiverLog.length} warning/error line(s))` : ''),
          );
        }
      }
    }

    const audits: AuditResult[] = [];
    if (machine.strace) {
      for (const kind of receivers) {
        const a = await audit(kind, study.files.slice(0, AUDIT_OBJECTS), work);
        audits.push(a);
        log(`flush audit ${kind}: ${a.perObject === null ? 'n/a' : a.perObject.toFixed(2)} per object ${JSON.stringify(a.targets)}${a.error ? ` (${a.error})` : ''}`);
      }
    } else {
      log('strace not found: the flush audit is skipped');
    }

    const result: BenchResult = {
      generatedAt: new Date().toISOString(),
      runtimeSeconds: 0,
      machine,
      study: {
        template: path.relative(ROOT, template),
        instances: study.files.length,
        bytes: study.bytes,
        templateBytes: study.templateBytes,
        transferSyntax: study.transferSyntax,
        studyUid: study.studyUid,
        seriesUid: study.seriesUid,
      },
      reps,
      scenarios: SCENARIOS,
      runs,
      summary: summarize(runs, receivers, SCENARIOS),
      audit: audits,
      diskFloor: { runs: floor, objectsPerSec: median(floor.map((x) => x.objectsPerSec)) },
      auditObjects: AUDIT_OBJECTS,
    };
    result.runtimeSeconds = (Date.now() - started) / 1000;
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, 'benchmarks.json'), `${JSON.stringify(result, null, 2)}\n`);
    // The sections other benches write (forward, codecs, WAN) are kept until those benches rewrite them.
    const mdPath = path.join(outDir, 'benchmarks.md');
    const old = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
    const kept = ['forward-bench', 'codec-bench', 'wan-bench', 'compress-receive']
      .map((name) => new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`).exec(old)?.[0])
      .filter((x): x is string => x !== undefined);
    writeFileSync(mdPath, `${renderMarkdown(result).trimEnd()}\n${kept.map((k) => `\n${k}\n`).join('')}`);
    log(`wrote ${path.join(outDir, 'benchmarks.md')} and benchmarks.json (${result.runtimeSeconds.toFixed(0)} s)`);
    process.exitCode = runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    killAll();
    rmSync(work, { recursive: true, force: true });
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  });
}

main().catch((err: unknown) => {
  killAll();
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
