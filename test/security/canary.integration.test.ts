import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { ctFile, testUid } from '../helpers/dicom-builder.js';
import { type Broker, record, startMosquitto } from '../helpers/mosquitto.js';
import { freePort, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * The auditor's grep: a canary patient name and ID sent through the gateway must appear in
 * 0 bytes of the spool (object files, LevelDB), the logs and the MQTT payloads — while the PACS
 * does receive them (so the grep would have found them had they been there).
 * Encryption at rest is on by default (spool.encryption.profile aes-256-gcm); the `gm` profile
 * (SM4-CTR + HMAC-SM3) and `chacha20-poly1305` (boards without AES instructions) are run too.
 */
const NAME = 'CANARY^ZHANGSAN^QIANFENG';
const PATIENT_ID = 'CANARYID4711';
/** The needles, in the encodings a data set or a log could hold them in. */
const needles = [NAME, PATIENT_ID, 'ZHANGSAN', 'QIANFENG'].flatMap((s) => [Buffer.from(s, 'latin1'), Buffer.from(s, 'utf16le')]);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = path.join(dir, n);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

const hits = (bytes: Buffer) => needles.filter((n) => bytes.includes(n)).map((n) => n.toString(n.length > 24 ? 'utf16le' : 'latin1'));

describe.each(['aes-256-gcm', 'gm', 'chacha20-poly1305'] as const)('canary grep with spool.encryption.profile %s', (profile) => {
  const tmp = tempDir(`pacs-edge-canary-${profile}-`);
  let broker: Broker;

  beforeAll(async () => {
    mkdirSync(path.join(tmp.dir, 'mqtt'));
    broker = await startMosquitto(path.join(tmp.dir, 'mqtt'));
  });
  afterAll(async () => {
    await broker?.stop();
    tmp.cleanup();
  });

  it('appears in 0 bytes of the spool, the index, the logs and MQTT, and reaches the PACS intact', async () => {
    // Three canary objects, made with DCMTK's dcmodify from the test fixture.
    const study = testUid('canary-study');
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const f = path.join(tmp.dir, `canary${i}.dcm`);
      writeFileSync(f, ctFile({ rows: 64, cols: 64, studyUid: study }).bytes);
      const m = await run('dcmodify', ['-nb', '-m', `(0010,0010)=${NAME}`, '-i', `(0010,0020)=${PATIENT_ID}`, f]);
      expect(m.code, m.stderr).toBe(0);
      expect(readFileSync(f).includes(Buffer.from(NAME))).toBe(true);
      files.push(f);
    }
    const pacsDir = path.join(tmp.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    const mqtt = await record(broker.url, '#');
    const gw = await startGateway({
      dir: tmp.dir,
      // Disk pressure (free space under 4 × minFreeBytes): compression at rest runs although the
      // destination (compression: none) would decode it again (src/compress/at-rest.ts).
      spool: { encryption: { profile }, minFreeBytes: pressureMinFree(tmp.dir) },
      config: {
        device: { id: `edge-canary-${profile}` },
        health: { mqtt: { url: broker.url, intervalSeconds: 1 } },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      },
    });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      expect((await storescu({ port: gw.port, files })).acked).toEqual([1, 2, 3]);
      // PACS down: the objects stay, and compression at rest rewrites them (a second way onto disk).
      await waitFor(
        async () => {
          const s = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { spool: { compressAtRest?: { compressed: number } } };
          return (s.spool.compressAtRest?.compressed ?? 0) >= 3 || undefined;
        },
        { what: 'compression at rest of the canaries', timeoutMs: 30_000 },
      );
      await waitFor(() => mqtt.messages.some((m) => m.topic.endsWith('/health')) || undefined, { what: 'a health message' });

      const found: string[] = [];
      for (const f of filesUnder(gw.spoolDir)) if (!f.endsWith('.sock')) for (const h of hits(readFileSync(f))) found.push(`${path.relative(tmp.dir, f)}: ${h}`);
      expect(found, 'canary bytes in the spool (objects or LevelDB)').toEqual([]);
      expect(filesUnder(path.join(gw.spoolDir, 'objects')).length).toBe(3);

      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      await waitFor(() => nothingPending(gw.spoolDir), { what: 'delivery', timeoutMs: 30_000 });
      // The PACS got the real thing: the needle was there to be found.
      const atPacs = readdirSync(pacsDir).filter((n) => n.endsWith('.dcm'));
      expect(atPacs).toHaveLength(3);
      for (const n of atPacs) expect(datasetBytes(path.join(pacsDir, n)).includes(Buffer.from(NAME))).toBe(true);

      expect(hits(Buffer.from(gw.output(), 'utf8')), 'canary in the gateway logs').toEqual([]);
      const payloads = Buffer.from(mqtt.messages.map((m) => `${m.topic} ${m.text}`).join('\n'), 'utf8');
      expect(mqtt.messages.length).toBeGreaterThan(0);
      expect(hits(payloads), 'canary in MQTT payloads').toEqual([]);
    } finally {
      await gw.stop();
      await pacs?.stop();
      await mqtt.close();
    }
    // After the run, every file the gateway wrote beside the spool (keys, audit) is clean too.
    const found: string[] = [];
    for (const f of filesUnder(tmp.dir)) {
      if (f.startsWith(pacsDir) || files.includes(f) || f.includes(`${path.sep}mqtt${path.sep}`)) continue;
      for (const h of hits(readFileSync(f))) found.push(`${path.relative(tmp.dir, f)}: ${h}`);
    }
    expect(found, 'canary anywhere the gateway wrote').toEqual([]);
  }, 90_000);
});

/** A spool.minFreeBytes of a third of the free space: the gateway receives, and the spool is under pressure. */
function pressureMinFree(dir: string): number {
  const fs = statfsSync(dir);
  return Math.floor((fs.bavail * fs.bsize) / 3);
}
