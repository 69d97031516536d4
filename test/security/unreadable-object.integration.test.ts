import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import formatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { DeviceKey } from '../../src/security/device-key.js';
import { sealKeyOf } from '../../src/security/spool-key.js';
import { sealBuffer } from '../../src/security/sealed-file.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { record, startMosquitto } from '../helpers/mosquitto.js';
import { CLI, freePort, ROOT, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * Issue 12: a spooled object whose file this device key cannot open (here: sealed under another
 * key, as a file carried over from another box would be) is never judged corrupt. It stays in
 * place and queued; the gateway logs it at error level, raises `spool-unreadable` on MQTT (valid
 * against docs/schemas/events.schema.json), shows it in `status`, and sends everything else.
 * Once the file opens again, the next start sends it too.
 */
const ajv = new Ajv({ allErrors: true, strict: false });
// ajv-formats is CommonJS with a default export: reach it the same way under tsc and vitest.
(((formatsModule as unknown as { default?: unknown }).default ?? formatsModule) as (a: Ajv) => void)(ajv);
const validEvent = ajv.compile(JSON.parse(readFileSync(path.join(ROOT, 'docs/schemas/events.schema.json'), 'utf8')));

describe('an object the device key cannot open', () => {
  it('is kept and queued, alarmed (log, MQTT, status), the rest flows; it is sent once a start can open it', { timeout: 90_000 }, async () => {
    const t = tempDir();
    const pacsDir = path.join(t.dir, 'pacs');
    mkdirSync(pacsDir);
    const broker = await startMosquitto(t.dir);
    const pacsPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      spool: { compressAtRest: false },
      config: {
        device: { id: 'edge-unreadable' },
        health: { mqtt: { url: broker.url, intervalSeconds: 1 } },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 },
      },
    });
    let gw = await runGateway(configFile, { port, spoolDir });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    const events = await record(broker.url, 'pacs-edge/edge-unreadable/events');
    try {
      const study = writeStudy(t.dir, 4);
      expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(4);
      // The log line may reach us a moment after storescu has its answer.
      const victim = (await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === study[2]!.uid)).id as string;
      expect(await gw.stop()).toBe(0);
      const file = path.join(spoolDir, 'objects', `${victim}.dcm`);
      const original = readFileSync(file);
      writeFileSync(file, sealBuffer(sealKeyOf(DeviceKey.fromBytes(randomBytes(32), 'elsewhere'), 'aes-256-gcm'), readSpoolFile(file)));

      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      gw = await runGateway(configFile, { port, spoolDir });
      const logged = await gw.waitForLog((l) => l.level === 'error' && String(l.msg).startsWith('spooled object cannot be opened'));
      expect(logged).toMatchObject({ id: victim, sopInstanceUid: study[2]!.uid });
      const alarm = await waitFor(() => events.messages.map((m) => JSON.parse(m.text) as Record<string, unknown>).find((e) => e.type === 'spool-unreadable'), { what: 'the spool-unreadable event' });
      expect(validEvent(alarm), ajv.errorsText(validEvent.errors)).toBe(true);
      expect(alarm).toMatchObject({ objects: 1, keyFile: path.join(t.dir, 'keys', 'device.key') });
      const text = await run(process.execPath, [CLI, 'status', '--config', configFile]);
      expect(text.stdout).toContain('UNREADABLE 1 object(s)');
      // The other three go; the unreadable one waits, in place.
      await waitFor(() => readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 3 || undefined, { what: '3 at the PACS' });
      await waitFor(async () => (JSON.parse((await run(process.execPath, [CLI, 'status', '--config', configFile, '--json'])).stdout) as { destinations: { pending: number }[] }).destinations[0]!.pending === 0 || undefined, { what: 'the readable ones delivered' });
      // Delivered objects' files go once their removal is durable (within a second); the unreadable one stays.
      await waitFor(() => readdirSync(path.join(spoolDir, 'objects')).length === 1 || undefined, { what: 'the delivered files removed', timeoutMs: 5000 }).catch(() => undefined);
      expect(readdirSync(path.join(spoolDir, 'objects'))).toEqual([`${victim}.dcm`]);
      expect(await gw.stop()).toBe(0);

      // The file opens again (the right key): the next start sends it.
      writeFileSync(file, original);
      gw = await runGateway(configFile, { port, spoolDir });
      await waitFor(() => readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 4 || undefined, { what: 'all 4 at the PACS' });
      await waitFor(async () => (JSON.parse((await run(process.execPath, [CLI, 'status', '--config', configFile, '--json'])).stdout) as { spool: { unreadable: number }; destinations: { pending: number }[] }).destinations[0]!.pending === 0 || undefined, { what: 'nothing pending' });
      for (const n of readdirSync(pacsDir)) {
        const b = readFileSync(path.join(pacsDir, n));
        const sent = study.find((s) => s.uid === readPart10Header(b)!.sopInstanceUid)!;
        expect(datasetBytes(b).equals(datasetBytes(sent.file))).toBe(true);
      }
    } finally {
      await events.close();
      await gw.stop();
      await pacs?.stop();
      await broker.stop();
      t.cleanup();
    }
  });
});
