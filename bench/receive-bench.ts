/**
 * Receive (ingest) benchmark, a section of `make bench` (bench/run-all.ts): the pacs-edge gateway
 * (spool encryption on: aes-256-gcm) against DCMTK storescp (`--fork` for parallel senders),
 * Orthanc and a naive dcmjs-dimse SCP, with DCMTK storescu as the modality; and the gateway
 * again with the AES, carry-less multiply and SHA instructions masked from OpenSSL (and with the
 * chacha20-poly1305 profile, when this build has it). Issue 17's ingest targets come from it.
 *
 * Runs alone too: `node dist/bench/receive-bench.js` prints its section (docs/ untouched).
 * Knobs (environment): PACS_EDGE_CORPUS (corpus dir), PACS_EDGE_BENCH_REPS (default 3),
 * PACS_EDGE_BENCH_COUNT (default 500), PACS_EDGE_BENCH_RECEIVERS (comma list of gateway,
 * storescp, orthanc, dcmjs-dimse, gateway-aes-masked; default all), PACS_EDGE_BENCH_QUICK=1.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { durableWriteFloor } from './disk-probe.js';
import { traceSyncCalls } from './fsync-audit.js';
import { machineFacts } from './machine.js';
import { memoryOf, run, sleep, treeCpuSecondsOf } from './proc.js';
import { type Receiver, type ReceiverKind, ROOT, startGateway, startReceiver } from './receivers.js';
import { type AuditResult, type BenchResult, type FloorRun, median, receiveTargets, renderReceiveSection, type RunRecord, type Scenario, summarize, type Variant } from './report.js';
import { envInt, isMain, QUICK, runStandalone } from './standalone.js';
import { buildStudy } from './study.js';
import type { BenchSection } from './targets.js';

const STORESCU_TIMEOUT_MS = 5 * 60_000;
/** Masks AES-NI and PCLMULQDQ (first word) and the SHA extensions (second word) from OpenSSL: a CPU without crypto extensions. */
export const AES_MASK = '~0x200000200000000:~0x20000000';

interface GatewayVariant extends Variant {
  kind: ReceiverKind;
  env?: Record<string, string>;
  profile?: string;
}

/** Whether the gateway built in dist/ knows the chacha20-poly1305 spool profile (another change adds it). */
function hasChacha20(): boolean {
  const dir = path.join(ROOT, 'dist/src/config');
  if (!existsSync(dir)) return false;
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((f) => f.endsWith('.js') && readFileSync(path.join(dir, f), 'utf8').includes('chacha20-poly1305'));
}

function variants(chacha20: boolean): GatewayVariant[] {
  const both = ['1 association', '4 parallel senders'];
  return [
    { id: 'gateway', label: 'pacs-edge gateway (aes-256-gcm)', kind: 'gateway', scenarios: both, profile: 'aes-256-gcm' },
    { id: 'storescp', label: 'DCMTK storescp', kind: 'storescp', scenarios: both },
    { id: 'orthanc', label: 'Orthanc', kind: 'orthanc', scenarios: both },
    { id: 'dcmjs-dimse', label: 'dcmjs-dimse (as-is)', kind: 'dcmjs-dimse', scenarios: both },
    { id: 'gateway-aes-masked', label: 'pacs-edge gateway (aes-256-gcm), AES masked', kind: 'gateway', scenarios: ['1 association'], profile: 'aes-256-gcm', env: { OPENSSL_ia32cap: AES_MASK } },
    ...(chacha20
      ? [{ id: 'gateway-chacha-masked', label: 'pacs-edge gateway (chacha20-poly1305), AES masked', kind: 'gateway' as const, scenarios: ['1 association'], profile: 'chacha20-poly1305', env: { OPENSSL_ia32cap: AES_MASK } }]
      : []),
  ];
}

/** Starts one variant: the gateway ones with their spool profile and environment. */
function startVariant(v: GatewayVariant, dir: string, parallel: boolean): Promise<Receiver> {
  if (v.kind !== 'gateway') return startReceiver(v.kind, dir, { parallel });
  const spool = { dir: path.join(dir, 'spool'), minFreeBytes: '64MiB', encryption: { profile: v.profile ?? 'aes-256-gcm' } };
  return startGateway(dir, { spool }, undefined, v.env ? { env: v.env } : {});
}

const SCENARIOS: Scenario[] = [
  { name: '1 association', senders: 1 },
  { name: '4 parallel senders', senders: 4 },
];
const AUDIT_OBJECTS = 20;
const FLOOR_OBJECTS = 200;

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

async function measure(v: GatewayVariant, scenario: Scenario, rep: number, files: string[], bytes: number, work: string, warmup: string[]): Promise<RunRecord> {
  const dir = mkdtempSync(path.join(work, `${v.id}-`));
  const rec: RunRecord = { receiver: v.id, scenario: scenario.name, senders: scenario.senders, rep, objects: files.length, bytes, ok: false };
  let receiver: Receiver;
  try {
    receiver = await startVariant(v, dir, scenario.senders > 1);
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
    if (v.kind === 'gateway') {
      // Encryption really on: a spooled object starts with the sealed-file magic (src/security/sealed-file.ts).
      const objects = path.join(dir, 'spool', 'objects');
      const one = readdirSync(objects).find((f) => f.endsWith('.dcm'));
      const head = one ? readFileSync(path.join(objects, one)).subarray(0, 4).toString('latin1') : '';
      if (head !== 'PESE') problems.push(`spooled object is not sealed (starts with ${JSON.stringify(head)}): encryption is off`);
    }
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

async function audit(v: GatewayVariant, files: string[], work: string): Promise<AuditResult> {
  const kind = v.id;
  const dir = mkdtempSync(path.join(work, `audit-${kind}-`));
  let receiver: Receiver;
  try {
    receiver = await startVariant(v, dir, false);
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

/** The bench's scratch directory, removed at the end (and by the standalone runner on SIGINT/SIGTERM). */
let workDir: string | undefined;

export interface ReceiveOptions {
  reps: number;
  count: number;
  quick?: boolean;
  /** Variant ids to run (default: all). */
  receivers?: string[];
  log?: (s: string) => void;
}

/** Options from the environment (PACS_EDGE_BENCH_REPS, _COUNT, _RECEIVERS, _QUICK). */
export function receiveOptionsFromEnv(): ReceiveOptions {
  const receivers = process.env.PACS_EDGE_BENCH_RECEIVERS?.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    reps: envInt('PACS_EDGE_BENCH_REPS', QUICK ? 1 : 3),
    count: envInt('PACS_EDGE_BENCH_COUNT', QUICK ? 100 : 500),
    quick: QUICK,
    ...(receivers ? { receivers } : QUICK ? { receivers: ['gateway', 'storescp', 'gateway-aes-masked', 'gateway-chacha-masked'] } : {}),
  };
}

export async function runReceiveBench(opts: ReceiveOptions): Promise<BenchSection> {
  const started = Date.now();
  const chacha20 = hasChacha20();
  const all = variants(chacha20);
  const chosen = opts.receivers ? all.filter((v) => opts.receivers!.includes(v.id)) : all;
  for (const id of opts.receivers ?? []) {
    if (!all.some((v) => v.id === id) && id !== 'gateway-chacha-masked') throw new Error(`unknown receiver "${id}" (known: ${all.map((v) => v.id).join(', ')})`);
  }
  const warmupObjects = opts.quick ? 20 : 100;
  const corpus = path.resolve(ROOT, process.env.PACS_EDGE_CORPUS ?? '../shared/corpus/public');
  const template = path.join(corpus, '693_UNCR.dcm');
  if (!existsSync(template)) throw new Error(`template ${template} not found (set PACS_EDGE_CORPUS)`);

  const machine = machineFacts();
  const work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-bench-'));
  workDir = work;
  const log = (s: string): void => (opts.log ?? console.log)(`[receive +${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
  try {
    log(`building a ${opts.count}-instance study from ${template} in ${work}`);
    const study = buildStudy({ template, dir: path.join(work, 'study'), count: opts.count });
    const warmup = buildStudy({ template, dir: path.join(work, 'warmup'), count: warmupObjects });
    log(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB, transfer syntax ${study.transferSyntax}; chacha20-poly1305 profile ${chacha20 ? 'present' : 'absent'}`);

    await settleDisk();
    const runs: RunRecord[] = [];
    const floor: FloorRun[] = [];
    for (let rep = 1; rep <= opts.reps; rep++) {
      const floorDir = path.join(work, `floor-${rep}`);
      const f = durableWriteFloor(study.files[0]!, floorDir, FLOOR_OBJECTS);
      rmSync(floorDir, { recursive: true, force: true });
      await settleDisk();
      floor.push({ rep, ...f });
      log(`rep ${rep} disk floor  write + fsync file + fsync dir: ${f.objectsPerSec.toFixed(1)} objects/s`);
      // Receivers interleaved inside each repetition, so a drift of the machine hits all of them alike.
      for (const v of chosen) {
        for (const scenario of SCENARIOS.filter((s) => v.scenarios.includes(s.name))) {
          const r = await measure(v, scenario, rep, study.files, study.bytes, work, warmup.files);
          runs.push(r);
          log(
            `rep ${rep} ${v.id.padEnd(21)} ${scenario.name.padEnd(18)} ` +
              (r.ok
                ? `${r.imagesPerSec!.toFixed(1)} img/s, CPU ${((r.receiverCpuSec! * 1000) / r.objects).toFixed(2)} ms/image, peak RSS ${(r.peakRssBytes! / 1e6).toFixed(1)} MB`
                : `FAILED: ${r.error}`) +
              (r.receiverLog ? ` (receiver logged ${r.receiverLog.length} warning/error line(s))` : ''),
          );
        }
      }
    }

    const audits: AuditResult[] = [];
    if (machine.strace) {
      for (const v of chosen.filter((x) => x.id === 'gateway' || x.id === 'storescp' || (!opts.quick && (x.id === 'orthanc' || x.id === 'dcmjs-dimse')))) {
        const a = await audit(v, study.files.slice(0, AUDIT_OBJECTS), work);
        audits.push(a);
        log(`flush audit ${v.id}: ${a.perObject === null ? 'n/a' : a.perObject.toFixed(2)} per object${a.error ? ` (${a.error})` : ''}`);
      }
    } else {
      log('strace not found: the flush audit is skipped');
    }

    const result: BenchResult = {
      generatedAt: new Date().toISOString(),
      runtimeSeconds: (Date.now() - started) / 1000,
      machine,
      variants: chosen.map(({ id, label, scenarios }) => ({ id, label, scenarios })),
      warmupObjects,
      aesMask: AES_MASK,
      chacha20,
      study: {
        template: path.relative(ROOT, template),
        instances: study.files.length,
        bytes: study.bytes,
        templateBytes: study.templateBytes,
        transferSyntax: study.transferSyntax,
        studyUid: study.studyUid,
        seriesUid: study.seriesUid,
      },
      reps: opts.reps,
      scenarios: SCENARIOS,
      runs,
      summary: summarize(runs, chosen, SCENARIOS),
      audit: audits,
      diskFloor: { runs: floor, objectsPerSec: median(floor.map((x) => x.objectsPerSec)) },
      auditObjects: AUDIT_OBJECTS,
    };
    return { markdown: renderReceiveSection(result), raw: result, targets: receiveTargets(result) };
  } finally {
    rmSync(work, { recursive: true, force: true });
    workDir = undefined;
  }
}

/** Removes the scratch directory of a run cut short (SIGINT/SIGTERM). */
export function receiveCleanupSync(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

if (isMain(import.meta.url)) runStandalone('receive', () => runReceiveBench(receiveOptionsFromEnv()), receiveCleanupSync);
