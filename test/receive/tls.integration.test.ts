import { mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates } from '../helpers/certificates.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, type GatewayProcess, nothingPending, run, runGateway, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * DICOM over TLS (PS3.15 B.9, BCP 195) with DCMTK as the real peers: storescu/echoscu `+tls`
 * as the modality, storescp `+tls` as the PACS. The gateway listens on TLS only (no plain port),
 * requires a client certificate signed by its CA, and forwards over TLS with its own certificate.
 */
/** TCP ports the process listens on: its socket inodes matched against /proc/net/tcp{,6} LISTEN rows. */
function listeningTcpPorts(pid: number): number[] {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        } catch {
          return undefined;
        }
      })
      .filter((x): x is string => x !== undefined),
  );
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** A TLS version Node's client can be told to speak (and nothing else). */
type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2';

/**
 * One handshake from a client that offers exactly `version`, with OpenSSL's security level
 * lowered to 0 so that the client itself accepts TLS 1.0/1.1 and their suites (OpenSSL 3's
 * defaults would refuse them on the client side, which would prove nothing about the server).
 * Resolves with the protocol agreed, or with the error the client got.
 */
function handshake(port: number, version: TlsVersion, files: { cert: string; key: string; ca: string }): Promise<{ protocol?: string; error?: string; detail?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect(
      {
        host: '127.0.0.1',
        port,
        minVersion: version,
        maxVersion: version,
        ciphers: 'DEFAULT@SECLEVEL=0',
        cert: readFileSync(files.cert),
        key: readFileSync(files.key),
        ca: readFileSync(files.ca),
        checkServerIdentity: () => undefined,
      },
      () => {
        resolve({ protocol: socket.getProtocol() ?? undefined });
        socket.destroy();
      },
    );
    socket.once('error', (err: Error & { code?: string }) => resolve({ error: err.code ?? err.message, detail: err.message }));
  });
}

describe('DICOM TLS: TLS-only SCP and TLS SCU', () => {
  const tmp = tempDir('pacs-edge-tls-');
  let certs: ReturnType<typeof makeCertificates>;
  /** A second client certificate from a CA the gateway does not trust. */
  let stranger: ReturnType<typeof makeCertificates>;
  let gw: GatewayProcess;
  let tlsPort: number;
  let plainPort: number;
  let pacs: Awaited<ReturnType<typeof startStorescp>>;
  const pacsDir = path.join(tmp.dir, 'pacs');
  const tlsArgs = (c = certs) => ['+tls', c.client.key, c.client.cert, '+cf', c.ca];

  beforeAll(async () => {
    mkdirSync(path.join(tmp.dir, 'certs'));
    mkdirSync(path.join(tmp.dir, 'stranger'));
    mkdirSync(pacsDir);
    certs = makeCertificates(path.join(tmp.dir, 'certs'), 'MODALITY');
    stranger = makeCertificates(path.join(tmp.dir, 'stranger'), 'INTRUDER');
    const pacsPort = await freePort();
    // The PACS: TLS with the same CA; it requires our client certificate (DCMTK's default -rc).
    pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort, tls: { server: ['+tls', certs.server.key, certs.server.cert, '+cf', certs.ca], client: tlsArgs() } });
    tlsPort = await freePort();
    plainPort = await freePort();
    gw = await startGateway({
      dir: tmp.dir,
      port: tlsPort, // the helper waits for the first listener's port
      receive: { port: undefined, tls: { port: tlsPort, cert: certs.server.cert, key: certs.server.key, ca: certs.ca, requireClientCert: true } },
      spool: { compressAtRest: false },
      config: {
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none', tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key } }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      },
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await pacs?.stop();
    tmp.cleanup();
  });

  it('stores what a modality sends over TLS with its certificate, and forwards it over TLS byte for byte', async () => {
    mkdirSync(path.join(tmp.dir, 'study'));
    const study = writeStudy(path.join(tmp.dir, 'study'), 3, { rows: 64, cols: 64 });
    const r = await storescu({ port: tlsPort, files: study.map((s) => s.file), extraArgs: tlsArgs() });
    expect(r.acked).toEqual([1, 2, 3]);
    const echo = await run('echoscu', [...tlsArgs(), '-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)]);
    expect(echo.code).toBe(0);
    await waitFor(() => nothingPending(gw.spoolDir), { what: 'delivery over TLS', timeoutMs: 30_000 });
    const files = readdirSync(pacsDir).filter((n) => n.endsWith('.dcm'));
    expect(files).toHaveLength(3);
    const sent = new Map(study.map((s) => [s.uid, datasetBytes(s.file)]));
    for (const f of files) {
      const got = datasetBytes(path.join(pacsDir, f));
      expect([...sent.values()].some((b) => b.equals(got))).toBe(true);
    }
    await gw.waitForLog((l) => l.msg === 'connection' && /^TLSv1\.[23]$/.test(String(l.tls)) && l.peerCert === 'MODALITY');
  }, 60_000);

  it('refuses plain DICOM on the TLS port, a client without a certificate, and one whose CA it does not trust', async () => {
    // Plain DICOM to the TLS port: no association.
    const plain = await run('echoscu', ['-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)], { timeoutMs: 20_000 });
    expect(plain.code).not.toBe(0);
    // Anonymous TLS (no client certificate) while the gateway requires one.
    const anon = await run('echoscu', ['+tla', '+cf', certs.ca, '-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)], { timeoutMs: 20_000 });
    expect(anon.code).not.toBe(0);
    // A certificate from a CA the gateway does not trust.
    const foreign = await run('echoscu', ['+tls', stranger.client.key, stranger.client.cert, '+cf', certs.ca, '-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)], { timeoutMs: 20_000 });
    expect(foreign.code).not.toBe(0);
    await waitFor(() => gw.logs.filter((l) => l.msg === 'TLS handshake failed: connection refused').length >= 3 || undefined, { what: 'three refused handshakes logged' });
    // And the gateway keeps serving.
    expect((await run('echoscu', [...tlsArgs(), '-aec', 'PACS_EDGE', '127.0.0.1', String(tlsPort)])).code).toBe(0);
  }, 60_000);

  it('refuses TLS below 1.2 itself (the client offers it) and speaks no weak TLS 1.2 suites', async () => {
    const sClient = (args: string[]) =>
      run('sh', ['-c', `echo | openssl s_client -connect 127.0.0.1:${tlsPort} -cert ${certs.client.cert} -key ${certs.client.key} -CAfile ${certs.ca} ${args.join(' ')} 2>&1`], { timeoutMs: 20_000 });
    // TLS 1.0 and 1.1: the client below offers them and would accept them (proved against a
    // server that allows them), so a failure against the gateway is the gateway's refusal: the
    // client receives the server's protocol_version alert (70) and the gateway logs the refusal.
    const permissive = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (sock) => sock.end());
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    try {
      for (const old of ['TLSv1', 'TLSv1.1'] as const) {
        const control = await handshake((permissive.address() as net.AddressInfo).port, old, { ...certs.client, ca: certs.ca });
        expect(control, `the client speaks ${old} to a server that allows it`).toEqual({ protocol: old });
        const refusedBefore = gw.logs.filter((l) => l.msg === 'TLS handshake failed: connection refused').length;
        const r = await handshake(tlsPort, old, { ...certs.client, ca: certs.ca });
        expect(r.protocol, `${old} agreed with the gateway`).toBeUndefined();
        expect(r.error, `${old}: the alert the gateway sent (${r.detail})`).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
        const logged = await waitFor(() => gw.logs.filter((l) => l.msg === 'TLS handshake failed: connection refused').slice(refusedBefore)[0], { what: `the gateway's log of the ${old} refusal` });
        expect(logged.reason, `the gateway's reason for refusing ${old}`).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
      }
    } finally {
      permissive.close();
    }
    // The same client, allowed TLS 1.2, is served: the refusals were about the version.
    expect(await handshake(tlsPort, 'TLSv1.2', { ...certs.client, ca: certs.ca })).toEqual({ protocol: 'TLSv1.2' });
    for (const weak of ['AES128-SHA', 'AES256-GCM-SHA384', 'DHE-RSA-AES128-SHA', 'ECDHE-RSA-AES128-SHA']) {
      const r = await sClient(['-tls1_2', '-cipher', weak]);
      expect(r.stdout, weak).not.toMatch(/Cipher is [A-Z]/);
    }
    const ok = await sClient(['-tls1_2']);
    expect(ok.stdout).toMatch(/Cipher is ECDHE-RSA-AES(128|256)-GCM-SHA(256|384)/);
  }, 60_000);

  it('listens on nothing but the configured TLS port (plus its Unix control socket)', () => {
    expect(listeningTcpPorts(gw.proc.pid!)).toEqual([tlsPort]);
  });

  it('opens no plain DICOM port when only receive.tls is configured', async () => {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: plainPort }, () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    expect(gw.logs.some((l) => /SECURITY ALERT: plain DICOM/.test(l.msg))).toBe(false);
  });
});

describe('DICOM TLS: a plain listener beside TLS', () => {
  it('raises a Security Alert at every start', async () => {
    const tmp = tempDir('pacs-edge-tls-plain-');
    mkdirSync(path.join(tmp.dir, 'certs'));
    const certs = makeCertificates(path.join(tmp.dir, 'certs'), 'MODALITY');
    const first = await startGateway({ dir: tmp.dir, receive: { tls: { port: await freePort(), cert: certs.server.cert, key: certs.server.key, requireClientCert: false } } });
    let second: GatewayProcess | undefined;
    try {
      // Started again on the same configuration: the alert comes again, not only the first time.
      await first.waitForLog((l) => /SECURITY ALERT: plain DICOM listener/.test(l.msg));
      expect(await first.stop()).toBe(0);
      second = await runGateway(first.configFile, { port: first.port, spoolDir: first.spoolDir });
      const starts = [first, second];
      for (const [i, gw] of starts.entries()) {
        await gw.waitForLog((l) => /SECURITY ALERT: plain DICOM listener/.test(l.msg));
        const alerts = gw.logs.filter((l) => /SECURITY ALERT: plain DICOM listener/.test(l.msg));
        expect(alerts.map((l) => l.level), `start ${i + 1}: one Security Alert, at warn`).toEqual(['warn']);
      }
      expect(await second.stop()).toBe(0);
    } finally {
      await first.stop();
      await second?.stop();
      tmp.cleanup();
    }
  });
});
