import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * TCP connections that never send an A-ASSOCIATE-RQ (a port scanner, a half-written client, an
 * attacker) must not cost the modality its association: they have a budget of their own, the
 * oldest is closed when it is spent, and each such close (and each ARTIM expiry) counts toward
 * blocking the address. The idle sockets come from 127.0.0.2, the modality from 127.0.0.1.
 */
describe('receive: silent sockets', () => {
  it('32 idle sockets neither lock storescu out nor stay: the oldest are closed, their address blocked', async () => {
    const tmp = tempDir();
    const gw = await startGateway({
      dir: tmp.dir,
      receive: { maxAssociations: 4, blocking: { rejections: 10, windowSeconds: 60, blockSeconds: 60, exempt: [] } },
    });
    const idle: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    try {
      for (let i = 0; i < 32; i++) {
        const s = net.connect({ port: gw.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        s.on('error', () => undefined);
        s.on('close', () => closed.add(s));
        idle.push(s);
        await new Promise<void>((r) => {
          s.once('connect', () => r());
          s.once('close', () => r());
        });
      }
      // With receive.maxAssociations 4 the silent budget is 16: the 16 oldest were closed to make
      // room, and after 10 of those 127.0.0.2 was blocked (its later connections closed on arrival).
      await waitFor(() => closed.size >= 16 || undefined, { what: 'the oldest idle sockets to be closed', timeoutMs: 10_000 });
      for (const s of idle.slice(0, 10)) expect(closed.has(s)).toBe(true);
      await gw.waitForLog((l) => /too many connections without an A-ASSOCIATE-RQ/.test(l.msg) && l.remote === '127.0.0.2');
      await gw.waitForLog((l) => /SECURITY ALERT: 127\.0\.0\.2 blocked/.test(l.msg));
      // The modality, while the idle sockets still open hold their place.
      expect(idle.filter((s) => !closed.has(s)).length).toBeGreaterThan(0);
      const study = writeStudy(tmp.dir, 5);
      const sent = await storescu({ port: gw.port, files: study.map((s) => s.file) });
      expect(sent.acked).toHaveLength(5);
      const st = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { receive: { blocked: { address: string }[] }; spool: { objects: number } };
      expect(st.receive.blocked.map((b) => b.address)).toContain('127.0.0.2');
      expect(st.spool.objects).toBe(5);
    } finally {
      for (const s of idle) s.destroy();
      await gw.stop();
      tmp.cleanup();
    }
  });
});
