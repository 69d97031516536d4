import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { makeCertificates } from '../helpers/certificates.js';
import { echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 14: operating the box without MQTT — `destination pause|resume|echo`, `log-level`,
 * `reload` and SIGHUP — against a real PACS (storescp): each does what it says, what a reload
 * cannot change is refused with the reason and changes nothing, a renewed TLS certificate is
 * served after a reload, and the audit trail names the operator.
 */
const status = async (configFile: string) => JSON.parse((await run(process.execPath, [CLI, 'status', '--config', configFile, '--json'])).stdout) as { destinations: { name: string; pending: number; paused?: boolean; sent?: number }[] };

async function servedFingerprint(port: number): Promise<string> {
  const r = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`], { timeoutMs: 20_000 });
  return r.stdout.trim();
}

describe('operating the running gateway from the command line', () => {
  it('pause, resume, echo, log-level and reload (and SIGHUP) do what they say; a reload that needs a restart is refused', { timeout: 120_000 }, async () => {
    const t = tempDir();
    const pacsDir = path.join(t.dir, 'pacs');
    const pacs2Dir = path.join(t.dir, 'pacs2');
    for (const d of [pacsDir, pacs2Dir, path.join(t.dir, 'a'), path.join(t.dir, 'b'), path.join(t.dir, 'c')]) mkdirSync(d);
    const pacs = await startStorescp(pacsDir, 'PACS');
    const pacs2 = await startStorescp(pacs2Dir, 'PACS2');
    const certsA = makeCertificates(mkdirSync(path.join(t.dir, 'certs-a'), { recursive: true })!, 'MODALITY');
    const certsB = makeCertificates(mkdirSync(path.join(t.dir, 'certs-b'), { recursive: true })!, 'MODALITY');
    const live = path.join(t.dir, 'live');
    mkdirSync(live);
    copyFileSync(certsA.server.cert, path.join(live, 'server.pem'));
    copyFileSync(certsA.server.key, path.join(live, 'server.key'));
    const tlsPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      receive: { plain: true, tls: { port: tlsPort, cert: path.join(live, 'server.pem'), key: path.join(live, 'server.key'), requireClientCert: false } },
      config: {
        log: { level: 'info' },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      },
    });
    const gw = await runGateway(configFile, { port, spoolDir });
    const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--config', configFile]);
    try {
      // pause: objects stay queued; resume: they go.
      const paused = await cli('destination', 'pause', 'pacs');
      expect(paused.code, paused.stderr).toBe(0);
      expect((await status(configFile)).destinations[0]).toMatchObject({ name: 'pacs', paused: true });
      const text = await run(process.execPath, [CLI, 'status', '--config', configFile]);
      expect(text.stdout).toContain('PAUSED (pacs-edge destination resume)');
      const a = writeStudy(path.join(t.dir, 'a'), 3);
      expect((await storescu({ port, files: a.map((s) => s.file) })).acked).toHaveLength(3);
      await new Promise((r) => setTimeout(r, 1500));
      expect((await status(configFile)).destinations[0]).toMatchObject({ pending: 3 });
      expect((await cli('destination', 'resume', 'pacs')).code).toBe(0);
      await waitFor(async () => (await status(configFile)).destinations[0]!.pending === 0 || undefined, { what: 'delivered after resume' });
      // echo: a real C-ECHO to the destination.
      const echo = await cli('destination', 'echo', 'pacs');
      expect(echo.code, echo.stderr).toBe(0);
      expect(echo.stdout).toMatch(/^pacs: C-ECHO Success in \d+ ms/);
      // log-level: debug shows the per-object lines, info hides them again.
      expect((await cli('log-level', 'debug')).code).toBe(0);
      const b = writeStudy(path.join(t.dir, 'b'), 1);
      expect((await storescu({ port, files: b.map((s) => s.file) })).acked).toHaveLength(1);
      await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === b[0]!.uid);
      expect((await cli('log-level', 'info')).code).toBe(0);
      expect((await cli('log-level', 'loud')).code).toBe(2);

      // reload: callers narrowed, a second destination, a renewed certificate on the same path.
      const before = await servedFingerprint(tlsPort);
      copyFileSync(certsB.server.cert, path.join(live, 'server.pem'));
      copyFileSync(certsB.server.key, path.join(live, 'server.key'));
      const doc = parse(readFileSync(configFile, 'utf8')) as Record<string, any>;
      doc.receive.callers = [{ aeTitle: 'ONLY_ME', host: '127.0.0.1' }];
      doc.forward.push({ name: 'pacs2', aeTitle: 'PACS2', host: '127.0.0.1', port: pacs2.port, compression: 'none' });
      writeFileSync(configFile, stringify(doc));
      const reloaded = await cli('reload');
      expect(reloaded.code, reloaded.stderr).toBe(0);
      expect(reloaded.stdout).toMatch(/reloaded: .*forward.*receive\.callers/);
      expect(reloaded.stdout).toContain('destinations: added pacs2');
      const after = await servedFingerprint(tlsPort);
      expect(after).not.toBe(before);
      expect(after).toBe((await run('openssl', ['x509', '-in', certsB.server.cert, '-noout', '-fingerprint', '-sha256'])).stdout.trim());
      // The old calling AE title is refused now; the allowed one goes to both destinations.
      expect((await echoscu(port, { callingAe: 'STORESCU' })).code).not.toBe(0);
      const c = writeStudy(path.join(t.dir, 'c'), 2);
      expect((await storescu({ port, files: c.map((s) => s.file), callingAe: 'ONLY_ME' })).acked).toHaveLength(2);
      await waitFor(async () => (await status(configFile)).destinations.find((d) => d.name === 'pacs2')?.sent === 2 || undefined, { what: 'the new destination delivered' });

      // A change a reload cannot make: refused, with the reason, and nothing changed.
      doc.receive.port = await freePort();
      doc.receive.callers = [{ aeTitle: 'SOMEONE_ELSE' }];
      writeFileSync(configFile, stringify(doc));
      const refused = await cli('reload');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/not reloaded: receive\.port change only with a restart \(systemctl restart pacs-edge\); nothing was changed/);
      expect((await echoscu(port, { callingAe: 'ONLY_ME' })).code, 'the callers are unchanged').toBe(0);
      // SIGHUP is a reload too (refused here for the same reason, logged).
      gw.proc.kill('SIGHUP');
      await gw.waitForLog((l) => l.msg === 'SIGHUP: configuration not reloaded' && /receive\.port/.test(String(l.err)));
      expect(gw.proc.exitCode, 'SIGHUP does not end the gateway').toBeNull();

      // Every action is in the audit trail with the operator.
      expect(await gw.stop()).toBe(0);
      const trail = readFileSync(path.join(t.dir, 'audit', (await import('node:fs')).readdirSync(path.join(t.dir, 'audit')).find((n) => n.endsWith('.log'))!), 'utf8');
      for (const what of ['destination pacs paused by root', 'destination pacs resumed by root', 'C-ECHO to destination pacs by root', 'log level set to debug by root', 'configuration reloaded by root']) expect(trail).toContain(what);
    } finally {
      await gw.stop();
      await pacs.stop();
      await pacs2.stop();
      t.cleanup();
    }
  });
});
