import { readdirSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LevelSpool } from '../../src/spool/level-spool.js';
import { HashPool } from '../../src/util/hash-pool.js';
import { datasetBytes, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { startGateway, tempDir } from '../helpers/processes.js';

/**
 * Crash consistency: the gateway is SIGKILLed while DCMTK storescu sends 200 instances; after
 * a restart, every instance storescu saw acknowledged must be in the spool, intact.
 *
 * Six kills land on exact instants of the commit sequence (PACS_EDGE_CRASHPOINT, see
 * src/util/crashpoint.ts) — between the fsyncs, where a lost acknowledgement would hide —
 * and the others are plain external `kill -9` at moments during the transfer.
 * `make chaos` (PACS_EDGE_CHAOS=1) repeats the external kills at many more moments.
 */
const COUNT = 200;
type Point = { name: string; crashpoint?: string; killAfterMs?: number };

const POINTS: Point[] = [
  { name: 'mid-data of object 37', crashpoint: 'mid-data:37' },
  { name: 'after the file + directory fsync of object 53', crashpoint: 'after-data-fsync:53' },
  { name: 'after the first data write of object 71 hits the file', crashpoint: 'after-first-write:71' },
  { name: 'after the index commit of object 89', crashpoint: 'after-index:89' },
  { name: 'just before the C-STORE-RSP of object 107', crashpoint: 'before-response:107' },
  { name: 'just after the C-STORE-RSP of object 131', crashpoint: 'after-response:131' },
  { name: 'external kill -9 at 60 ms', killAfterMs: 60 },
  { name: 'external kill -9 at 180 ms', killAfterMs: 180 },
  { name: 'external kill -9 at 350 ms', killAfterMs: 350 },
  { name: 'external kill -9 at 600 ms', killAfterMs: 600 },
];
if (process.env.PACS_EDGE_CHAOS) {
  for (let ms = 20; ms <= 1500; ms += 37) POINTS.push({ name: `chaos: external kill -9 at ${ms} ms`, killAfterMs: ms });
}

describe('crash consistency: SIGKILL during ingest of 200 instances', () => {
  const fixtures = tempDir('pacs-edge-crash-fixtures-');
  let study: { file: string; uid: string }[];
  beforeAll(() => {
    study = writeStudy(fixtures.dir, COUNT, { rows: 64, cols: 64 });
  });
  afterAll(() => fixtures.cleanup());

  const results: string[] = [];
  afterAll(() => console.log(`crash points:\n  ${results.join('\n  ')}`));

  for (const point of POINTS) {
    it(`every acknowledged instance survives: ${point.name}`, async () => {
      const tmp = tempDir();
      try {
        const gw = await startGateway({ dir: tmp.dir, env: point.crashpoint ? { PACS_EDGE_CRASHPOINT: point.crashpoint } : {}, config: { log: { level: 'info' } } });
        const sending = storescu({ port: gw.port, files: study.map((s) => s.file), timeoutMs: 60_000 });
        if (point.killAfterMs !== undefined) {
          await new Promise((r) => setTimeout(r, point.killAfterMs));
          await gw.kill();
        }
        const sent = await sending;
        await gw.exited;
        expect(gw.proc.signalCode, 'the gateway died of SIGKILL').toBe('SIGKILL');
        const acked = sent.acked.map((id) => study[id - 1]!);

        // Restart on the same spool: recovery runs, then stop it cleanly.
        const again = await startGateway({ dir: tmp.dir, port: undefined, config: { log: { level: 'info' } } });
        const recovered = await again.waitForLog((l) => l.msg === 'spool recovered');
        expect(recovered.lost, 'recovery lost no acknowledged object').toBe(0);
        const stopCode = await again.stop();
        expect(stopCode, `clean stop (signal ${again.proc.signalCode}); output:\n${again.output().slice(-1500)}`).toBe(0);

        const pool = new HashPool(1);
        const spool = new LevelSpool({ dir: path.join(tmp.dir, 'spool'), destinations: [], minFreeBytes: 0, maxBytes: 0, verifyOnStart: 'sha256', hashPool: pool, log: pino({ level: 'silent' }) });
        const report = await spool.open();
        try {
          expect(report.lost).toEqual([]);
          for (const a of acked) {
            const rec = await spool.find(a.uid);
            expect(rec, `acknowledged ${path.basename(a.file)} is in the spool`).toBeDefined();
            const chunks: Buffer[] = [];
            for await (const c of await spool.read(rec!.id)) chunks.push(c as Buffer);
            expect(datasetBytes(Buffer.concat(chunks)).equals(datasetBytes(a.file)), `${path.basename(a.file)} intact`).toBe(true);
          }
          const extra = spool.stats().objects - acked.length;
          expect(extra, 'at most the one object in flight is kept without an acknowledgement').toBeLessThanOrEqual(1);
          expect(readdirSync(path.join(tmp.dir, 'spool', 'objects')).filter((n) => n.endsWith('.part'))).toEqual([]);
          results.push(`${point.name}: ${acked.length} acknowledged, all present; ${extra} unacknowledged kept; recovery discarded ${recovered.discardedPartials} partial(s)`);
        } finally {
          await spool.close();
          await pool.close();
        }
      } finally {
        tmp.cleanup();
      }
    });
  }
});
