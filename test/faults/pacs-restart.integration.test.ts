import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';
import { faultSeed, gatewayStatus, pacsContents, prng, sleep, startKillableStorescp } from './fault-kit.js';

/**
 * Fault 02: the PACS (DCMTK storescp `--fork`, the listener and the children serving the
 * associations) is SIGKILLed 10 times while the gateway forwards a study to it on two parallel
 * associations, and restarted on the same port after a short random gap. Each kill comes after
 * a seeded number of new receptions since the PACS (re)started, so it lands while objects are
 * on the wire: connections are reset mid-object, mid-response, mid-negotiation, and the
 * gateway also finds the port closed for a while.
 *
 * A reset is transient: at the end nothing may be lost or dead-lettered, and every object at
 * the PACS must carry exactly the data set that was sent. storescp (+B) writes a reception's
 * file as the data arrives, so a killed reception leaves a file that is a strict prefix of the
 * object; the PACS never answered C-STORE for it, the gateway sent the object again, and such
 * files are not objects the PACS stored: they are counted (`partial`) and otherwise left out.
 * Each must be a prefix of the sent data set; anything else not byte-identical fails the test.
 */
const COUNT = 360;
const KILLS = 10;
const SEED = faultSeed();

describe('fault 02: the PACS killed and restarted during a transfer', () => {
  afterAll(() => console.log(`fault 02 seed ${SEED} (replay with PACS_EDGE_FAULT_SEED=${SEED})`));

  it(`${KILLS} PACS kills while ${COUNT} instances are forwarded on 2 associations: 0 lost, 0 dead letters`, { timeout: 170_000 }, async () => {
    console.log(`fault 02: seed ${SEED}`);
    const rand = prng(SEED);
    const tmp = tempDir('pacs-edge-fault02-');
    const fixtures = path.join(tmp.dir, 'fixtures');
    const pacsDir = path.join(tmp.dir, 'pacs');
    const gwDir = path.join(tmp.dir, 'gw');
    for (const d of [fixtures, pacsDir, gwDir]) mkdirSync(d);
    // 256×256 16-bit: 128 KiB each, so that several PDUs of an object are in flight when the PACS dies.
    const study = writeStudy(fixtures, COUNT, { rows: 256, cols: 256 });
    const sent = new Map(study.map((s) => [s.uid, s.file]));
    const pacsPort = await freePort();
    let pacs = await startKillableStorescp(pacsDir, 'PACS', pacsPort);
    const gw = await startGateway({
      dir: gwDir,
      config: {
        log: { level: 'info' },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none', associations: 2 }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 10 },
      },
    });
    const files = () => readdirSync(pacsDir).length;
    const sentCount = async () => (await gatewayStatus(gw.spoolDir))?.destinations[0]?.sent ?? 0;
    try {
      const sending = storescu({ port: gw.port, files: study.map((s) => s.file), timeoutMs: 120_000 });
      let longestRecoveryMs = 0;
      const gaps: number[] = [];
      for (let k = 1; k <= KILLS; k++) {
        // Kill after a seeded number of new receptions (or 10 s without any: then it is down anyway).
        const threshold = files() + Math.round(rand.between(3, 20));
        const until = Date.now() + 10_000;
        while (files() < threshold && Date.now() < until) await sleep(10);
        await pacs.kill();
        const gap = Math.round(rand.between(150, 1500));
        gaps.push(gap);
        await sleep(gap);
        const before = await sentCount();
        // Recovery: from the PACS's restart to the gateway's next confirmed delivery.
        const up = performance.now();
        pacs = await startKillableStorescp(pacsDir, 'PACS', pacsPort);
        await waitFor(async () => (await sentCount()) > before || undefined, { what: `a delivery after PACS restart ${k}`, timeoutMs: 30_000, intervalMs: 20 });
        longestRecoveryMs = Math.max(longestRecoveryMs, performance.now() - up);
      }
      const r = await sending;
      const acked = new Set(r.acked.map((id) => study[id - 1]!.uid));
      expect(acked.size, 'the gateway acknowledged every instance (its receive side is not affected)').toBe(COUNT);
      await waitFor(() => gatewayStatus(gw.spoolDir).then((s) => s?.destinations.every((d) => d.pending === 0) || undefined), {
        what: 'the queue to drain',
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      const final = (await gatewayStatus(gw.spoolDir))!;
      expect(final.destinations).toEqual([expect.objectContaining({ name: 'pacs', pending: 0, deadLetter: 0, state: 'up' })]);
      const atRest = final.spool.compressAtRest?.compressed ?? 0;
      const logs = gw.logs;
      const deadLettered = logs.filter((l) => l.msg.startsWith('object dead-lettered'));
      const retries = logs.filter((l) => l.msg === 'delivery failed, will retry' || l.msg === 'destination unreachable, will retry');
      const reasons = [...new Set(retries.map((l) => String(l.reason).split(':')[0]))].sort();

      const at = pacsContents(pacsDir, sent);
      const lost = [...acked].filter((u) => !at.complete.has(u));
      const duplicated = [...at.complete.values()].reduce((n, c) => n + c - 1, 0);
      const summary =
        `${KILLS} PACS kills (gaps ${gaps.join('/')} ms), ${acked.size} acknowledged, ${lost.length} lost, ${duplicated} duplicate receptions, ` +
        `${at.partial} partial files of killed receptions, ${retries.length} failed attempts retried (${reasons.join(', ')}), ` +
        `${deadLettered.length} dead letters, ${atRest} compressed at rest (sent decoded), longest restart → next delivery ${(longestRecoveryMs / 1000).toFixed(2)} s`;
      console.log(`fault 02: ${summary}`);
      recordFault({
        key: '02-pacs-restart',
        fault: 'PACS (storescp) killed and restarted 10× during a transfer',
        test: 'test/faults/pacs-restart.integration.test.ts',
        injected: KILLS,
        acknowledged: acked.size,
        lost: lost.length + at.differing.length,
        duplicated,
        recoverySeconds: Math.round(longestRecoveryMs / 100) / 10,
        notes:
          `${COUNT} instances (256×256) on 2 associations, storescp and its forked children SIGKILLed after 3–20 new receptions, back after 0.15–1.5 s (seed ${SEED}); ` +
          `retry backoff 0.2–1 s; ${retries.length} failed attempts retried (${reasons.join(', ')}), 0 dead letters; every data set byte-identical at storescp; ` +
          `${atRest} compressed at rest meanwhile and sent decoded; ${at.partial} partial files of killed receptions left out (strict prefixes of the object, never answered)`,
      });
      expect(deadLettered, 'a reset is transient: nothing dead-lettered').toEqual([]);
      expect(at.foreign, 'PACS files of instances never sent').toEqual([]);
      expect(at.differing, 'PACS files whose data set differs from what was sent (and is no prefix of it)').toEqual([]);
      expect(lost, 'acknowledged instances missing at the PACS').toEqual([]);
      expect(await gw.stop(), 'clean stop after the run').toBe(0);
    } finally {
      await gw.kill();
      await pacs.stop();
      tmp.cleanup();
    }
  });
});
