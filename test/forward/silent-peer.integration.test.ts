import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { decodeAssociateRq, encodeAssociateAc, PduType } from '../../src/dicom/pdu.js';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * A destination that accepts the association and then never answers a C-STORE — a fault no
 * real PACS makes on purpose, so a minimal fake plays it. The gateway must give up after
 * forwarding.responseTimeoutSeconds, destroy the connection itself, keep the object queued
 * (nothing is lost, nothing counted against it) and back off.
 */
describe('forward: a destination that goes silent', () => {
  it('times out, destroys the socket, keeps the object queued and backs off', async () => {
    const sockets: net.Socket[] = [];
    let associations = 0;
    let closedByGateway = 0;
    const fake = net.createServer((s) => {
      sockets.push(s);
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf[0] === PduType.AssociateRq && buf.length >= 6 && buf.length >= 6 + buf.readUInt32BE(2)) {
          const rq = decodeAssociateRq(buf.subarray(6, 6 + buf.readUInt32BE(2)));
          associations++;
          s.write(encodeAssociateAc({ rq, contexts: rq.contexts.map((c) => ({ id: c.id, result: 0, transferSyntax: c.transferSyntaxes[0]! })), maxPduLength: 16384, implementationClassUid: '1.2.3', implementationVersionName: 'SILENT' }));
          buf = Buffer.alloc(0);
        }
        // Everything after the A-ASSOCIATE-AC is swallowed: no C-STORE-RSP, ever.
      });
      s.on('close', () => closedByGateway++);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    const port = (fake.address() as net.AddressInfo).port;
    const tmp = tempDir();
    const gw = await startGateway({
      dir: tmp.dir,
      config: { forward: [{ name: 'pacs', aeTitle: 'SILENT', host: '127.0.0.1', port, associations: 1, compression: 'none' }], forwarding: { responseTimeoutSeconds: 1, retryBaseSeconds: 0.5, retryMaxSeconds: 1 } },
    });
    try {
      const study = writeStudy(tmp.dir, 2);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(2);
      await gw.waitForLog((l) => l.msg === 'delivery failed, will retry' && /DIMSE_TIMEOUT/.test(String(l.reason)), 10_000);
      // The gateway closed the silent association itself, and came back to try again.
      await waitFor(() => (closedByGateway >= 1 && associations >= 2) || undefined, { what: 'a second attempt after the first was cut', timeoutMs: 10_000 });
      const s = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json'])).stdout);
      expect(s.destinations[0]).toMatchObject({ name: 'pacs', pending: 2, deadLetter: 0 });
      expect(s.destinations[0].lastError).toMatch(/DIMSE_TIMEOUT/);
    } finally {
      await gw.stop();
      for (const s of sockets) s.destroy();
      fake.close();
      tmp.cleanup();
    }
  });
});
