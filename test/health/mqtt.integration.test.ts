import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import formatsModule from 'ajv-formats';
import { connect as mqttConnect } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetBytes, echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { type Broker, connect, makeCertificates, mqtt311OnlyProxy, record, startMosquitto } from '../helpers/mosquitto.js';
import { freePort, nothingPending, ROOT, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { controlGet } from '../../src/health/control-server.js';

/**
 * Health over MQTT against a real Mosquitto: every message validated against its schema in
 * docs/schemas/, and the fixtures' patient name must appear in none.
 */
const ajv = new Ajv({ allErrors: true, strict: false });
// ajv-formats is CommonJS with a default export: reach it the same way under tsc and vitest.
const addFormats = ((formatsModule as unknown as { default?: unknown }).default ?? formatsModule) as (a: Ajv) => void;
addFormats(ajv);
const schema = (name: string) => ajv.compile(JSON.parse(readFileSync(path.join(ROOT, 'docs/schemas', `${name}.schema.json`), 'utf8')));
const validate = { status: schema('status'), health: schema('health'), events: schema('events'), 'cmd-result': schema('cmd-result') };
const CANARY = 'Test^Fixture'; // PatientName of every CT fixture (dicom-builder.ts)

const tmp = tempDir();
let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto(tmp.dir);
});
afterAll(async () => {
  await broker?.stop();
  tmp.cleanup();
});

function subdir(name: string): string {
  const d = path.join(tmp.dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

function valid(kind: keyof typeof validate, text: string): Record<string, unknown> {
  expect(text).not.toContain(CANARY);
  expect(text).not.toContain('Canary^');
  const doc = JSON.parse(text) as Record<string, unknown>;
  const v = validate[kind];
  if (!v(doc)) throw new Error(`${kind} message does not validate: ${ajv.errorsText(v.errors)}\n${text}`);
  return doc;
}

const mqttConfig = (device: string, extra: Record<string, unknown> = {}) => ({
  device: { id: device },
  health: { mqtt: { url: broker.url, intervalSeconds: 1, ...extra } },
  forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
});

describe('health over MQTT (real Mosquitto)', () => {
  it('a late subscriber gets the retained status (online) and a health message that validates', async () => {
    const gw = await startGateway({ dir: subdir('late'), config: { ...mqttConfig('edge-late'), forward: [] } });
    try {
      await waitFor(() => gw.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected' });
      await new Promise((r) => setTimeout(r, 1500));
      const sub = await record(broker.url, 'pacs-edge/edge-late/#');
      try {
        const got = await waitFor(() => {
          const st = sub.messages.find((m) => m.topic === 'pacs-edge/edge-late/status' && m.retain);
          const h = sub.messages.find((m) => m.topic === 'pacs-edge/edge-late/health' && m.retain);
          return st && h ? { st, h } : undefined;
        }, { what: 'retained status and health' });
        expect(valid('status', got.st.text)).toMatchObject({ state: 'online' });
        const h = valid('health', got.h.text);
        expect(h).toMatchObject({ device: 'edge-late', running: true, spool: { watermark: 'ok' } });
        // A modality with the wrong called AE title: refused, and the event names who and why.
        expect((await echoscu(gw.port, { calledAe: 'WRONG_AE', callingAe: 'CT_TEST' })).code).not.toBe(0);
        const ev = await waitFor(() => sub.messages.find((m) => m.topic.endsWith('/events') && m.text.includes('association-rejected')), { what: 'association-rejected event' });
        expect(valid('events', ev.text)).toMatchObject({ callingAeTitle: 'CT_TEST', calledAeTitle: 'WRONG_AE', address: '127.0.0.1' });
      } finally {
        await sub.close();
      }
    } finally {
      await gw.stop();
    }
  });

  it('PACS down: health shows 10 pending and the destination down, an event says so; PACS back: pending 0 and an up event', async () => {
    const pacsPort = await freePort();
    const sub = await record(broker.url, 'pacs-edge/edge-down/#');
    const gw = await startGateway({
      dir: subdir('down'),
      config: { ...mqttConfig('edge-down'), forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }] },
    });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const study = writeStudy(tmp.dir, 10);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(10);
      const health = (pred: (d: { pending: number; state?: string }) => boolean) =>
        waitFor(() => {
          const last = [...sub.messages].reverse().find((m) => m.topic.endsWith('/health'));
          if (!last) return undefined;
          const h = valid('health', last.text) as { destinations: { pending: number; state?: string }[] };
          return pred(h.destinations[0]!) ? h : undefined;
        }, { what: 'a matching health message', timeoutMs: 20_000 });
      await health((d) => d.pending === 10 && d.state === 'down');
      const down = await waitFor(() => sub.messages.find((m) => m.topic.endsWith('/events') && m.text.includes('"destination-down"')), { what: 'destination-down event', timeoutMs: 20_000 }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; events: ${sub.messages.filter((m) => m.topic.endsWith('/events')).map((m) => m.text).join(' | ')}`);
      });
      expect(valid('events', down.text)).toMatchObject({ type: 'destination-down', destination: 'pacs' });
      pacs = await startStorescp(subdir('down-pacs'), 'PACS', { port: pacsPort });
      await health((d) => d.pending === 0 && d.state === 'up');
      const up = await waitFor(() => sub.messages.find((m) => m.topic.endsWith('/events') && m.text.includes('"destination-up"')), { what: 'destination-up event', timeoutMs: 20_000 });
      expect(valid('events', up.text)).toMatchObject({ type: 'destination-up', destination: 'pacs' });
      // Every message of the run validates and carries no patient data.
      for (const m of sub.messages) valid(m.topic.split('/').pop() as keyof typeof validate, m.text);
      expect(sub.messages.some((m) => m.text.includes('"recovery"'))).toBe(true);
    } finally {
      await gw.stop();
      await pacs?.stop();
      await sub.close();
    }
  });

  it('SIGKILL of the gateway: status becomes offline through the last will; a clean stop publishes offline itself', async () => {
    const sub = await record(broker.url, 'pacs-edge/edge-kill/status');
    const gw = await startGateway({ dir: subdir('kill'), config: { ...mqttConfig('edge-kill'), forward: [] } });
    await waitFor(() => sub.messages.find((m) => m.text.includes('"online"')), { what: 'online' });
    await gw.kill();
    const off = await waitFor(() => sub.messages.find((m) => m.text.includes('"offline"')), { what: 'offline by last will', timeoutMs: 20_000 });
    expect(valid('status', off.text)).toMatchObject({ state: 'offline' });
    const gw2 = await startGateway({ dir: subdir('kill'), config: { ...mqttConfig('edge-kill'), forward: [] } });
    await waitFor(() => sub.messages.filter((m) => m.text.includes('"online"')).length >= 2 || undefined, { what: 'online again' });
    await gw2.stop();
    await waitFor(() => sub.messages.filter((m) => m.text.includes('"offline"')).length >= 2 || undefined, { what: 'offline on clean stop' });
    await sub.close();
  });

  it('a broker away for 20 s during a 200-instance transfer: every instance is stored; health resumes when it returns', async () => {
    const gw = await startGateway({ dir: subdir('outage'), config: { ...mqttConfig('edge-outage'), forward: [] } });
    try {
      await waitFor(() => gw.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected' });
      await broker.stop();
      const study = writeStudy(tmp.dir, 200);
      const sent = storescu({ port: gw.port, files: study.map((s) => s.file) });
      const r = await sent;
      expect(r.acked).toHaveLength(200);
      await new Promise((res) => setTimeout(res, 20_000));
      await broker.restart();
      const sub = await record(broker.url, 'pacs-edge/edge-outage/health');
      try {
        const h = await waitFor(() => {
          const m = sub.messages.at(-1);
          return m ? (valid('health', m.text) as { receive: { objectsStored: number } }) : undefined;
        }, { what: 'health after the broker returned', timeoutMs: 90_000 });
        expect(h.receive.objectsStored).toBeGreaterThanOrEqual(200);
      } finally {
        await sub.close();
      }
    } finally {
      await gw.stop();
    }
  }, 180_000);

  it('Prometheus /metrics on localhost: the same figures, in the text format, no patient data', async () => {
    const port = await freePort();
    const pacsPort = await freePort();
    const gw = await startGateway({
      dir: subdir('metrics'),
      config: { device: { id: 'edge-metrics' }, health: { metrics: { port } }, forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }] },
    });
    try {
      const study = writeStudy(subdir('metrics-study'), 3);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(3);
      const text = await waitFor(async () => {
        const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return t.includes('pacs_edge_destination_pending{destination="pacs"} 3') ? t : undefined;
      }, { what: 'metrics with 3 pending' });
      expect(text).toContain('pacs_edge_receive_objects_stored_total 3');
      expect(text).toContain('pacs_edge_spool_watermark{state="ok"} 1');
      expect(text).toContain('# TYPE pacs_edge_destination_pending gauge');
      expect(text).not.toContain(CANARY);
      for (const line of text.trim().split('\n')) {
        if (line.startsWith('#')) expect(line).toMatch(/^# (HELP|TYPE) pacs_edge_[a-z_]+ /);
        else expect(line).toMatch(/^pacs_edge_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/);
      }
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await gw.stop();
    }
  });

  it('commands round-trip (ping, echo-destination, pause/resume-forward, retry-dead-letter, errors); with commands off nothing is subscribed', async () => {
    const pacsDir = subdir('cmd-pacs');
    const pacs = await startStorescp(pacsDir, 'PACS');
    const sub = await record(broker.url, 'pacs-edge/edge-cmd/cmd-result/#');
    const gw = await startGateway({
      dir: subdir('cmd'),
      config: { ...mqttConfig('edge-cmd', { commands: true }), forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }] },
    });
    const send = async (name: string, payload: string) => {
      const c = await connect(broker.url);
      await c.publishAsync(`pacs-edge/edge-cmd/cmd/operator/field-op/${name}`, payload, { qos: 1 });
      await c.endAsync();
    };
    const result = (name: string, id: string) =>
      waitFor(() => {
        const m = sub.messages.find((x) => x.topic.endsWith(`/cmd-result/operator/field-op/${name}`) && x.text.includes(`"${id}"`));
        return m ? valid('cmd-result', m.text) : undefined;
      }, { what: `result of ${name} ${id}` });
    try {
      await waitFor(() => gw.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected' });
      await new Promise((r) => setTimeout(r, 500)); // the subscription to cmd/+/+/+ follows the connection
      await send('ping', '{"id":"p1"}');
      expect(await result('ping', 'p1')).toMatchObject({ ok: true, result: { pong: true } });
      await send('echo-destination', '{"id":"e1","destination":"pacs"}');
      expect(await result('echo-destination', 'e1')).toMatchObject({ ok: true, result: { destination: 'pacs', status: '0x0000' } });
      await send('echo-destination', '{"id":"e2","destination":"nowhere"}');
      expect(await result('echo-destination', 'e2')).toMatchObject({ ok: false });
      await send('pause-forward', '{"id":"pa","destination":"pacs"}');
      expect(await result('pause-forward', 'pa')).toMatchObject({ ok: true, result: { paused: ['pacs'] } });
      const study = writeStudy(subdir('cmd-study'), 5);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(5);
      await new Promise((r) => setTimeout(r, 1500));
      expect(readdirSync(pacsDir).filter((n) => n.endsWith('.dcm'))).toHaveLength(0);
      await send('resume-forward', '{"id":"re"}');
      expect(await result('resume-forward', 're')).toMatchObject({ ok: true, result: { resumed: ['pacs'] } });
      await waitFor(() => readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 5 || undefined, { what: '5 objects at the PACS after resume' });
      await send('retry-dead-letter', '{"id":"r1","destination":"pacs"}');
      expect(await result('retry-dead-letter', 'r1')).toMatchObject({ ok: true, result: { destination: 'pacs', retried: 0 } });
      await send('reboot', '{"id":"x1"}');
      expect(await result('reboot', 'x1')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown command/) });
      await send('ping', 'not json');
      await waitFor(() => sub.messages.find((m) => m.topic.endsWith('/cmd-result/operator/field-op/ping') && m.text.includes('"ok":false')), { what: 'error result for a malformed payload' });
    } finally {
      await gw.stop();
    }
    // commands: false (the default): the same ping gets no answer at all.
    const gw2 = await startGateway({ dir: subdir('cmd-off'), config: { ...mqttConfig('edge-cmd'), forward: [] } });
    try {
      await waitFor(() => gw2.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected' });
      await new Promise((r) => setTimeout(r, 500));
      await send('ping', '{"id":"off"}');
      await new Promise((r) => setTimeout(r, 2000));
      expect(sub.messages.some((m) => m.text.includes('"off"'))).toBe(false);
    } finally {
      await gw2.stop();
      await sub.close();
      await pacs.stop();
    }
  });

  it('over TLS with a client certificate (mqtts://): the broker knows the gateway by its certificate', async () => {
    const dir = subdir('tls');
    const certs = makeCertificates(dir, 'edge-tls');
    const tlsBroker = await startMosquitto(dir, undefined, { ca: certs.ca, cert: certs.server.cert, key: certs.server.key });
    const gw = await startGateway({
      dir,
      config: {
        device: { id: 'edge-tls' },
        forward: [],
        health: { mqtt: { url: tlsBroker.url, intervalSeconds: 1, tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key } } },
      },
    });
    try {
      await waitFor(() => gw.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected over TLS', timeoutMs: 20_000 });
      // A subscriber with its own certificate from the same CA reads the retained status.
      const c = await new Promise<import('mqtt').MqttClient>((resolve, reject) => {
        const cl = mqttConnect(tlsBroker.url, { ca: readFileSync(certs.ca), cert: readFileSync(certs.client.cert), key: readFileSync(certs.client.key), reconnectPeriod: 0 });
        cl.once('connect', () => resolve(cl));
        cl.once('error', reject);
      });
      const got: string[] = [];
      c.on('message', (_t, p) => got.push(p.toString()));
      await c.subscribeAsync('pacs-edge/edge-tls/status');
      await waitFor(() => got.find((t) => t.includes('"online"')), { what: 'online over TLS' });
      valid('status', got.find((t) => t.includes('"online"'))!);
      await c.endAsync();
      // Without a client certificate the broker refuses the connection.
      const refused = await new Promise<boolean>((resolve) => {
        const cl = mqttConnect(tlsBroker.url, { ca: readFileSync(certs.ca), reconnectPeriod: 0, connectTimeout: 3000 });
        cl.once('connect', () => {
          cl.end(true);
          resolve(false);
        });
        cl.once('error', () => {
          cl.end(true);
          resolve(true);
        });
        cl.once('close', () => resolve(true));
      });
      expect(refused).toBe(true);
    } finally {
      await gw.stop();
      await tlsBroker.stop();
    }
  });

  it('a broker that speaks only MQTT 3.1.1: the gateway falls back from 5 and reports as usual', async () => {
    const proxy = await mqtt311OnlyProxy(broker.port);
    const sub = await record(broker.url, 'pacs-edge/edge-v311/status');
    const gw = await startGateway({ dir: subdir('v311'), config: { device: { id: 'edge-v311' }, forward: [], health: { mqtt: { url: `mqtt://127.0.0.1:${proxy.port}`, intervalSeconds: 1 } } } });
    try {
      const connected = await waitFor(() => gw.logs.find((l) => l.msg === 'MQTT connected'), { what: 'MQTT connected', timeoutMs: 20_000 });
      expect(connected).toMatchObject({ protocolVersion: 4 });
      expect(proxy.refused()).toBeGreaterThanOrEqual(1);
      expect(gw.logs.some((l) => l.msg === 'MQTT broker refuses protocol 5; using 3.1.1')).toBe(true);
      await waitFor(() => sub.messages.find((m) => m.text.includes('"online"')), { what: 'online through the 3.1.1 link' });
    } finally {
      await gw.stop();
      await sub.close();
      await proxy.close();
    }
  });

  it('a byte flipped in a spooled object: dead-lettered as corrupt, never completed at the PACS, an object-corrupt event raised', async () => {
    const dir = subdir('corrupt');
    const pacsPort = await freePort();
    const sub = await record(broker.url, 'pacs-edge/edge-corrupt/events');
    // Compression at rest off: the spool file stays the one the modality sent, so the flip lands in it.
    const gw = await startGateway({
      dir,
      spool: { compressAtRest: false },
      config: { ...mqttConfig('edge-corrupt'), forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none', associations: 1 }] },
    });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const study = writeStudy(subdir('corrupt-study'), 3, { rows: 128, cols: 128 });
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(3);
      const stored = await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === study[1]!.uid);
      const file = path.join(gw.spoolDir, 'objects', `${stored.id as string}.dcm`);
      const bytes = readFileSync(file);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 64) ^ 0x01, bytes.length - 64);
      writeFileSync(file, bytes);
      const pacsDir = subdir('corrupt-pacs');
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      const ev = await waitFor(() => sub.messages.find((m) => m.text.includes('"object-corrupt"')), { what: 'object-corrupt event', timeoutMs: 30_000 });
      expect(valid('events', ev.text)).toMatchObject({ type: 'object-corrupt', destination: 'pacs', sopInstanceUid: study[1]!.uid });
      await waitFor(() => readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 2 || undefined, { what: 'the two intact objects at the PACS' });
      await waitFor(() => nothingPending(gw.spoolDir), { what: 'the corrupt object settled' });
      // What became of each acknowledged object, counted from the PACS's files and the dead
      // letters: delivered byte for byte, or dead-lettered (the one the fault damaged), or lost.
      const atPacs = new Map<string, Buffer[]>();
      for (const n of readdirSync(pacsDir).filter((f) => f.endsWith('.dcm'))) {
        const b = readFileSync(path.join(pacsDir, n));
        const uid = readPart10Header(b)!.sopInstanceUid;
        atPacs.set(uid, [...(atPacs.get(uid) ?? []), datasetBytes(b)]);
      }
      const letters = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/dead-letters')) as { sopInstanceUid: string; reason: string }[];
      const delivered = study.filter((s) => atPacs.get(s.uid)?.every((d) => d.equals(datasetBytes(s.file))));
      const deadLettered = study.filter((s) => letters.some((l) => l.sopInstanceUid === s.uid));
      const lost = study.filter((s) => !delivered.includes(s) && !deadLettered.includes(s));
      expect(lost.map((s) => path.basename(s.file)), 'acknowledged objects neither delivered intact nor dead-lettered').toEqual([]);
      expect(delivered.map((s) => s.uid), 'the two intact objects at the PACS, byte-identical').toEqual([study[0]!.uid, study[2]!.uid]);
      expect(deadLettered.map((s) => s.uid), 'the damaged object dead-lettered').toEqual([study[1]!.uid]);
      expect(atPacs.has(study[1]!.uid), 'nothing of the damaged object completed at the PACS').toBe(false);
      recordFault({
        key: '04-byte-flip',
        fault: 'A byte flipped in a spooled object (PACS down, then up)',
        test: 'test/health/mqtt.integration.test.ts',
        injected: 1,
        acknowledged: study.length,
        lost: lost.length,
        deadLettered: deadLettered.length,
        duplicated: [...atPacs.values()].reduce((a, c) => a + c.length - 1, 0),
        recoverySeconds: null,
        notes: `the flipped object is the dead-lettered one: its checksum caught it ("${letters[0]!.reason.split(';')[0]!.slice(0, 40)}…"), MQTT object-corrupt event, nothing of it completed at the PACS; the other ${delivered.length} delivered byte-identical`,
      });
    } finally {
      await gw.stop();
      await pacs?.stop();
      await sub.close();
    }
  });
});
