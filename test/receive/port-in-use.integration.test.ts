import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { makeCertificates } from '../helpers/certificates.js';
import { CLI, freePort, run, runGateway, tempDir, watchGateway, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 12: a listen address that is taken (the DICOM port, the DICOM TLS port, the metrics
 * port) ends the start at once: the reason is logged, the process exits non-zero within
 * seconds, and the spool's lock and the control socket go with it — `status` says the gateway
 * is not running and the next start (on a free port) works. It used to hang holding the lock.
 */
type Which = 'receive.port' | 'receive.tls.port' | 'health.metrics.port';

describe.each<Which>(['receive.port', 'receive.tls.port', 'health.metrics.port'])('a taken %s', (which) => {
  it('the gateway says why and exits non-zero within 10 s, leaving no lock or socket; the next start works', { timeout: 60_000 }, async () => {
    const t = tempDir();
    const squatter = net.createServer();
    const taken = await new Promise<number>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve((squatter.address() as net.AddressInfo).port)));
    try {
      const certs = which === 'receive.tls.port' ? makeCertificates(mkdirSync(path.join(t.dir, 'certs'), { recursive: true })!, 'MODALITY') : undefined;
      const configFor = async (port: number) =>
        writeGatewayConfig({
          dir: t.dir,
          ...(which === 'receive.port' ? { port } : {}),
          ...(certs ? { receive: { tls: { port, cert: certs.server.cert, key: certs.server.key, ca: certs.ca, requireClientCert: false } } } : {}),
          ...(which === 'health.metrics.port' ? { config: { health: { metrics: { port } } } } : {}),
        });
      const { configFile, spoolDir } = await configFor(taken);
      const t0 = Date.now();
      const p = spawn(process.execPath, [CLI, 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      const watched = watchGateway(p);
      const code = await Promise.race([watched.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
      if (code === 'hung') p.kill('SIGKILL');
      expect(code, `exits within 10 s:\n${watched.output().slice(-2000)}`).not.toBe('hung');
      expect(code).toBe(EXIT.failed);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const fatal = watched.logs.find((l) => l.level === 'fatal' && l.msg.startsWith('gateway failed to start'));
      expect(fatal, watched.output().slice(-2000)).toBeDefined();
      expect(fatal!.code).toBe('LISTEN_FAILED');
      expect(fatal!.msg).toContain(`:${taken}: the address is already in use`);
      expect(fatal!.msg).toContain(which.startsWith('health') ? 'metrics listener' : which === 'receive.tls.port' ? 'DICOM TLS listener' : 'DICOM listener');
      // Nothing left behind: no control socket, the spool free for the next process.
      expect(existsSync(path.join(spoolDir, 'control.sock')), 'the control socket is gone').toBe(false);
      const s = await run(process.execPath, [CLI, 'status', '--config', configFile, '--json']);
      expect(s.code, s.stderr).toBe(0);
      expect(JSON.parse(s.stdout)).toMatchObject({ running: false });
      // The next start, on a free port, works on the same spool.
      const free = await freePort();
      const next = await configFor(free);
      const gw = await runGateway(next.configFile, { port: free, spoolDir: next.spoolDir });
      expect(await gw.stop()).toBe(0);
    } finally {
      squatter.close();
      t.cleanup();
    }
  });
});
