import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import dcmjsDimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status } from '../../src/dicom/status.js';
import { echoscu } from '../helpers/dcmtk.js';
import { ctFile } from '../helpers/dicom-builder.js';
import { CLI, freePort, type GatewayProcess, run, startGateway, tempDir } from '../helpers/processes.js';

const { Client, requests } = dcmjsDimse;

/** Send requests with the dcmjs-dimse Client (a second, independent DICOM implementation). */
function sendWithDcmjsDimse(port: number, reqs: InstanceType<typeof requests.CEchoRequest>[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const statuses: number[] = [];
    for (const r of reqs) {
      r.on('response', (rsp: { getStatus(): number }) => statuses.push(rsp.getStatus()));
      client.addRequest(r);
    }
    client.on('networkError', (e: Error) => reject(e));
    client.on('closed', () => resolve(statuses));
    client.send('127.0.0.1', port, 'DCMJS', 'PACS_EDGE', { associationTimeout: 10_000, pduTimeout: 10_000 });
  });
}

describe('receive: interoperability and listen address', () => {
  const tmp = tempDir();
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGateway({ dir: tmp.dir });
  });
  afterAll(async () => {
    await gw?.stop();
    tmp.cleanup();
  });

  it('serves a dcmjs-dimse Client: C-ECHO and C-STORE succeed', async () => {
    const f = ctFile();
    const file = path.join(tmp.dir, 'a.dcm');
    writeFileSync(file, f.bytes);
    const statuses = await sendWithDcmjsDimse(gw.port, [new requests.CEchoRequest(), new requests.CStoreRequest(file)]);
    expect(statuses).toEqual([Status.Success.code, Status.Success.code]);
    await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === f.sopInstanceUid);
  });

  it('listens only on receive.host', async () => {
    const t = tempDir();
    const port = await freePort();
    const only2 = await startGateway({ dir: t.dir, port, receive: { host: '127.0.0.2' } });
    try {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(false);
        });
        s.on('error', () => resolve(true));
      });
      expect(refused, '127.0.0.1 is not served when receive.host is 127.0.0.2').toBe(true);
      const r = await run('echoscu', ['-aec', 'PACS_EDGE', '127.0.0.2', String(port)], { timeoutMs: 10_000 });
      expect(r.code).toBe(0);
    } finally {
      await only2.stop();
      t.cleanup();
    }
  });

  it('status falls back to reading the spool when the gateway is not running', async () => {
    const t = tempDir();
    const g = await startGateway({ dir: t.dir });
    try {
      const f = ctFile();
      const file = path.join(t.dir, 'b.dcm');
      writeFileSync(file, f.bytes);
      expect((await echoscu(g.port)).code).toBe(0);
      const statuses = await sendWithDcmjsDimse(g.port, [new requests.CStoreRequest(file)]);
      expect(statuses).toEqual([Status.Success.code]);
      expect(await g.stop()).toBe(0);
      const r = await run(process.execPath, [CLI, 'status', '--config', g.configFile, '--json']);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.running).toBe(false);
      expect(s.spool.objects).toBe(1);
      const text = await run(process.execPath, [CLI, 'status', '--config', g.configFile]);
      expect(text.stdout).toContain('NOT RUNNING');
    } finally {
      t.cleanup();
    }
  });
});
