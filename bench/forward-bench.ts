/**
 * Forward benchmark (part of `make bench`): how fast the gateway drains its spool into a PACS,
 * beside DCMTK storescu sending the same files straight to the same PACS, and Orthanc
 * forwarding them (`POST /modalities/{id}/store`), all in one run. Then the end-to-end figure:
 * modality → gateway → PACS with both legs running at once. Writes a section of
 * docs/benchmarks.md (between the forward markers) and docs/benchmarks-forward.json.
 *
 * The PACS is DCMTK storescp (TCP_NODELAY, `--fork`: one process per association, as a PACS
 * serves several at once). The gateway forwards with its default of two associations per
 * destination; the figure with one association is reported too.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machineFacts } from './machine.js';
import { echo, freePort, killAll, memoryOf, run, sleep } from './proc.js';
import { ROOT, startGateway, startOrthanc, startStorescp } from './receivers.js';
import { median } from './report.js';
import { buildStudy } from './study.js';

const COUNT = Number(process.env.PACS_EDGE_BENCH_COUNT ?? 500);
const REPS = Number(process.env.PACS_EDGE_BENCH_REPS ?? 3);
const log = (s: string) => console.log(`[forward-bench] ${s}`);

interface Rep {
  directImgS: number;
  gatewayImgS: number;
  gatewayOneAssocImgS: number;
  orthancImgS: number;
  e2eSeconds: number;
  e2eImgS: number;
  e2eGatewayPeakRssMb: number;
  forwardGatewayPeakRssMb: number;
}

function fresh(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function storescu(port: number, ae: string, files: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await run('storescu', ['-R', '-aet', 'BENCH', '-aec', ae, '127.0.0.1', String(port), ...files], { timeoutMs: 300_000, env: { TCP_NODELAY: '1' } });
  if (r.code !== 0) throw new Error(`storescu exited ${r.code}: ${r.stderr.slice(-300)}`);
  return performance.now() - t0;
}

async function countAt(dir: string, n: number, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (readdirSync(dir).length < n) {
    if (Date.now() > deadline) throw new Error(`only ${readdirSync(dir).length}/${n} objects arrived`);
    await sleep(5);
  }
  return performance.now();
}

/**
 * Fill a gateway's spool while its destination is down, restart it with the PACS up, and time
 * from the moment it answers to the last object written by the PACS.
 */
async function drainRate(files: string[], dir: string, associations: number): Promise<{ imgS: number; peakRssMb: number }> {
  const pacsDir = fresh(path.join(dir, 'pacs'));
  const pacs = await startStorescp(pacsDir, { fork: true });
  const gwDir = fresh(path.join(dir, 'gw'));
  const closed = await freePort();
  const dest = (port: number) => ({ forward: [{ name: 'pacs', aeTitle: pacs.aeTitle, host: '127.0.0.1', port, associations, compression: 'none' }] });
  const fill = await startGateway(gwDir, { ...dest(closed), forwarding: { retryBaseSeconds: 600, retryMaxSeconds: 600 } });
  await storescu(fill.port, fill.aeTitle, files);
  await fill.stop();
  const drain = await startGateway(gwDir, dest(pacs.port), fill.port);
  const ready = performance.now();
  const end = await countAt(path.join(pacsDir, 'out'), files.length);
  const peakRssMb = memoryOf(drain.pid).hwm / 1e6;
  await drain.stop();
  await pacs.stop();
  return { imgS: files.length / ((end - ready) / 1000), peakRssMb };
}

async function oneRep(files: string[], work: string): Promise<Rep> {
  const dir = mkdtempSync(path.join(work, 'rep-'));
  try {
    // 1. Direct: storescu → storescp.
    const direct = await startStorescp(fresh(path.join(dir, 'direct')), { fork: true });
    const directMs = await storescu(direct.port, direct.aeTitle, files);
    await direct.stop();

    // 2. Gateway draining a full spool, with its default two associations and with one.
    const drainDefault = await drainRate(files, path.join(dir, 'drain2'), 2);
    const drainOne = await drainRate(files, path.join(dir, 'drain1'), 1);

    // 3. Orthanc forwarding the same files from its storage to a storescp.
    const pacs2 = await startStorescp(fresh(path.join(dir, 'pacs2')));
    mkdirSync(path.join(dir, 'orthanc'));
    const orthanc = await startOrthanc(path.join(dir, 'orthanc'), { DicomModalities: { pacs: [pacs2.aeTitle, '127.0.0.1', pacs2.port] } });
    await storescu(orthanc.port, orthanc.aeTitle, files);
    const ids = (await orthanc.rest!('/instances')) as string[];
    const o0 = performance.now();
    await orthanc.rest!('/modalities/pacs/store', JSON.stringify({ Resources: ids, Synchronous: true }));
    const orthancMs = performance.now() - o0;
    const atPacs2 = readdirSync(path.join(dir, 'pacs2', 'out')).length;
    if (atPacs2 < files.length) throw new Error(`Orthanc delivered ${atPacs2}/${files.length}`);
    await orthanc.stop();
    await pacs2.stop();

    // 4. End to end, both legs at once: modality → gateway → PACS.
    const pacs3 = await startStorescp(fresh(path.join(dir, 'pacs3')), { fork: true });
    const gw3Dir = path.join(dir, 'gw3');
    mkdirSync(gw3Dir);
    const gw3 = await startGateway(gw3Dir, { forward: [{ name: 'pacs', aeTitle: pacs3.aeTitle, host: '127.0.0.1', port: pacs3.port, compression: 'none' }] });
    const e0 = performance.now();
    await storescu(gw3.port, gw3.aeTitle, files);
    const e1 = await countAt(path.join(dir, 'pacs3', 'out'), files.length);
    const e2eGatewayPeakRssMb = memoryOf(gw3.pid).hwm / 1e6;
    await gw3.stop();
    await pacs3.stop();

    return {
      directImgS: files.length / (directMs / 1000),
      gatewayImgS: drainDefault.imgS,
      gatewayOneAssocImgS: drainOne.imgS,
      orthancImgS: files.length / (orthancMs / 1000),
      e2eSeconds: (e1 - e0) / 1000,
      e2eImgS: files.length / ((e1 - e0) / 1000),
      e2eGatewayPeakRssMb,
      forwardGatewayPeakRssMb: Math.max(drainDefault.peakRssMb, drainOne.peakRssMb),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const corpus = path.resolve(ROOT, process.env.PACS_EDGE_CORPUS ?? '../shared/corpus/public');
  const template = path.join(corpus, '693_UNCR.dcm');
  if (!existsSync(template)) throw new Error(`template ${template} not found (set PACS_EDGE_CORPUS)`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-fwbench-'));
  const started = Date.now();
  try {
    const study = buildStudy({ template, dir: path.join(work, 'study'), count: COUNT });
    log(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB`);
    const reps: Rep[] = [];
    for (let i = 1; i <= REPS; i++) {
      const r = await oneRep(study.files, work);
      reps.push(r);
      log(
        `rep ${i}: direct ${r.directImgS.toFixed(1)} img/s, gateway forward ${r.gatewayImgS.toFixed(1)} img/s (1 association ${r.gatewayOneAssocImgS.toFixed(1)}), Orthanc forward ${r.orthancImgS.toFixed(1)} img/s, ` +
          `end to end ${r.e2eSeconds.toFixed(2)} s (${r.e2eImgS.toFixed(1)} img/s), gateway peak RSS ${r.e2eGatewayPeakRssMb.toFixed(1)} MB`,
      );
    }
    const m = (k: keyof Rep) => median(reps.map((r) => r[k]))!;
    const ratio = m('gatewayImgS') / m('directImgS');
    const peak = Math.max(...reps.map((r) => Math.max(r.e2eGatewayPeakRssMb, r.forwardGatewayPeakRssMb)));
    const result = { generatedAt: new Date().toISOString(), count: COUNT, reps, medians: Object.fromEntries((Object.keys(reps[0]!) as (keyof Rep)[]).map((k) => [k, m(k)])), ratio, peakRssMb: peak, machine: machineFacts() };
    writeFileSync(path.join(ROOT, 'docs/benchmarks-forward.json'), `${JSON.stringify(result, null, 2)}\n`);
    const f = (x: number) => x.toFixed(1);
    const section = [
      '<!-- forward-bench:start -->',
      '## Forwarding',
      '',
      `Generated by \`make bench\` (\`node dist/bench/forward-bench.js\`) on ${result.generatedAt}, ${REPS} repetition(s), medians; raw figures in [benchmarks-forward.json](benchmarks-forward.json).`,
      `Same ${COUNT}-instance CT study as above. The PACS is DCMTK \`storescp +B -pm +xa --fork\` (TCP_NODELAY) in every case: one process per association, as a PACS serves several at once. storescu and Orthanc send on one association; the gateway uses its default of two per destination (\`forward[].associations\`), and its one-association figure is shown too.`,
      '',
      '- **direct**: `storescu -R` sends the files straight to the PACS (wall time of storescu).',
      '- **gateway forward**: the gateway holds the 500 objects in its spool (received while the destination was down); it is restarted with the PACS up and timed from the moment it answers to the last object written by the PACS. Each object is read from the spool, its SHA-256 checked, and its data set streamed unchanged.',
      '- **Orthanc forward**: the same files stored in Orthanc, then `POST /modalities/pacs/store` with all instances, synchronous (time of that call).',
      '- **end to end**: modality → gateway → PACS with both legs at once: from the start of storescu to the last object at the PACS.',
      '',
      '| | images/s | note |',
      '| --- | --- | --- |',
      `| direct storescu → PACS | ${f(m('directImgS'))} | per run: ${reps.map((r) => f(r.directImgS)).join(', ')} |`,
      `| gateway spool → PACS (2 associations, default) | ${f(m('gatewayImgS'))} | per run: ${reps.map((r) => f(r.gatewayImgS)).join(', ')} |`,
      `| gateway spool → PACS (1 association) | ${f(m('gatewayOneAssocImgS'))} | per run: ${reps.map((r) => f(r.gatewayOneAssocImgS)).join(', ')}; ${(m('gatewayOneAssocImgS') / m('directImgS')).toFixed(2)}× direct |`,
      `| Orthanc → PACS | ${f(m('orthancImgS'))} | per run: ${reps.map((r) => f(r.orthancImgS)).join(', ')} |`,
      `| end to end modality → gateway → PACS | ${f(m('e2eImgS'))} | ${m('e2eSeconds').toFixed(2)} s for ${COUNT} images; gateway peak RSS ${f(m('e2eGatewayPeakRssMb'))} MB |`,
      '',
      '| Target (from the issue) | Measured | Result |',
      '| --- | --- | --- |',
      `| gateway forward (default configuration) ≥ 0.7× direct storescu images/s | ${f(m('gatewayImgS'))} vs ${f(m('directImgS'))} = **${ratio.toFixed(2)}×** | ${ratio >= 0.7 ? 'PASS' : 'FAIL'} |`,
      `| end-to-end time and peak RSS reported | ${m('e2eSeconds').toFixed(2)} s, peak RSS ${f(peak)} MB (max over runs, forward and end to end) | PASS |`,
      `| gateway / Orthanc forwarding | **${(m('gatewayImgS') / m('orthancImgS')).toFixed(2)}×** | for information |`,
      '<!-- forward-bench:end -->',
    ].join('\n');
    const md = path.join(ROOT, 'docs/benchmarks.md');
    const text = existsSync(md) ? readFileSync(md, 'utf8') : '# Benchmarks\n';
    const cleaned = text.replace(/\n?<!-- forward-bench:start -->[\s\S]*<!-- forward-bench:end -->\n?/, '\n');
    writeFileSync(md, `${cleaned.trimEnd()}\n\n${section}\n`);
    log(`wrote docs/benchmarks.md (forwarding section) and docs/benchmarks-forward.json in ${((Date.now() - started) / 1000).toFixed(0)} s; ratio ${ratio.toFixed(2)}`);
  } finally {
    killAll();
    rmSync(work, { recursive: true, force: true });
  }
}

void echo;
main().catch((err: unknown) => {
  console.error(`[forward-bench] failed: ${(err as Error).stack ?? err}`);
  killAll();
  process.exit(1);
});
