/**
 * Does compression slow the modality down? (`make bench`.) The same CT study is sent by one
 * storescu (one association) to the gateway in four configurations, interleaved, each repeated:
 * compression off everywhere; compression at rest on (its destination down, so objects are
 * compressed in the spool while the study is still arriving); a destination up, forwarding
 * uncompressed; the same destination with `compression: jpeg-ls` (objects compressed and
 * forwarded while the study arrives). The last two compare like with like: forwarding costs
 * CPU of its own (and here the PACS runs on the same two cores).
 * Writes the section between `<!-- compress-receive:start/end -->` of docs/benchmarks.md and
 * docs/benchmarks-compress-receive.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSection } from './docs-section.js';
import { machineFacts } from './machine.js';
import { cpuSecondsOf, freePort, killAll, run } from './proc.js';
import { type Receiver, ROOT, startGateway, startStorescp } from './receivers.js';
import { buildStudy } from './study.js';

const CORPUS = process.env.PACS_EDGE_CORPUS ?? path.resolve(ROOT, '../shared/corpus/public');
/** Long enough (several seconds) that compression at rest, which starts 2 s after an object, overlaps the send. */
const COUNT = Number(process.env.PACS_EDGE_BENCH_COUNT ?? 1500);
const REPS = Number(process.env.PACS_EDGE_BENCH_REPS ?? 3);
const OUT = process.env.PACS_EDGE_BENCH_OUT ?? path.join(ROOT, 'docs');

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

async function once(cfg: Config, files: string[], warm: string[], dir: string): Promise<{ imagesPerSec: number; gatewayCpuSeconds: number }> {
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
    return { imagesPerSec: files.length / (ms / 1000), gatewayCpuSeconds: cpuSecondsOf(gw.pid) - cpu0 };
  } finally {
    await gw.stop();
    await pacs?.stop();
  }
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-compress-receive-'));
  const started = Date.now();
  try {
    const study = buildStudy({ template: path.join(CORPUS, '693_UNCR.dcm'), dir: path.join(tmp, 'study'), count: COUNT + 100 });
    const warm = study.files.slice(0, 100);
    const files = study.files.slice(100);
    const runs: Record<string, { imagesPerSec: number; gatewayCpuSeconds: number }[]> = {};
    for (let rep = 0; rep < REPS; rep++) {
      for (const cfg of CONFIGS) {
        await run('sync', []);
        const r = await once(cfg, files, warm, path.join(tmp, `${rep}-${cfg.name.replace(/\W+/g, '_')}`));
        (runs[cfg.name] ??= []).push(r);
        console.log(`${cfg.name} rep ${rep + 1}: ${r.imagesPerSec.toFixed(1)} img/s, gateway CPU ${r.gatewayCpuSeconds.toFixed(2)} s`);
        rmSync(path.join(tmp, `${rep}-${cfg.name.replace(/\W+/g, '_')}`), { recursive: true, force: true });
      }
    }
    const base = median(runs['compression off']!.map((r) => r.imagesPerSec));
    const rows = CONFIGS.map((c) => {
      const rs = runs[c.name]!;
      const ips = median(rs.map((r) => r.imagesPerSec));
      return { name: c.name, note: c.note, imagesPerSec: ips, perRun: rs.map((r) => r.imagesPerSec), cpuSeconds: median(rs.map((r) => r.gatewayCpuSeconds)), vsOff: ips / base };
    });
    const result = { generatedAt: new Date().toISOString(), durationSeconds: Math.round((Date.now() - started) / 1000), count: COUNT, reps: REPS, machine: machineFacts(), rows };
    writeFileSync(path.join(OUT, 'benchmarks-compress-receive.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeSection(path.join(OUT, 'benchmarks.md'), 'compress-receive', render(result));
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

function render(r: { generatedAt: string; durationSeconds: number; count: number; reps: number; rows: { name: string; note: string; imagesPerSec: number; perRun: number[]; cpuSeconds: number; vsOff: number }[] }): string {
  return [
    '## Receiving while compressing',
    '',
    `Generated by \`make bench\` (\`node dist/bench/compress-receive-bench.js\`) on ${r.generatedAt} in ${r.durationSeconds} s; raw figures in [benchmarks-compress-receive.json](benchmarks-compress-receive.json).`,
    '',
    `The same ${r.count}-instance CT study (693_UNCR.dcm, new UIDs) sent by one DCMTK storescu (one association, TCP_NODELAY=1) to the gateway, after a 100-instance warm-up, in four configurations run in turn, ${r.reps} times; medians. images/s is what the modality sees (C-STORE answered after fsync); gateway CPU is the process's user+system seconds during the timed send (worker threads included).`,
    '',
    '| Configuration | | images/s | per run | × compression off | gateway CPU (s) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.rows.map((x) => `| ${x.name} | ${x.note} | ${x.imagesPerSec.toFixed(1)} | ${x.perRun.map((v) => v.toFixed(1)).join(', ')} | ${x.vsOff.toFixed(2)} | ${x.cpuSeconds.toFixed(2)} |`),
    '',
    'Compare compression at rest with compression off, and forwarding with JPEG-LS with forwarding uncompressed: forwarding itself costs the modality throughput here because the PACS (storescp, one process per association) shares the two cores with the gateway and storescu. The codec workers run at nice 19, so the receive path comes first.',
  ].join('\n');
}


main().catch((err: unknown) => {
  console.error(err);
  killAll();
  process.exit(1);
});
