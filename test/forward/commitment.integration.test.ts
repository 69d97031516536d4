import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CT_IMAGE_STORAGE, writeStudy } from '../helpers/dicom-builder.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { controlGet } from '../../src/health/control-server.js';
import { type Orthanc, ORTHANC, ORTHANC_HOW, startOrthanc } from '../helpers/orthanc.js';
import { freePort, type GatewayProcess, nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * Storage Commitment with a real peer in both roles: Orthanc (Debian `orthanc`) is the PACS the
 * gateway asks to commit (N-ACTION; Orthanc reports on a new association, as IHE RAD-10
 * expects), and the requesting "modality" that asks the gateway to commit what it received.
 */
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 10, maxAttempts: 3 };

interface Status {
  destinations: { name: string; pending: number; deadLetter: number; commitment?: { committed: number; failed: number; requested: number; waiting: number } }[];
  commitment?: { requests: number; reported: number; committed: number; failed: number };
}
const statusOf = (gw: GatewayProcess) => controlGet(path.join(gw.spoolDir, 'control.sock'), '/status') as Promise<Status>;

const WHAT = 'storage commitment: gateway → Orthanc (SCU), Orthanc → gateway (SCP)';

describe.skipIf(skipSuite(WHAT, missingTools({ [ORTHANC]: ORTHANC_HOW })))(WHAT, () => {
  const tmp = tempDir('pacs-edge-commit-');
  let orthanc: Orthanc;
  let gw: GatewayProcess;
  /** A second gateway reporting only what it has forwarded (receive.commitment.report: forwarded). */
  let gw2Port: number;
  let study: { file: string; uid: string }[];
  /** One instance Orthanc deletes as soon as it has stored it: its commitment must fail. */
  let vanishing: { file: string; uid: string };

  beforeAll(async () => {
    mkdirSync(path.join(tmp.dir, 'study'));
    study = writeStudy(path.join(tmp.dir, 'study'), 12, { rows: 32, cols: 32 });
    vanishing = study[5]!;
    const gwPort = await freePort();
    gw2Port = await freePort();
    const lua = path.join(tmp.dir, 'vanish.lua');
    // Orthanc's Lua hook: the instance is acknowledged to the gateway, then deleted.
    writeFileSync(lua, `function OnStoredInstance(id, tags, metadata)\n  if tags.SOPInstanceUID == '${vanishing.uid}' then Delete(id) end\nend\n`);
    mkdirSync(path.join(tmp.dir, 'orthanc'));
    orthanc = await startOrthanc(path.join(tmp.dir, 'orthanc'), {
      LuaScripts: [lua],
      // The gateway as a modality Orthanc knows: it reports commitments to it, and asks it to commit.
      DicomModalities: { edge: ['PACS_EDGE', '127.0.0.1', gwPort], edge2: ['EDGE2', '127.0.0.1', gw2Port] },
    });
    gw = await startGateway({
      dir: tmp.dir,
      port: gwPort,
      // Orthanc asks us as a modality (and is told where to get its report); storescu sends.
      receive: { callers: [{ aeTitle: 'STORESCU' }, { aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.port }] },
      spool: { compressAtRest: false },
      config: {
        forward: [{ name: 'orthanc', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.port, compression: 'none', commit: true }],
        forwarding: { ...FAST, commitTimeoutSeconds: 60 },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    await orthanc?.stop();
    tmp.cleanup();
  });

  it('keeps each object until Orthanc commits it; the one Orthanc lost is re-sent, then dead-lettered with the reason', async () => {
    const r = await storescu({ port: gw.port, files: study.map((s) => s.file) });
    expect(r.acked).toHaveLength(study.length);
    // Committed objects leave the spool; the vanishing one is sent maxAttempts (3) times, then dead-lettered.
    await waitFor(() => nothingPending(gw.spoolDir), { what: 'every object committed or dead-lettered', timeoutMs: 60_000 });
    const s = await statusOf(gw);
    const d = s.destinations.find((x) => x.name === 'orthanc')!;
    expect(d.commitment).toMatchObject({ committed: study.length - 1, requested: 0, waiting: 0 });
    expect(d.commitment!.failed).toBe(3);
    expect(d.deadLetter).toBe(1);
    const letters = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/dead-letters')) as { sopInstanceUid: string; reason: string }[];
    expect(letters).toHaveLength(1);
    expect(letters[0]!.sopInstanceUid).toBe(vanishing.uid);
    expect(letters[0]!.reason).toMatch(/gave up after 3 attempts: storage commitment failed: 0x0[0-9A-F]{3}/);
    // Orthanc has every other instance; the reports came on new associations from Orthanc.
    expect(await orthanc.storedCount()).toBe(study.length - 1);
    // A report naming the vanished instance as failed (0x0112, No such object instance).
    await gw.waitForLog((l) => l.msg.startsWith('storage commitment: some objects not committed'));
    await gw.waitForLog((l) => l.msg === 'association accepted' && l.callingAe === 'ORTHANC');
  }, 90_000);

  it('answers Orthanc as a requesting modality: committed for what it holds, failed (0x0112) for what it never received', async () => {
    const unknown = { SOPClassUID: CT_IMAGE_STORAGE, SOPInstanceUID: '1.2.826.0.1.3680043.9.9999.1' };
    const asked = [...study.slice(0, 4).map((s) => ({ SOPClassUID: CT_IMAGE_STORAGE, SOPInstanceUID: s.uid })), unknown];
    const tx = (await orthanc.rest('/modalities/edge/storage-commitment', JSON.stringify({ DicomInstances: asked }))) as { ID: string };
    const result = await waitFor(
      async () => {
        const r = (await orthanc.rest(`/storage-commitment/${tx.ID}`)) as { Status: string; Success: unknown[]; Failures: { SOPInstanceUID: string; FailureReason: number }[] };
        return r.Status !== 'Pending' ? r : undefined;
      },
      { what: 'Orthanc to receive the storage commitment report', timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(result.Status).toBe('Failure'); // at least one failure
    expect(result.Success).toHaveLength(4);
    expect(result.Failures).toHaveLength(1);
    expect(result.Failures[0]).toMatchObject({ SOPClassUID: CT_IMAGE_STORAGE, SOPInstanceUID: unknown.SOPInstanceUID, FailureReason: 0x0112 });
    // Orthanc shows the result as soon as it has read the report; the gateway counts it once
    // Orthanc's N-EVENT-REPORT-RSP is back, a moment later.
    await gw.waitForLog((l) => l.msg === 'storage commitment reported to modality' && l.committed === 4 && l.failed === 1);
    const s = await statusOf(gw);
    expect(s.commitment).toMatchObject({ requests: 1, reported: 1, committed: 4, failed: 1 });
  }, 60_000);

  it('with report: forwarded, reports only once the objects reached the PACS', async () => {
    const dir = path.join(tmp.dir, 'gw2');
    const pacsDir = path.join(dir, 'pacs');
    mkdirSync(pacsDir, { recursive: true });
    const pacsPort = await freePort();
    const gw2 = await startGateway({
      dir,
      port: gw2Port,
      receive: { aeTitle: 'EDGE2', callers: [{ aeTitle: 'STORESCU' }, { aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.port }], commitment: { report: 'forwarded', timeoutSeconds: 60 } },
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: FAST },
    });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const three = study.slice(6, 9);
      expect((await storescu({ port: gw2.port, calledAe: 'EDGE2', files: three.map((s) => s.file) })).acked).toHaveLength(3);
      const tx = (await orthanc.rest('/modalities/edge2/storage-commitment', JSON.stringify({ DicomInstances: three.map((s) => ({ SOPClassUID: CT_IMAGE_STORAGE, SOPInstanceUID: s.uid })) }))) as { ID: string };
      const state = async () => (await orthanc.rest(`/storage-commitment/${tx.ID}`)) as { Status: string; Success: unknown[]; Failures: unknown[] };
      // The PACS is down: held in the spool is not enough in this mode, so no report yet.
      await gw2.waitForLog((l) => l.msg === 'storage commitment requested by modality' && l.report === 'forwarded');
      await new Promise((r) => setTimeout(r, 2500));
      expect((await state()).Status).toBe('Pending');
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      const done = await waitFor(async () => ((await state()).Status !== 'Pending' ? state() : undefined), { what: 'the report after forwarding', timeoutMs: 30_000, intervalMs: 250 });
      expect(done).toMatchObject({ Status: 'Success', Failures: [] });
      expect(done.Success).toHaveLength(3);
      expect(await nothingPending(gw2.spoolDir)).toBe(true);
    } finally {
      await gw2.stop();
      await pacs?.stop();
    }
  }, 90_000);
});
