import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { crashPoints } from '../helpers/crash-points.js';
import { CLI, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * Crash consistency end to end: the gateway is SIGKILLed while storescu sends 300 instances and
 * the gateway forwards them to a PACS (DCMTK storescp, one file per reception). After a restart,
 * every instance storescu saw acknowledged must reach the PACS; re-sends after the crash are
 * allowed (the PACS deduplicates) and counted.
 */
const COUNT = 300;
const POINTS = crashPoints(
  [
    ['mid-data', 41],
    ['after-data-fsync', 77],
    ['after-index', 113],
    ['before-response', 149],
    ['after-response', 187],
  ],
  [150, 400, 700, 1100, 1600],
);

describe('crash consistency: SIGKILL during ingest + forward of 300 instances', () => {
  const fixtures = tempDir('pacs-edge-fwcrash-fixtures-');
  let study: { file: string; uid: string }[];
  const results: string[] = [];
  beforeAll(() => {
    study = writeStudy(fixtures.dir, COUNT, { rows: 64, cols: 64 });
  });
  afterAll(() => {
    fixtures.cleanup();
    console.log(`ingest + forward crash points:\n  ${results.join('\n  ')}`);
  });

  for (const point of POINTS) {
    it(`every acknowledged instance reaches the PACS: ${point.name}`, async () => {
      const tmp = tempDir();
      const pacsDir = path.join(tmp.dir, 'pacs');
      mkdirSync(pacsDir);
      const pacs = await startStorescp(pacsDir, 'PACS', { fork: true, uniqueFilenames: true });
      const config = {
        log: { level: 'info' },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      };
      try {
        const gw = await startGateway({ dir: tmp.dir, config, env: point.crashpoint ? { PACS_EDGE_CRASHPOINT: point.crashpoint } : {} });
        const sending = storescu({ port: gw.port, files: study.map((s) => s.file), timeoutMs: 60_000 });
        if (point.killAfterMs !== undefined) {
          await new Promise((r) => setTimeout(r, point.killAfterMs));
          await gw.kill();
        }
        const sent = await sending;
        await gw.exited;
        expect(gw.proc.signalCode).toBe('SIGKILL');
        const acked = new Set(sent.acked.map((id) => study[id - 1]!.uid));

        const again = await startGateway({ dir: tmp.dir, config });
        try {
          await waitFor(
            async () => {
              const s = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', again.configFile, '--json'])).stdout);
              return s.destinations[0].pending === 0 || undefined;
            },
            { what: 'the queue to drain after the restart', timeoutMs: 60_000 },
          );
        } finally {
          expect(await again.stop()).toBe(0);
        }
        const receptions = new Map<string, number>();
        for (const n of readdirSync(pacsDir)) {
          const h = readPart10Header(readFileSync(path.join(pacsDir, n)));
          if (h) receptions.set(h.sopInstanceUid, (receptions.get(h.sopInstanceUid) ?? 0) + 1);
        }
        const missing = [...acked].filter((u) => !receptions.has(u));
        expect(missing, 'acknowledged instances missing at the PACS').toEqual([]);
        const duplicates = [...receptions.values()].reduce((a, n) => a + n - 1, 0);
        results.push(`${point.name}: ${acked.size} acknowledged, all at the PACS; ${duplicates} duplicate send(s); ${receptions.size - acked.size} unacknowledged also delivered`);
      } finally {
        await pacs.stop();
        tmp.cleanup();
      }
    });
  }
});
