import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { checkNamedFiles } from '../../src/config/file-check.js';
import { loadConfig } from '../../src/config/load.js';
import { makeCertificates } from '../helpers/certificates.js';
import { CLI, ROOT, run, tempDir, writeGatewayConfig } from '../helpers/processes.js';
import { requireRoot } from '../helpers/root.js';

/**
 * Issue 13: `check-config` checks every file the configuration names — present, readable by the
 * service user, parsing — and every certificate's days left; `pacs-edge init` writes a
 * validated configuration from a board profile and a few answers, keeping the one it replaces.
 */
const DAY = 86_400_000;

async function withTls() {
  const t = tempDir();
  const certs = makeCertificates(mkdirSync(path.join(t.dir, 'certs'), { recursive: true })!, 'MODALITY');
  const { configFile } = await writeGatewayConfig({ dir: t.dir, receive: { tls: { port: 2762, cert: certs.server.cert, key: certs.server.key, ca: certs.ca } } });
  return { t, certs, configFile };
}

describe('check-config: the files a configuration names', () => {
  it('certificates parse and say their days left (soon to expire: a warning); keys parse; the device key not made yet is a note', async () => {
    const { t, certs, configFile } = await withTls();
    try {
      const checks = checkNamedFiles(loadConfig(configFile));
      const by = Object.fromEntries(checks.map((c) => [c.key, c]));
      expect(by['receive.tls.cert']).toMatchObject({ ok: true, warning: true, file: certs.server.cert });
      expect(by['receive.tls.cert']!.detail).toMatch(/^certificate CN=\S+, expires \d{4}-\d\d-\d\d \(\d days left\)$/);
      expect(by['receive.tls.key']).toMatchObject({ ok: true, detail: 'private key (rsa)' });
      expect(by['receive.tls.ca']).toMatchObject({ ok: true });
      expect(by['spool.encryption.keyFile']).toMatchObject({ ok: true, warning: true });
      expect(by['spool.encryption.keyFile']!.detail).toMatch(/not made yet/);
      const r = await run(process.execPath, [CLI, 'check-config', '--config', configFile]);
      expect(r.code, r.stderr).toBe(EXIT.ok);
      expect(r.stdout).toMatch(/: valid \(/);
      expect(r.stdout).toMatch(/warn {2}receive\.tls\.cert .*days left\)/);
    } finally {
      t.cleanup();
    }
  });

  it('an expired certificate, a missing file and one that does not parse each fail, by name', async () => {
    const { t, certs, configFile } = await withTls();
    try {
      // Ten days on, the two-day certificates have expired.
      const later = checkNamedFiles(loadConfig(configFile), Date.now() + 10 * DAY);
      expect(later.find((c) => c.key === 'receive.tls.cert')).toMatchObject({ ok: false });
      expect(later.find((c) => c.key === 'receive.tls.cert')!.detail).toMatch(/EXPIRED on \d{4}-\d\d-\d\d \(\d+ days ago\)/);
      // Before a start (the unit's ExecStartPre) an expired certificate is a warning, not a refusal.
      const { checkConfigCommand } = await import('../../src/cli/check-config.js');
      const realNow = Date.now;
      Date.now = () => realNow() + 10 * DAY;
      try {
        expect(checkConfigCommand(configFile, { forStart: true })).toBe(EXIT.ok);
        expect(checkConfigCommand(configFile)).toBe(EXIT.failed);
      } finally {
        Date.now = realNow;
      }
      writeFileSync(certs.ca, 'not a certificate\n');
      const { rmSync } = await import('node:fs');
      rmSync(certs.server.key);
      const r = await run(process.execPath, [CLI, 'check-config', '--config', configFile]);
      expect(r.code).toBe(EXIT.failed);
      expect(r.stderr).toMatch(/INVALID \(/);
      expect(r.stderr).toContain(`FAIL  receive.tls.key ${certs.server.key}: missing`);
      expect(r.stderr).toContain(`FAIL  receive.tls.ca ${certs.ca}: holds no PEM certificate`);
    } finally {
      t.cleanup();
    }
  });

  it('a file the service user cannot read fails, naming the user', async (ctx) => {
    if (!requireRoot(ctx, 'chown the spool to another user')) return;
    const { t, certs, configFile } = await withTls();
    try {
      chmodSync(t.dir, 0o755);
      const spool = path.join(t.dir, 'spool');
      mkdirSync(spool, { recursive: true });
      chownSync(spool, 65534, 65534); // the service user: nobody
      chmodSync(certs.server.key, 0o600); // root's
      const r = await run(process.execPath, [CLI, 'check-config', '--config', configFile]);
      expect(r.code).toBe(EXIT.failed);
      expect(r.stderr).toMatch(new RegExp(`FAIL {2}receive\\.tls\\.key ${certs.server.key.replace(/[.]/g, '\\.')}: the service user \\(nobody\\) cannot read it`));
      chownSync(certs.server.key, 65534, 65534);
      for (const f of [certs.server.cert, certs.ca]) chmodSync(f, 0o644);
      const again = await run(process.execPath, [CLI, 'check-config', '--config', configFile]);
      expect(again.code, again.stderr).toBe(EXIT.ok);
    } finally {
      t.cleanup();
    }
  });
});

describe('pacs-edge init', () => {
  const answers = (out: string, spool: string) => [
    'init', '--config', out, '--profile', 'arm64-4c-2g', '--device-id', 'edge-ct9', '--ae-title', 'EDGE_CT9', '--host', '127.0.0.1', '--port', '11999',
    '--modality-ae', 'CT9', '--modality-host', '192.0.2.9', '--pacs-ae', 'PACS', '--pacs-host', '198.51.100.5', '--pacs-port', '104', '--mqtt-url', 'mqtt://127.0.0.1:1883', '--spool', spool,
  ];

  it('writes a validated configuration from a board profile, keeps the one it replaces, and checks it', async () => {
    const t = tempDir();
    try {
      const out = path.join(t.dir, 'gateway.yaml');
      writeFileSync(out, '# the placeholder\n');
      const r = await run(process.execPath, [CLI, ...answers(out, path.join(t.dir, 'spool'))]);
      expect(r.code, r.stdout + r.stderr).toBe(EXIT.ok);
      expect(r.stdout).toContain(`${out}: written (the previous file is ${out}.previous)`);
      expect(r.stdout).toContain(`${out}: valid (device edge-ct9, AE EDGE_CT9 on 127.0.0.1:11999, 1 destination(s))`);
      expect(readFileSync(`${out}.previous`, 'utf8')).toBe('# the placeholder\n');
      const c = loadConfig(out);
      expect(c.receive.callers).toEqual([{ aeTitle: 'CT9', host: '192.0.2.9' }]);
      expect(c.forward[0]).toMatchObject({ name: 'pacs', aeTitle: 'PACS', host: '198.51.100.5', port: 104 });
      expect(c.health.mqtt?.url).toBe('mqtt://127.0.0.1:1883');
      // The profile's limits came with it.
      expect(c.security.integrity).toBe('enforce');
      expect(readFileSync(out, 'utf8')).toContain(`extends: ${path.join(ROOT, 'firmware-config/profiles/arm64-4c-2g.yaml')}`);
    } finally {
      t.cleanup();
    }
  });

  it('refuses missing answers (exit 2) and an invalid one (exit 1, nothing written)', async () => {
    const t = tempDir();
    try {
      const out = path.join(t.dir, 'gateway.yaml');
      const missing = await run(process.execPath, [CLI, 'init', '--config', out, '--device-id', 'x']);
      expect(missing.code).toBe(EXIT.usage);
      expect(missing.stderr).toMatch(/--ae-title, --modality-ae, --pacs-ae, --pacs-host, --pacs-port required/);
      const bad = await run(process.execPath, [CLI, ...answers(out, path.join(t.dir, 'spool')).map((a) => (a === '104' ? '99999' : a))]);
      expect(bad.code).toBe(EXIT.failed);
      expect(bad.stderr).toMatch(/forward\[0\]\.port: 99999 is out of range/);
      expect(bad.stderr).toContain('nothing was written');
      expect(existsSync(out)).toBe(false);
    } finally {
      t.cleanup();
    }
  });
});
