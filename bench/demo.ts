/**
 * `make demo`: DCMTK storescp as a stand-in central PACS, the gateway in front of it, and DCMTK
 * storescu sending a sample study as the modality. Prints progress and the end-to-end result
 * (every object at the PACS, data sets byte-identical to what was sent), then cleans up.
 * Everything on 127.0.0.1; bounded to two minutes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readPart10Header } from '../src/dicom/file-meta.js';
import { ROOT } from './receivers.js';
import { buildStudy } from './study.js';

const COUNT = Number(process.env.PACS_EDGE_DEMO_COUNT ?? 50);
const DEADLINE = Date.now() + 120_000;

const say = (s: string) => console.log(`[demo] ${s}`);

/** A 24-bit BMP with a gradient (img2dcm reads BMP and JPEG). */
function gradientBmp(w: number, h: number): Buffer {
  const row = Math.ceil((w * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * h);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.fill((x + y) & 0xff, 54 + y * row + x * 3, 54 + y * row + x * 3 + 3);
  return b;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  while (!check()) {
    if (Date.now() > DEADLINE) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<number> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-demo-'));
  const kids: ReturnType<typeof spawn>[] = [];
  try {
    const corpus = path.resolve(ROOT, process.env.PACS_EDGE_CORPUS ?? '../shared/corpus/public');
    const template = path.join(corpus, '693_UNCR.dcm');
    let files: string[];
    if (existsSync(template)) {
      files = buildStudy({ template, dir: path.join(work, 'study'), count: COUNT }).files;
      say(`sample study: ${files.length} CT images built from ${template} (new UIDs)`);
    } else {
      // No corpus on this machine: DCMTK makes a small secondary-capture study from a BMP image.
      mkdirSync(path.join(work, 'study'));
      const bmp = path.join(work, 'img.bmp');
      writeFileSync(bmp, gradientBmp(256, 256));
      files = [];
      for (let i = 0; i < COUNT; i++) {
        const f = path.join(work, 'study', `sc${i}.dcm`);
        const r = spawnSync('img2dcm', ['-i', 'BMP', bmp, f], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`img2dcm failed: ${r.stderr}`);
        files.push(f);
      }
      say(`sample study: ${files.length} secondary-capture images made with DCMTK img2dcm`);
    }

    const pacsDir = path.join(work, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    kids.push(spawn('storescp', ['--fork', '+B', '-aet', 'PACS', '-od', pacsDir, '-uf', '-fe', '.dcm', String(pacsPort)], { stdio: 'ignore', env: { ...process.env, TCP_NODELAY: '1' } }));
    say(`central PACS (DCMTK storescp) listening as PACS on 127.0.0.1:${pacsPort}`);

    const gwPort = await freePort();
    const config = path.join(work, 'gateway.yaml');
    writeFileSync(
      config,
      [
        'device: { id: edge-demo }',
        `receive: { aeTitle: PACS_EDGE, host: 127.0.0.1, port: ${gwPort}, callers: [{ aeTitle: MODALITY }] }`,
        `spool: { dir: ${path.join(work, 'spool')}, minFreeBytes: 64MiB }`,
        `forward: [{ name: pacs, aeTitle: PACS, host: 127.0.0.1, port: ${pacsPort} }]`,
        'log: { level: warn }',
      ].join('\n'),
    );
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    const gw = spawn(process.execPath, [cli, 'run', '--config', config], { stdio: 'ignore' });
    kids.push(gw);
    await until(() => spawnSync('echoscu', ['-aet', 'MODALITY', '-aec', 'PACS_EDGE', '127.0.0.1', String(gwPort)]).status === 0, 'the gateway');
    say(`gateway PACS_EDGE listening on 127.0.0.1:${gwPort}, forwarding to PACS`);

    const t0 = Date.now();
    say(`modality (DCMTK storescu, AE MODALITY) sends ${files.length} images to the gateway…`);
    const sent = spawnSync('storescu', ['-aet', 'MODALITY', '-aec', 'PACS_EDGE', '127.0.0.1', String(gwPort), ...files], { env: { ...process.env, TCP_NODELAY: '1' } });
    if (sent.status !== 0) throw new Error(`storescu failed: ${sent.stderr.toString().slice(-500)}`);
    say(`  all ${files.length} acknowledged by the gateway in ${((Date.now() - t0) / 1000).toFixed(2)} s (each durable in the spool first)`);
    let last = -1;
    await until(() => {
      const n = readdirSync(pacsDir).length;
      if (n !== last && n % 10 === 0) say(`  PACS holds ${n}/${files.length}`);
      last = n;
      return n >= files.length;
    }, 'the PACS to receive everything');
    const total = (Date.now() - t0) / 1000;
    // Byte-faithful: the PACS holds exactly what the modality put on the wire. A second storescp
    // receives the same study straight from storescu, as the reference for "what was sent".
    const refDir = path.join(work, 'ref');
    mkdirSync(refDir);
    const refPort = await freePort();
    const ref = spawn('storescp', ['+B', '-aet', 'REF', '-od', refDir, '-uf', '-fe', '.dcm', String(refPort)], { stdio: 'ignore', env: { ...process.env, TCP_NODELAY: '1' } });
    kids.push(ref);
    await until(() => spawnSync('echoscu', ['-aec', 'REF', '127.0.0.1', String(refPort)]).status === 0, 'the reference storescp');
    spawnSync('storescu', ['-aet', 'MODALITY', '-aec', 'REF', '127.0.0.1', String(refPort), ...files], { env: { ...process.env, TCP_NODELAY: '1' } });
    const datasets = (dir: string) =>
      new Map(
        readdirSync(dir).map((n) => {
          const b = readFileSync(path.join(dir, n));
          const h = readPart10Header(b)!;
          return [h.sopInstanceUid, b.subarray(h.datasetOffset)] as const;
        }),
      );
    const atPacs = datasets(pacsDir);
    let identical = 0;
    for (const [uid, sentBytes] of datasets(refDir)) if (atPacs.get(uid)?.equals(sentBytes)) identical++;
    // The gateway's own view at the end (`pacs-edge status`); a status that cannot be read is a
    // failure of the demo, not an empty line.
    const status = spawnSync(process.execPath, [cli, 'status', '--config', config], { encoding: 'utf8' });
    if (status.status !== 0 || !status.stdout.trim()) throw new Error(`pacs-edge status failed (exit ${status.status}): ${(status.stderr || status.stdout).slice(-500)}`);
    console.log(status.stdout);
    say(`end to end: ${files.length} images modality → gateway → PACS in ${total.toFixed(2)} s; ${identical}/${files.length} data sets byte-identical at the PACS`);
    return identical === files.length ? 0 : 1;
  } finally {
    for (const k of kids) k.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`[demo] failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
