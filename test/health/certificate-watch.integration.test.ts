import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { issueCertificate, makeCertificates } from '../helpers/certificates.js';
import { type Broker, record, startMosquitto } from '../helpers/mosquitto.js';
import { CLI, freePort, type GatewayProcess, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * Certificate expiry with the real gateway, real storescu/echoscu over TLS and a real Mosquitto.
 * The receive certificate has 5 days left (the 7-day threshold), a destination's client
 * certificate expired yesterday (made with `openssl ca -startdate/-enddate`, no clock faking).
 * The gateway starts and receives anyway, says so (log, MQTT, audit), shows the days left in
 * status and /metrics; a renewed certificate on the same path is picked up by SIGHUP.
 */
type Cert = { role: string; name: string; daysLeft: number | null; expired: boolean; notAfter: string | null };

describe('certificate expiry', () => {
  const tmp = tempDir('pacs-edge-certs-');
  const certDir = path.join(tmp.dir, 'certs');
  let certs: ReturnType<typeof makeCertificates>;
  let broker: Broker;
  let gw: GatewayProcess | undefined;
  let tlsPort: number;
  let metricsPort: number;
  let events: Awaited<ReturnType<typeof record>>;
  /** The receive certificate's path: renewed in place. */
  const serverCert = path.join(certDir, 'receive.pem');
  const serverKey = path.join(certDir, 'receive.key');
  const tlsArgs = () => ['+tls', certs.client.key, certs.client.cert, '+cf', certs.ca];
  const status = async () => (await controlGet(path.join(gw!.spoolDir, 'control.sock'), '/status')) as { certificates: Cert[] };
  const cert = async (role: string) => (await status()).certificates.find((c) => c.role === role)!;

  beforeAll(async () => {
    mkdirSync(certDir);
    certs = makeCertificates(certDir, 'MODALITY');
    const soon = issueCertificate({ dir: certDir, name: 'receive-5d', ca: certs.ca, caKey: certs.caKey, cn: '127.0.0.1', daysLeft: 5 });
    copyFileSync(soon.cert, serverCert);
    copyFileSync(soon.key, serverKey);
    const expired = issueCertificate({ dir: certDir, name: 'forward-expired', ca: certs.ca, caKey: certs.caKey, cn: 'edge', daysLeft: -1 });
    broker = await startMosquitto(tmp.dir);
    events = await record(broker.url, 'pacs-edge/edge-certs/events');
    tlsPort = await freePort();
    metricsPort = await freePort();
    gw = await startGateway({
      dir: tmp.dir,
      port: tlsPort,
      receive: { port: undefined, tls: { port: tlsPort, cert: serverCert, key: serverKey, ca: certs.ca, requireClientCert: true } },
      config: {
        device: { id: 'edge-certs' },
        health: { mqtt: { url: broker.url, intervalSeconds: 1 }, metrics: { port: metricsPort } },
        // Nothing listens there: the destination is only a holder of an expired client certificate.
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: await freePort(), compression: 'none', tls: { ca: certs.ca, cert: expired.cert, key: expired.key } }],
      },
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await events?.close();
    await broker?.stop();
    tmp.cleanup();
  });

  const parsed = () => events.messages.map((m) => JSON.parse(m.text) as Record<string, unknown>);

  it('days left of every certificate in status and /metrics; MQTT and a warning at 7 days; an expired one is an error, an MQTT event and an audit record, and the gateway keeps receiving', async () => {
    const receive = await cert('receive');
    expect(receive.expired).toBe(false);
    expect(receive.daysLeft).toBeGreaterThan(4.9);
    expect(receive.daysLeft).toBeLessThanOrEqual(5);
    const forward = (await status()).certificates.find((c) => c.role === 'forward')!;
    expect(forward).toMatchObject({ name: 'pacs', expired: true });
    expect(forward.daysLeft).toBeLessThan(0);

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const gauge = (role: string) => Number(new RegExp(`^pacs_edge_certificate_days_left\\{role="${role}",name="[^"]+"\\} (-?[\\d.]+)$`, 'm').exec(metrics)?.[1]);
    expect(gauge('receive')).toBeCloseTo(receive.daysLeft!, 1);
    expect(gauge('forward')).toBeLessThan(0);

    const expiring = await waitFor(() => parsed().find((e) => e.type === 'certificate-expiring' && e.role === 'receive'), { what: 'certificate-expiring (receive)' });
    expect(expiring).toMatchObject({ threshold: 7, name: 'receive' });
    // Once per threshold: the 30-day one it also passed is not announced separately.
    expect(parsed().filter((e) => e.type === 'certificate-expiring' && e.role === 'receive')).toHaveLength(1);
    await waitFor(() => parsed().find((e) => e.type === 'certificate-expired' && e.role === 'forward' && e.name === 'pacs'), { what: 'certificate-expired (forward)' });
    expect(gw!.logs.some((l) => /^the receive certificate expires in 4 days/.test(l.msg))).toBe(true);
    expect(gw!.logs.some((l) => l.msg.startsWith('SECURITY ALERT: the forward certificate of pacs EXPIRED'))).toBe(true);

    // Still receiving over TLS.
    const echo = await run('echoscu', [...tlsArgs(), '-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)], { timeoutMs: 30_000 });
    expect(echo.code, echo.stdout + echo.stderr).toBe(0);
  });

  it('SIGHUP and pacs-edge reload re-read the certificates: a renewed receive certificate on the same path changes the days left, and TLS storescu works with it', async () => {
    const renewed = issueCertificate({ dir: certDir, name: 'receive-60d', ca: certs.ca, caKey: certs.caKey, cn: '127.0.0.1', daysLeft: 60 });
    copyFileSync(renewed.cert, serverCert);
    copyFileSync(renewed.key, serverKey);
    gw!.proc.kill('SIGHUP');
    await gw!.waitForLog((l) => l.msg === 'SIGHUP: configuration reloaded');
    const receive = await waitFor(async () => ((c) => (c.daysLeft! > 59 ? c : undefined))(await cert('receive')), { what: 'the renewed certificate in status' });
    expect(receive.notAfter).toBe(renewed.notAfter.toISOString());
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(Number(/^pacs_edge_certificate_days_left\{role="receive",name="receive"\} ([\d.]+)$/m.exec(metrics)?.[1])).toBeGreaterThan(59);

    const study = path.join(tmp.dir, 'study');
    mkdirSync(study);
    const files = writeStudy(study, 2);
    const r = await storescu({ port: tlsPort, files: files.map((f) => f.file), extraArgs: tlsArgs() });
    expect(r.acked, r.stdout + r.stderr).toEqual([1, 2]);
    // The new certificate is the one presented.
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-cert', certs.client.cert, '-key', certs.client.key, '-CAfile', certs.ca], { timeoutMs: 15_000 });
    const served = await run('sh', ['-c', `printf '%s' "$0" | openssl x509 -noout -enddate`, s.stdout], { timeoutMs: 15_000 });
    expect(new Date(served.stdout.trim().replace('notAfter=', '')).toISOString()).toBe(renewed.notAfter.toISOString());

    // The same through the control socket: `pacs-edge reload`.
    const later = issueCertificate({ dir: certDir, name: 'receive-90d', ca: certs.ca, caKey: certs.caKey, cn: '127.0.0.1', daysLeft: 90 });
    copyFileSync(later.cert, serverCert);
    copyFileSync(later.key, serverKey);
    const rl = await run(process.execPath, [CLI, 'reload', '--config', gw!.configFile], { timeoutMs: 30_000 });
    expect(rl.code, rl.stdout + rl.stderr).toBe(0);
    expect((await cert('receive')).notAfter).toBe(later.notAfter.toISOString());
  });

  it('the expired certificate is in the audit trail as a Security Alert (110113), and the trail verifies', async () => {
    expect(await gw!.stop()).toBe(0);
    const auditDir = path.join(tmp.dir, 'audit');
    const text = readdirSync(auditDir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => readFileSync(path.join(auditDir, f), 'utf8'))
      .join('');
    expect(text).toMatch(/forward certificate of destination pacs \([^)]*\) expired on/);
    expect(text).toContain('110113');
    const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', gw!.configFile], { timeoutMs: 30_000 });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    gw = undefined;
  });
});
