import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import formatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { record, startMosquitto } from '../helpers/mosquitto.js';
import { CLI, freePort, ROOT, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 14: "the CT from 14:10 is not in the PACS" answered in one command. Two destinations —
 * the PACS takes everything, the AI server CT only (forward[].match) — a CT study (with an
 * Accession Number) and an MR study, both PACS down, then up: `studies --json` and `study UID
 * --json` at each stage, `--accession` finds the CT without the number lying anywhere on the box
 * or on MQTT, MQTT carries study-received and study-delivered valid against their schemas, and
 * `resend --study` delivers the CT again. An object no destination takes is an unrouted dead
 * letter, alarmed.
 */
const ajv = new Ajv({ allErrors: true, strict: false });
(((formatsModule as unknown as { default?: unknown }).default ?? formatsModule) as (a: Ajv) => void)(ajv);
const validEvent = ajv.compile(JSON.parse(readFileSync(path.join(ROOT, 'docs/schemas/events.schema.json'), 'utf8')));
const ACCESSION = 'ACC-77-1410';

interface StudyDoc {
  studyInstanceUid: string;
  instances: number;
  series: number | { seriesInstanceUid: string; modality: string; instances: number }[];
  modalities: string[];
  callingAeTitle: string;
  firstReceived: string;
  lastReceived: string;
  state: string;
  destinations: { name: string; forwarded: number; pending: number; deadLetter: number }[];
}

describe('studies: what happened to study X, and send it again', () => {
  it('two destinations (one CT only), a CT and an MR study, PACS down then up: studies, study, accession, MQTT events, resend', { timeout: 120_000 }, async () => {
    const t = tempDir();
    const broker = await startMosquitto(t.dir);
    const [pacsPort, aiPort] = [await freePort(), await freePort()];
    const pacsDir = path.join(t.dir, 'pacs');
    const aiDir = path.join(t.dir, 'ai');
    for (const d of [pacsDir, aiDir, path.join(t.dir, 'ct'), path.join(t.dir, 'mr')]) mkdirSync(d);
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      spool: { keepForwardedHours: 48 },
      config: {
        device: { id: 'edge-studies' },
        studies: { stableSeconds: 1 },
        health: { mqtt: { url: broker.url, intervalSeconds: 1 } },
        forward: [
          { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' },
          { name: 'ai', aeTitle: 'AI', host: '127.0.0.1', port: aiPort, compression: 'none', match: { modality: ['CT'] } },
        ],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      },
    });
    const events = await record(broker.url, 'pacs-edge/edge-studies/events');
    let gw = await runGateway(configFile, { port, spoolDir });
    const servers: Awaited<ReturnType<typeof startStorescp>>[] = [];
    const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--config', configFile]);
    const studies = async (...args: string[]) => {
      const r = await cli('studies', '--json', ...args);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { studies: StudyDoc[] }).studies;
    };
    const dest = (s: StudyDoc | undefined, name: string) => s?.destinations.find((d) => d.name === name);
    try {
      const ct = writeStudy(path.join(t.dir, 'ct'), 3, { accessionNumber: ACCESSION });
      const mr = writeStudy(path.join(t.dir, 'mr'), 2, { modality: 'MR' });
      const ctUid = ct[0]!.studyUid;
      const mrUid = mr[0]!.studyUid;
      expect((await storescu({ port, files: ct.map((s) => s.file) })).acked).toHaveLength(3);
      expect((await storescu({ port, files: mr.map((s) => s.file) })).acked).toHaveLength(2);

      // 1. Both PACS down: everything pending, the MR owed to the PACS only.
      const before = await studies();
      expect(before.map((s) => s.studyInstanceUid).sort()).toEqual([ctUid, mrUid].sort());
      const ctDoc = before.find((s) => s.studyInstanceUid === ctUid)!;
      expect(ctDoc).toMatchObject({ instances: 3, series: 1, modalities: ['CT'], callingAeTitle: 'STORESCU', state: 'pending' });
      expect(ctDoc.firstReceived).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(dest(ctDoc, 'pacs')).toEqual({ name: 'pacs', forwarded: 0, pending: 3, deadLetter: 0 });
      expect(dest(ctDoc, 'ai')).toEqual({ name: 'ai', forwarded: 0, pending: 3, deadLetter: 0 });
      const mrDoc = before.find((s) => s.studyInstanceUid === mrUid)!;
      expect(mrDoc).toMatchObject({ instances: 2, modalities: ['MR'] });
      expect(mrDoc.destinations.map((d) => d.name)).toEqual(['pacs']);
      expect((await studies('--state', 'pending')).length).toBe(2);
      expect(await studies('--state', 'delivered')).toEqual([]);
      // By Accession Number: found, though the number is nowhere on the box.
      expect((await studies('--accession', ACCESSION)).map((s) => s.studyInstanceUid)).toEqual([ctUid]);
      expect(await studies('--accession', 'SOMETHING-ELSE')).toEqual([]);
      const one = await cli('study', ctUid, '--json');
      expect(JSON.parse(one.stdout)).toMatchObject({ studyInstanceUid: ctUid, series: [{ modality: 'CT', instances: 3 }] });

      // study-received, once each study is stable (studies.stableSeconds: 1).
      const parsed = () => events.messages.map((m) => JSON.parse(m.text) as Record<string, unknown>);
      await waitFor(() => parsed().filter((e) => e.type === 'study-received').length === 2 || undefined, { what: 'two study-received events' });
      for (const e of parsed().filter((x) => x.type === 'study-received')) expect(validEvent(e), ajv.errorsText(validEvent.errors)).toBe(true);
      expect(parsed().find((e) => e.type === 'study-received' && e.studyInstanceUid === ctUid)).toMatchObject({ instances: 3, modalities: ['CT'], callingAeTitle: 'STORESCU' });

      // 2. Both up: delivered everywhere it should go; study-delivered.
      servers.push(await startStorescp(pacsDir, 'PACS', { port: pacsPort, uniqueFilenames: true }), await startStorescp(aiDir, 'AI', { port: aiPort, uniqueFilenames: true }));
      await waitFor(async () => (await studies('--state', 'delivered')).length === 2 || undefined, { what: 'both studies delivered', timeoutMs: 30_000 });
      const after = await studies();
      expect(dest(after.find((s) => s.studyInstanceUid === ctUid), 'pacs')).toEqual({ name: 'pacs', forwarded: 3, pending: 0, deadLetter: 0 });
      expect(dest(after.find((s) => s.studyInstanceUid === ctUid), 'ai')).toEqual({ name: 'ai', forwarded: 3, pending: 0, deadLetter: 0 });
      expect(dest(after.find((s) => s.studyInstanceUid === mrUid), 'pacs')).toEqual({ name: 'pacs', forwarded: 2, pending: 0, deadLetter: 0 });
      const uidsAt = (dir: string) => readdirSync(dir).map((f) => readPart10Header(readFileSync(path.join(dir, f)))!.sopInstanceUid).sort();
      expect(uidsAt(aiDir), 'the AI server got the CT only').toEqual(ct.map((s) => s.uid).sort());
      await waitFor(() => parsed().filter((e) => e.type === 'study-delivered').length === 2 || undefined, { what: 'two study-delivered events' });
      const delivered = parsed().filter((e) => e.type === 'study-delivered');
      for (const e of delivered) expect(validEvent(e), ajv.errorsText(validEvent.errors)).toBe(true);
      expect(delivered.find((e) => e.studyInstanceUid === ctUid)).toMatchObject({ instances: 3, destinations: expect.arrayContaining([expect.objectContaining({ name: 'ai', count: 3 }), expect.objectContaining({ name: 'pacs', count: 3 })]) });

      // 3. The PACS lost the CT: send it again (kept 48 h after delivery).
      const resend = await cli('resend', '--study', ctUid, '--destination', 'pacs');
      expect(resend.code, resend.stderr).toBe(0);
      expect(resend.stdout).toContain(`study ${ctUid}: 3 object(s) queued again for pacs`);
      await waitFor(async () => dest((await studies()).find((s) => s.studyInstanceUid === ctUid), 'pacs')?.forwarded === 6 || undefined, { what: 'the CT delivered again', timeoutMs: 30_000 });
      expect(readdirSync(pacsDir).length, 'the PACS received the CT twice and the MR once').toBe(3 * 2 + 2);

      // Offline (gateway stopped): the same answers, read from the spool; the accession found with the device key.
      expect(await gw.stop()).toBe(0);
      const offline = await studies('--accession', ACCESSION);
      expect(offline.map((s) => s.studyInstanceUid)).toEqual([ctUid]);
      expect(dest(offline[0], 'pacs')).toEqual({ name: 'pacs', forwarded: 6, pending: 0, deadLetter: 0 });
      // No Accession Number anywhere on the gateway's side: spool (objects encrypted, index), audit trail, logs, MQTT.
      const grep = await run('grep', ['-rl', ACCESSION, spoolDir, path.join(t.dir, 'audit')]);
      expect(grep.stdout.trim(), 'files holding the accession number in clear').toBe('');
      expect(gw.output()).not.toContain(ACCESSION);
      expect(events.messages.some((m) => m.text.includes(ACCESSION))).toBe(false);
    } finally {
      await events.close();
      await gw.stop();
      for (const s of servers) await s.stop();
      await broker.stop();
      t.cleanup();
    }
  });

  it('an object no destination takes is kept as an unrouted dead letter, alarmed, never dropped', { timeout: 60_000 }, async () => {
    const t = tempDir();
    mkdirSync(path.join(t.dir, 'mr'));
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      config: { forward: [{ name: 'ai', aeTitle: 'AI', host: '127.0.0.1', port: await freePort(), compression: 'none', match: { modality: ['CT'], sopClass: ['CTImageStorage'] } }] },
    });
    const gw = await runGateway(configFile, { port, spoolDir });
    try {
      const mr = writeStudy(path.join(t.dir, 'mr'), 2, { modality: 'MR' });
      expect((await storescu({ port, files: mr.map((s) => s.file) })).acked).toHaveLength(2);
      await gw.waitForLog((l) => l.level === 'error' && l.msg.startsWith('object taken by no destination') && l.sopInstanceUid === mr[1]!.uid);
      const list = await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', configFile, '--json']);
      const dead = JSON.parse(list.stdout) as { destination: string; studyInstanceUid: string; reason: string }[];
      expect(dead.map((d) => d.destination)).toEqual(['unrouted', 'unrouted']);
      expect(dead[0]).toMatchObject({ studyInstanceUid: mr[0]!.studyUid });
      expect(dead[0]!.reason).toMatch(/no destination takes it .*modality MR/);
      const s = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', configFile, '--json'])).stdout) as { destinations: { name: string; deadLetter: number; pending: number }[] };
      expect(s.destinations.find((d) => d.name === 'unrouted')).toMatchObject({ deadLetter: 2, pending: 0 });
      expect(s.destinations.find((d) => d.name === 'ai')).toMatchObject({ pending: 0 });
    } finally {
      await gw.stop();
      t.cleanup();
    }
  });
});
