import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { stopVerifyReadTrail } from '../helpers/audit-trail.js';
import { echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { type Broker, record, startMosquitto } from '../helpers/mosquitto.js';
import { freePort, type GatewayProcess, nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { skipSuite } from '../helpers/requirements.js';
import { freeBytes, missingTmpfs, mountTmpfs, unmountTmpfs } from '../helpers/tmpfs.js';

/**
 * Action on audit failure (MLPS 2.0 level 3, audit.onFailure). The audit trail lives on a 2 MiB
 * tmpfs of its own, mounted for the test (root; CI is root), which is filled to the last byte
 * while the gateway runs. The modality is DCMTK storescu/echoscu, the PACS DCMTK storescp, MQTT
 * a real Mosquitto.
 *
 * refuse (the default): while the trail cannot write, every new association gets a transient
 * A-ASSOCIATE-RJ (source service-user, reason no-reason-given), an MQTT `audit-failure` event is
 * raised and status/metrics say so; once space is back the gateway accepts again by itself,
 * the trail verifies with 110133/110134 in it, and every acknowledged image reached the PACS.
 * alarm: associations go on while the trail is failing; their records wait in memory and are
 * written, in order, once the disk takes them.
 */
const VOLUME = '2m';

describe.skipIf(skipSuite('the audit-failure test', missingTmpfs()))('audit trail on a full disk (2 MiB tmpfs)', () => {
  const tmp = tempDir('pacs-edge-audit-failure-');
  const mounted: string[] = [];
  let broker: Broker;
  let pacs: Awaited<ReturnType<typeof startStorescp>>;
  const pacsDir = path.join(tmp.dir, 'pacs');
  let gw: GatewayProcess | undefined;

  beforeAll(async () => {
    mkdirSync(pacsDir);
    broker = await startMosquitto(tmp.dir);
    pacs = await startStorescp(pacsDir, 'PACS');
  });
  afterAll(async () => {
    await gw?.kill();
    await pacs?.stop();
    await broker?.stop();
    for (const m of mounted) unmountTmpfs(m);
    tmp.cleanup();
  });

  /** Fill the volume to the last byte (dd stops at ENOSPC). */
  const fill = (vol: string): string => {
    const filler = path.join(vol, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
    expect(freeBytes(vol)).toBeLessThan(64 * 1024);
    return filler;
  };
  const status = async (g: GatewayProcess) => (await controlGet(path.join(g.spoolDir, 'control.sock'), '/status')) as { audit: { state: string; reason: string | null; onFailure: string; queuedRecords: number } };

  async function gateway(name: string, onFailure: 'refuse' | 'alarm') {
    const dir = path.join(tmp.dir, name);
    const auditDir = path.join(dir, 'audit-volume');
    mountTmpfs(auditDir, VOLUME);
    mounted.push(auditDir);
    const metricsPort = await freePort();
    gw = await startGateway({
      dir,
      config: {
        device: { id: `edge-${name}` },
        audit: { dir: auditDir, onFailure },
        health: { mqtt: { url: broker.url, intervalSeconds: 1 }, metrics: { port: metricsPort } },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      },
    });
    const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const study = (n: number) => {
      const d = path.join(dir, `study-${Math.random().toString(36).slice(2)}`);
      mkdirSync(d);
      return writeStudy(d, n);
    };
    return { gw, dir, auditDir, metrics, study };
  }

  it('refuse: storescu and echoscu get a transient A-ASSOCIATE-RJ while the trail cannot write; after space returns they are accepted, the trail verifies, nothing acknowledged is lost', async () => {
    const events = await record(broker.url, 'pacs-edge/edge-refuse/events');
    const g = await gateway('refuse', 'refuse');
    const acked: string[] = [];
    const before = g.study(2);
    const r1 = await storescu({ port: g.gw.port, files: before.map((s) => s.file) });
    expect(r1.acked).toEqual([1, 2]);
    acked.push(...before.map((s) => s.uid));
    expect((await status(g.gw)).audit).toMatchObject({ state: 'ok', onFailure: 'refuse' });

    const filler = fill(g.auditDir);
    await waitFor(() => events.messages.some((m) => JSON.parse(m.text).type === 'audit-failure'), { what: 'the MQTT audit-failure event', timeoutMs: 20_000 });
    const failing = (await status(g.gw)).audit;
    expect(failing.state).toBe('failing');
    expect(failing.reason).toMatch(/bytes free|ENOSPC/);
    expect(await g.metrics()).toMatch(/^pacs_edge_audit_recording 0$/m);

    const refused = await storescu({ port: g.gw.port, files: g.study(1).map((s) => s.file) });
    expect(refused.acked).toEqual([]);
    expect(refused.stdout + refused.stderr).toMatch(/Rejected Transient/i);
    expect(refused.stdout + refused.stderr).toMatch(/Service User/i);
    const echo = await echoscu(g.gw.port);
    expect(echo.code).not.toBe(0);
    expect(echo.stdout + echo.stderr).toMatch(/Rejected Transient/i);
    await g.gw.waitForLog((l) => l.msg === 'association rejected (transient): the audit trail cannot be written (audit.onFailure: refuse)');
    expect(g.gw.logs.some((l) => l.msg.startsWith('AUDIT FAILURE: audit records cannot be written'))).toBe(true);

    rmSync(filler);
    await waitFor(() => events.messages.some((m) => JSON.parse(m.text).type === 'audit-recovered'), { what: 'the MQTT audit-recovered event', timeoutMs: 20_000 });
    expect((await status(g.gw)).audit.state).toBe('ok');
    expect(await g.metrics()).toMatch(/^pacs_edge_audit_recording 1$/m);
    expect((await echoscu(g.gw.port)).code).toBe(0);
    const after = g.study(2);
    const r2 = await storescu({ port: g.gw.port, files: after.map((s) => s.file) });
    expect(r2.acked).toEqual([1, 2]);
    acked.push(...after.map((s) => s.uid));

    await waitFor(() => nothingPending(g.gw.spoolDir), { what: 'everything delivered' });
    const atPacs = readdirSync(pacsDir).join('\n');
    for (const uid of acked) expect(atPacs).toContain(uid);
    const text = await stopVerifyReadTrail(g.gw, g.auditDir);
    gw = undefined;
    expect(text).toContain('110133');
    expect(text.indexOf('110134')).toBeGreaterThan(text.indexOf('110133'));
    // The refusals themselves were not queued as records one by one (a retrying caller would fill memory).
    expect(text).not.toContain('audit trail cannot be written');
    await events.close();
  });

  it('alarm: associations go on while the trail is failing; their records are written once the disk is back, and the start says the trail may have gaps', async () => {
    const events = await record(broker.url, 'pacs-edge/edge-alarm/events');
    const g = await gateway('alarm', 'alarm');
    await g.gw.waitForLog((l) => l.msg.startsWith('audit.onFailure is alarm'));
    const filler = fill(g.auditDir);
    await waitFor(async () => (await status(g.gw)).audit.state === 'failing', { what: 'the trail failing', timeoutMs: 20_000 });
    const files = g.study(2);
    const r = await storescu({ port: g.gw.port, files: files.map((s) => s.file) });
    expect(r.acked).toEqual([1, 2]);
    // The association's record (110104, per study) waits in memory.
    await waitFor(async () => (await status(g.gw)).audit.queuedRecords > 1, { what: 'records queued in memory' });
    expect(events.messages.some((m) => JSON.parse(m.text).type === 'audit-failure')).toBe(true);
    rmSync(filler);
    await waitFor(async () => (await status(g.gw)).audit.state === 'ok' && (await status(g.gw)).audit.queuedRecords === 0, { what: 'the queue written', timeoutMs: 20_000 });
    const text = await stopVerifyReadTrail(g.gw, g.auditDir);
    gw = undefined;
    expect(text).toContain('the trail may have gaps');
    // Stopped, then the study received meanwhile, then started again: in that order.
    const stopped = text.indexOf('110133');
    const received = text.indexOf(files[0]!.studyUid);
    expect(stopped).toBeGreaterThan(0);
    expect(received).toBeGreaterThan(stopped);
    expect(text.indexOf('110134')).toBeGreaterThan(received);
    await events.close();
  });
});
