/**
 * Does compression slow the modality down? (`make bench`.) The same CT study is sent by one
 * storescu (one association) to the gateway in four configurations, interleaved, each repeated:
 * compression off everywhere; compression at rest on (its destination down, so objects are
 * compressed in the spool while the study is still arriving); a destination up, forwarding
 * uncompressed; the same destination with `compression: jpeg-ls` (objects compressed and
 * forwarded while the study arrives). The last two compare like with like: forwarding costs
 * CPU of its own (and here the PACS runs on the same two cores).
 * The gateway's peak RSS in the compression-at-rest configuration, over the send and a few
 * seconds of compression after it, is issue 17's "≤ 150 MB while receiving with compression at
 * rest running" target. A section of `make bench` (bench/run-all.ts); runs alone too
 * (`node dist/bench/compress-receive-bench.js` prints its section).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { cpuSecondsOf, freePort, memoryOf, run, sleep } from './proc.js';
import { type Receiver, ROOT, startGateway, startStorescp } from './receivers.js';
import { envInt, isMain, QUICK, runStandalone } from './standalone.js';
import { buildStudy } from './study.js';
import { atMost, type BenchSection, reported, type TargetRow } from './targets.js';

const CORPUS = process.env.PACS_EDGE_CORPUS ?? path.resolve(ROOT, '../shared/corpus/public');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
export const TARGET_RSS_MB = 150;
/** After the send, the compression-at-rest run is watched this long (compression running, modality gone) before its peak RSS is read. */
const AFTER_SEND_MS = QUICK ? 4000 : 10_000;

type Config = { name: string; note: string; gateway: (pacsPort: number, spoolDir: string) => Record<string, unknown>; pacsUp: boolean };

const CONFIGS: Config[] = [
  {
    name: 'compression off',
    note: '`spool.compressAtRest: false`, destination down, `compression: none`',
    pacsUp: false,
    gateway: (port, dir) => ({ spool: { dir, minFreeBytes: '64MiB', compressAtRest: false }, forward: [{ name: 'pacs', aeTitle: 'STORESCP', host: '127.0.0.1', port, compression: 'none' }] }),
  },
  {
    name: 'compression at rest',
    note: '`spool.compressAtRest: true` (default), destination down: objects are compressed in the spool as soon as the modality is quiet (replacements wait while it is connected)',
    pacsUp: false,
    gateway: (port) => ({ forward: [{ name: 'pacs', aeTitle: 'STORESCP', host: '127.0.0.1', port, compression: 'jpeg-ls' }] }),
  },
  {
    name: 'forwarding uncompressed',
    note: 'destination up (storescp +xa --fork), `compression: none`, `spool.compressAtRest: false`: objects forwarded as received while the study arrives',
    pacsUp: true,
    gateway: (port, dir) => ({ spool: { dir, minFreeBytes: '64MiB', compressAtRest: false }, forward: [{ name: 'pacs', aeTitle: 'STORESCP', host: '127.0.0.1', port, compression: 'none' }] }),
  },
  {
    name: 'forwarding with JPEG-LS',
    note: 'destination up (storescp +xa --fork), `compression: jpeg-ls`: objects are compressed and forwarded while the study arrives',
    pacsUp: true,
    gateway: (port) => ({ forward: [{ name: 'pacs', aeTitle: 'STORESCP', host: '127.0.0.1', port, compression: 'jpeg-ls' }] }),
  },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Once {
  imagesPerSec: number;
  gatewayCpuSeconds: number;
  /** VmHWM when the modality is done. */
  peakRssMbAtSendEnd: number;
  /** VmHWM after AFTER_SEND_MS more of compression at rest (compression-at-rest configuration only). */
  peakRssMbAfter?: number;
  /** Objects compressed at rest by then (status --json), when the feature is on. */
  compressedAtRest?: number;
}

/** `spool.compressAtRest.compressed` from `pacs-edge status --json`, or undefined when absent. */
async function compressedAtRest(configFile: string): Promise<number | undefined> {
  const r = await run(process.execPath, [CLI, 'status', '--config', configFile, '--json'], { timeoutMs: 20_000 });
  if (r.code !== 0) return undefined;
  try {
    return (JSON.parse(r.stdout) as { spool?: { compressAtRest?: { compressed?: number } } }).spool?.compressAtRest?.compressed;
  } catch {
    return undefined;
  }
}

async function once(cfg: Config, files: string[], warm: string[], dir: string): Promise<Once> {
  mkdirSync(path.join(dir, 'pacs'), { recursive: true });
  mkdirSync(path.join(dir, 'gw'), { recursive: true });
  // storescp -pm +xa --fork (bench/receivers.ts): it accepts JPEG-LS, which the gateway proposes first.
  const pacs = cfg.pacsUp ? await startStorescp(path.join(dir, 'pacs'), { fork: true }) : undefined;
  const pacsPort = pacs?.port ?? (await freePort());
  const gw: Receiver = await startGateway(path.join(dir, 'gw'), { ...cfg.gateway(pacsPort, path.join(dir, 'gw', 'spool')), forwarding: { retryBaseSeconds: 5, retryMaxSeconds: 30 } });
  try {
    const w = await run('storescu', ['-aec', gw.aeTitle, '127.0.0.1', String(gw.port), ...warm], { timeoutMs: 120_000, env: { TCP_NODELAY: '1' } });
    if (w.code !== 0) throw new Error(`warm-up storescu failed: ${w.stderr}`);
    const cpu0 = cpuSecondsOf(gw.pid);
    const t = performance.now();
    const r = await run('storescu', ['-aec', gw.aeTitle, '127.0.0.1', String(gw.port), ...files], { timeoutMs: 300_000, env: { TCP_NODELAY: '1' } });
    const ms = performance.now() - t;
    if (r.code !== 0) throw new Error(`storescu failed: ${r.stderr}`);
    const out: Once = { imagesPerSec: files.length / (ms / 1000), gatewayCpuSeconds: cpuSecondsOf(gw.pid) - cpu0, peakRssMbAtSendEnd: memoryOf(gw.pid).hwm / 1e6 };
    if (cfg.name === 'compression at rest') {
      await sleep(AFTER_SEND_MS);
      out.peakRssMbAfter = memoryOf(gw.pid).hwm / 1e6;
      const n = await compressedAtRest(path.join(dir, 'gw', 'gateway.yaml'));
      if (n !== undefined) out.compressedAtRest = n;
    }
    return out;
  } finally {
    await gw.stop();
    await pacs?.stop();
  }
}

export interface CompressReceiveOptions {
  reps: number;
  count: number;
  log?: (s: string) => void;
}

export function compressReceiveOptionsFromEnv(): CompressReceiveOptions {
  // 1000: long enough (several seconds) that compression at rest, which starts 2 s after an object, overlaps the send.
  return { reps: envInt('PACS_EDGE_BENCH_REPS', QUICK ? 1 : 3), count: envInt('PACS_EDGE_COMPRESS_COUNT', QUICK ? 200 : 1000) };
}

export async function runCompressReceiveBench(opts: CompressReceiveOptions): Promise<BenchSection> {
  const log = opts.log ?? console.log;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-compress-receive-'));
  const started = Date.now();
  try {
    const study = buildStudy({ template: path.join(CORPUS, '693_UNCR.dcm'), dir: path.join(tmp, 'study'), count: opts.count + 100 });
    const warm = study.files.slice(0, 100);
    const files = study.files.slice(100);
    const runs: Record<string, Once[]> = {};
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const cfg of CONFIGS) {
        await run('sync', []);
        const r = await once(cfg, files, warm, path.join(tmp, `${rep}-${cfg.name.replace(/\W+/g, '_')}`));
        (runs[cfg.name] ??= []).push(r);
        log(
          `[compress-receive] ${cfg.name} rep ${rep + 1}: ${r.imagesPerSec.toFixed(1)} img/s, gateway CPU ${r.gatewayCpuSeconds.toFixed(2)} s, peak RSS ${r.peakRssMbAtSendEnd.toFixed(1)} MB` +
            (r.peakRssMbAfter === undefined ? '' : `, ${r.peakRssMbAfter.toFixed(1)} MB after ${AFTER_SEND_MS / 1000} s more (${r.compressedAtRest ?? '?'} compressed at rest)`),
        );
        rmSync(path.join(tmp, `${rep}-${cfg.name.replace(/\W+/g, '_')}`), { recursive: true, force: true });
      }
    }
    const base = median(runs['compression off']!.map((r) => r.imagesPerSec));
    const rows = CONFIGS.map((c) => {
      const rs = runs[c.name]!;
      const ips = median(rs.map((r) => r.imagesPerSec));
      return {
        name: c.name,
        note: c.note,
        imagesPerSec: ips,
        perRun: rs.map((r) => r.imagesPerSec),
        cpuSeconds: median(rs.map((r) => r.gatewayCpuSeconds)),
        vsOff: ips / base,
        peakRssMb: Math.max(...rs.map((r) => Math.max(r.peakRssMbAtSendEnd, r.peakRssMbAfter ?? 0))),
        compressedAtRest: rs.map((r) => r.compressedAtRest).filter((x): x is number => x !== undefined),
      };
    });
    const result = { generatedAt: new Date().toISOString(), durationSeconds: Math.round((Date.now() - started) / 1000), count: opts.count, reps: opts.reps, afterSendSeconds: AFTER_SEND_MS / 1000, rows, runs };
    const atRest = rows.find((x) => x.name === 'compression at rest')!;
    const targets: TargetRow[] = [
      atMost(
        `Gateway peak RSS ≤ ${TARGET_RSS_MB} MB while receiving with compression at rest running`,
        atRest.peakRssMb,
        TARGET_RSS_MB,
        'MB',
        `max over ${opts.reps} run(s) of VmHWM over the ${opts.count}-image send and ${AFTER_SEND_MS / 1000} s of compression after it; ${atRest.compressedAtRest.join(', ') || '?'} objects compressed at rest by then`,
      ),
      reported('Modality images/s with compression at rest on ÷ off (1 association)', `**${atRest.vsOff.toFixed(2)}×** (${atRest.imagesPerSec.toFixed(1)} vs ${base.toFixed(1)} images/s)`),
    ];
    return { markdown: render(result), raw: result, targets };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function render(r: { durationSeconds: number; count: number; reps: number; afterSendSeconds: number; rows: { name: string; note: string; imagesPerSec: number; perRun: number[]; cpuSeconds: number; vsOff: number; peakRssMb: number }[] }): string {
  return [
    '## Receiving while compressing',
    '',
    `The same ${r.count}-instance CT study (693_UNCR.dcm, new UIDs) sent by one DCMTK storescu (one association, TCP_NODELAY=1) to the gateway (spool encryption at its default, aes-256-gcm), after a 100-instance warm-up, in four configurations run in turn, ${r.reps} time(s); medians (${r.durationSeconds} s in all). images/s is what the modality sees (C-STORE answered after fsync); gateway CPU is the process's user+system seconds during the timed send (worker threads included). Peak RSS is the gateway's VmHWM, the largest over the runs, read when storescu is done; in the compression-at-rest configuration it is read again after ${r.afterSendSeconds} s more, while the spool is being compressed.`,
    '',
    '| Configuration | | images/s | per run | × compression off | gateway CPU (s) | peak RSS (MB) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.rows.map((x) => `| ${x.name} | ${x.note} | ${x.imagesPerSec.toFixed(1)} | ${x.perRun.map((v) => v.toFixed(1)).join(', ')} | ${x.vsOff.toFixed(2)} | ${x.cpuSeconds.toFixed(2)} | ${x.peakRssMb.toFixed(1)} |`),
    '',
    'Compare compression at rest with compression off, and forwarding with JPEG-LS with forwarding uncompressed: forwarding itself costs the modality throughput here because the PACS (storescp, one process per association) shares the two cores with the gateway and storescu. The codec workers run at nice 19, so the receive path comes first.',
  ].join('\n');
}

if (isMain(import.meta.url)) runStandalone('compress-receive', () => runCompressReceiveBench(compressReceiveOptionsFromEnv()));
