import { mkdirSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { type GatewayProcess, type LogLine, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';
import { echoOk, faultSeed, gatewayStatus, pacsContents, prng, sleep, startSlowLink } from './fault-kit.js';

/**
 * Fault 01: the gateway is SIGKILLed at random instants while a modality sends without pause
 * and the gateway forwards to a PACS, and restarted at once on the same port and spool each
 * time. The kills land wherever the gateway happens to be: mid-reception, in a commit, mid
 * C-STORE to the PACS, between a delivery and its (lazily synced) confirmation, in a
 * compression-at-rest replacement (`spool.compressAtRest` stays on), in start-up recovery's
 * wake. Afterwards every instance the modality saw acknowledged must be at the PACS with the
 * very data set that was sent (`compression: none`: the destination gets the received syntax,
 * decoded from the at-rest copy when there is one, so the bytes compare directly).
 *
 * Modality: DCMTK storescu, batches of 64 distinct 64×64 instances, one process per batch; a
 * storescu cut off by a kill just ends, and what it saw acknowledged is parsed from its output.
 * Unacknowledged instances are not re-sent (they may still reach the PACS: counted apart).
 * Modality pauses now and then between batches. PACS: DCMTK storescp `--fork`, one file per
 * reception (`+uf`), so duplicates can be counted, behind a slow link (below).
 */
const CHAOS = process.env.PACS_EDGE_CHAOS === '1';
const KILLS = CHAOS ? 200 : 30;
const BATCH = 64;
/** Upper bound on instances sent, whatever the speed of the machine. */
const MAX_INSTANCES = CHAOS ? 30_000 : 8_000;
const SEED = faultSeed();
/**
 * The PACS sits behind a link slower than the modality (400 kB/s, about 45 of these objects a
 * second), so objects wait in the spool and get compressed at rest (in the modality's pauses),
 * and the kills also hit those replacements and their recovery. The link is fast again once
 * the kills are over, for the drain.
 */
const LINK_BYTES_PER_SECOND = 400_000;

describe('fault 01: SIGKILL at random instants during continuous ingest + forward', () => {
  afterAll(() => console.log(`fault 01 seed ${SEED} (replay with PACS_EDGE_FAULT_SEED=${SEED})`));

  it(`${KILLS} kills: every acknowledged instance reaches the PACS intact, the gateway ends healthy`, { timeout: (KILLS * 4 + 120) * 1000 }, async () => {
    console.log(`fault 01: seed ${SEED}, ${KILLS} kills`);
    const rand = prng(SEED);
    const tmp = tempDir('pacs-edge-fault01-');
    const fixtures = path.join(tmp.dir, 'fixtures');
    const pacsDir = path.join(tmp.dir, 'pacs');
    const gwDir = path.join(tmp.dir, 'gw');
    for (const d of [fixtures, pacsDir, gwDir]) mkdirSync(d);
    const pacs = await startStorescp(pacsDir, 'PACS', { fork: true, uniqueFilenames: true });
    const link = await startSlowLink(pacs.port, LINK_BYTES_PER_SECOND);
    const config = {
      log: { level: 'info' },
      forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: link.port, compression: 'none' }],
      forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
    };
    // Disk pressure (free space under 4 × minFreeBytes) keeps compression at rest running for a
    // destination with compression: none (src/compress/at-rest.ts): its replacements are killed too.
    const fsNow = statfsSync(path.dirname(gwDir));
    const spool = { minFreeBytes: Math.floor((fsNow.bavail * fsNow.bsize) / 3) };
    let gw: GatewayProcess = await startGateway({ dir: gwDir, config, spool });
    const port = gw.port;
    const spoolDir = gw.spoolDir;
    const allLogs: LogLine[][] = [gw.logs];

    /** Every instance sent (UID → fixture file) and the ones storescu saw acknowledged. */
    const sent = new Map<string, string>();
    const acked = new Set<string>();
    let stop = false;
    /** A storescu is mid-transfer (the kills count how often they cut one off). */
    let sending = false;
    let batches = 0;
    let cutOff = 0;
    // The modality's own PRNG stream, so the kill schedule does not depend on how many batches ran.
    const modalityRand = prng(SEED ^ 0x9e3779b9);
    const modality = (async () => {
      let study: { file: string; uid: string }[] | undefined;
      while (!stop) {
        if (!study) {
          if (sent.size >= MAX_INSTANCES) {
            await sleep(100);
            continue;
          }
          const dir = path.join(fixtures, `b${String(batches++).padStart(5, '0')}`);
          mkdirSync(dir);
          study = writeStudy(dir, BATCH, { rows: 64, cols: 64 });
        }
        sending = true;
        const r = await storescu({ port, files: study.map((s) => s.file), timeoutMs: 30_000 }).finally(() => (sending = false));
        if (!/Sending Store Request/.test(r.stdout + r.stderr)) {
          // No association (the gateway is restarting): nothing of this batch left; same batch again.
          await sleep(30);
          continue;
        }
        for (const s of study) sent.set(s.uid, s.file);
        for (const id of r.acked) acked.add(study[id - 1]!.uid);
        if (r.acked.length < BATCH) cutOff++;
        study = undefined;
        // Now and then a pause between series: a quiet moment in which the spool compresses at rest.
        if (modalityRand.next() < 0.25) await sleep(modalityRand.between(200, 1200));
      }
    })();

    // Compression-at-rest replacements done by each gateway run (read shortly before it dies).
    let atRestDone = 0;
    let atRestSeen = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const s = await gatewayStatus(spoolDir);
        if (s?.spool.compressAtRest) atRestSeen = Math.max(atRestSeen, s.spool.compressAtRest.compressed);
        await sleep(200);
      }
    })();

    let longestRecoveryMs = 0;
    /** Kills that found data in flight: a storescu mid-transfer, or objects queued for the PACS. */
    const inFlight = { ingest: 0, forwardOnly: 0, neither: 0 };
    try {
      for (let k = 1; k <= KILLS; k++) {
        await sleep(rand.between(300, 2000));
        const pending = ((await gatewayStatus(spoolDir))?.destinations ?? []).reduce((n, d) => n + d.pending, 0);
        if (sending) inFlight.ingest++;
        else if (pending > 0) inFlight.forwardOnly++;
        else inFlight.neither++;
        const t0 = performance.now();
        await gw.kill();
        expect(gw.proc.signalCode).toBe('SIGKILL');
        atRestDone += atRestSeen;
        atRestSeen = 0;
        gw = await startGateway({ dir: gwDir, config, port, spool });
        allLogs.push(gw.logs);
        await waitFor(() => echoOk(port, 'PACS_EDGE'), { what: `C-ECHO after restart ${k}`, timeoutMs: 30_000, intervalMs: 20 });
        longestRecoveryMs = Math.max(longestRecoveryMs, performance.now() - t0);
      }
      stop = true;
      await modality;
      // The link is fast again for the drain (the backlog would otherwise take a minute).
      link.setRate(Infinity);
      await waitFor(() => gatewayStatus(spoolDir).then((s) => s?.destinations.every((d) => d.pending === 0) || undefined), {
        what: 'the queue to drain after the last restart',
        timeoutMs: 120_000,
        intervalMs: 250,
      });
      const final = (await gatewayStatus(spoolDir))!;
      atRestDone += Math.max(atRestSeen, final.spool.compressAtRest?.compressed ?? 0);
      polling = false;
      await poller;
      expect(final.destinations).toEqual([expect.objectContaining({ name: 'pacs', pending: 0, deadLetter: 0 })]);
      expect(await gw.stop(), 'clean stop after the run').toBe(0);

      const logs = allLogs.flat();
      const lostInSpool = logs.filter((l) => l.msg === 'acknowledged object lost from the spool');
      const rewritesHit = logs.filter((l) => l.msg === 'interrupted compressions at rest completed or undone').reduce((n, l) => n + Number(l.finished ?? 0) + Number(l.undone ?? 0), 0);
      const discarded = logs.filter((l) => l.msg === 'unacknowledged object discarded: a crash came before its data was durable').length;

      const at = pacsContents(pacsDir, sent);
      const lost = [...acked].filter((u) => !at.complete.has(u));
      const duplicated = [...at.complete.values()].reduce((n, c) => n + c - 1, 0);
      const unackedDelivered = [...at.complete.keys()].filter((u) => !acked.has(u)).length;
      const summary =
        `${KILLS} kills, ${sent.size} sent in ${batches} storescu runs (${cutOff} cut off), ${acked.size} acknowledged, ${lost.length} lost, ` +
        `${duplicated} duplicate receptions, ${unackedDelivered} unacknowledged also delivered, ${at.partial} partial files, ` +
        `${atRestDone} compressions at rest, ${rewritesHit} interrupted ones finished/undone by recovery, ${discarded} unacknowledged discarded by recovery, ` +
        `longest kill → C-ECHO ${(longestRecoveryMs / 1000).toFixed(2)} s`;
      console.log(`fault 01: ${summary}`);
      recordFault({
        key: '01-sigkill-ingest-forward',
        fault: `SIGKILL at random instants during continuous ingest + forward (seed ${SEED})`,
        test: 'test/faults/sigkill-continuous.integration.test.ts',
        injected: KILLS,
        acknowledged: acked.size,
        lost: lost.length + at.differing.length,
        duplicated,
        recoverySeconds: Math.round(longestRecoveryMs / 100) / 10,
        notes:
          `${sent.size} instances (64×64) from storescu in batches of ${BATCH}, kills every 0.3–2 s (${inFlight.ingest} mid-transfer, ${inFlight.forwardOnly} with only forwarding in flight), restart at once; PACS behind a 400 kB/s link; every acknowledged data set byte-identical at storescp; ` +
          `${unackedDelivered} unacknowledged also delivered; ${atRestDone} compressions at rest, ${rewritesHit} interrupted and completed/undone by recovery; ` +
          `end: 0 pending, 0 dead letters`,
      });
      expect(inFlight.neither, 'kills that found no data in flight (no storescu sending, nothing queued for the PACS)').toBe(0);
      expect(inFlight.ingest, 'kills that cut a storescu transfer off').toBeGreaterThan(0);
      expect(lostInSpool, 'recovery found acknowledged objects lost from the spool').toEqual([]);
      expect(at.foreign, 'PACS files of instances never sent').toEqual([]);
      expect(at.differing, 'PACS files whose data set differs from what was sent').toEqual([]);
      expect(lost, 'acknowledged instances missing at the PACS').toEqual([]);
      expect(acked.size).toBeGreaterThan(0);
    } finally {
      stop = true;
      polling = false;
      await modality.catch(() => undefined);
      await poller.catch(() => undefined);
      await gw.kill().catch(() => undefined);
      await link.close();
      await pacs.stop();
      tmp.cleanup();
    }
  });
});
