import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { openBackup, sealBackup } from '../../src/cli/backup.js';
import { loadConfig } from '../../src/config/load.js';
import { DeviceKey } from '../../src/security/device-key.js';
import { makeCertificates } from '../helpers/certificates.js';
import { CLI, run, tempDir } from '../helpers/processes.js';

/**
 * `pacs-edge backup` / `restore` through the built CLI: a device laid out under a temporary
 * directory A (configuration + profile, device key, TLS files for receive, forward and MQTT, the
 * MQTT password file, the audit trail head), backed up, restored under B.
 */
const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

/** Every file under `dir`, relative. */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** Replace `prefix` at the start of every string in a value (paths under the restore root mapped back). */
function unroot<T>(v: T, prefix: string): T {
  if (typeof v === 'string') return (v.startsWith(`${prefix}/`) ? v.slice(prefix.length) : v) as T;
  if (Array.isArray(v)) return v.map((x) => unroot(x, prefix)) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unroot(x, prefix)])) as T;
  return v;
}

describe('pacs-edge backup / restore', () => {
  const tmp = tempDir('pacs-edge-backup-');
  const A = path.join(tmp.dir, 'device');
  const etc = path.join(A, 'etc/pacs-edge');
  const state = path.join(A, 'var/lib/pacs-edge');
  const configFile = path.join(etc, 'gateway.yaml');
  const pass = path.join(tmp.dir, 'pass.txt');
  const out = path.join(tmp.dir, 'backups', 'edge.peb');
  const secretFiles = new Set<string>();
  const files: string[] = [];
  /** Files as they were when the backup was taken (the audit head moves on after it). */
  const before = new Map<string, Buffer>();

  const put = (file: string, data: Buffer | string, secret = false) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
    files.push(file);
    if (secret) secretFiles.add(file);
  };

  beforeAll(async () => {
    put(path.join(etc, 'profiles/board.yaml'), stringify({ receive: { maxAssociations: 4 }, workers: { threads: 2 }, security: { integrity: 'enforce' } }));
    // Real certificates and keys: check-config parses them (test/helpers/certificates.ts, openssl).
    const certs = makeCertificates(mkdirSync(path.join(tmp.dir, 'certs'), { recursive: true })!, 'PACS_EDGE');
    put(path.join(etc, 'tls/server.pem'), readFileSync(certs.server.cert));
    put(path.join(etc, 'tls/server.key'), readFileSync(certs.server.key), true);
    put(path.join(etc, 'tls/ca.pem'), readFileSync(certs.ca));
    put(path.join(etc, 'tls/pacs-client.pem'), readFileSync(certs.client.cert));
    put(path.join(etc, 'tls/pacs-client.key'), readFileSync(certs.client.key), true);
    put(path.join(etc, 'mqtt.pass'), 's3cret-mqtt\n', true);
    put(path.join(etc, 'syslog-ca.pem'), readFileSync(certs.ca));
    put(path.join(state, 'audit/head.json'), JSON.stringify({ seq: 42, hmac: 'ab'.repeat(32) }));
    const config = {
      extends: 'profiles/board.yaml',
      device: { id: 'edge-backup-test' },
      receive: {
        aeTitle: 'EDGE_CT1',
        host: '127.0.0.1',
        callers: [{ aeTitle: 'CT1', host: '192.0.2.10' }],
        tls: { port: 2762, cert: 'tls/server.pem', key: 'tls/server.key', ca: 'tls/ca.pem' },
      },
      spool: { dir: path.join(state, 'spool') },
      forward: [{ name: 'pacs', aeTitle: 'PACS', host: '198.51.100.20', port: 2762, tls: { ca: path.join(etc, 'tls/ca.pem'), cert: 'tls/pacs-client.pem', key: 'tls/pacs-client.key' } }],
      health: { mqtt: { url: 'mqtts://broker.example:8883', username: 'edge', passwordFile: 'mqtt.pass', tls: { ca: 'tls/ca.pem' } } },
      audit: { syslog: { host: 'syslog.example', ca: 'syslog-ca.pem' } },
    };
    put(configFile, stringify(config));
    // The device key as the gateway makes it at its first start.
    DeviceKey.loadOrCreate(path.join(state, 'keys/device.key'));
    files.push(path.join(state, 'keys/device.key'));
    secretFiles.add(path.join(state, 'keys/device.key'));
    writeFileSync(pass, 'correct horse battery staple\n');

    before.set(path.join(state, 'audit/head.json'), readFileSync(path.join(state, 'audit/head.json')));
    const r = await cli('backup', '--config', configFile, '--out', out, '--passphrase-file', pass);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('device key included');
    // The export of the keys is itself audited, through the inbox: backup only reads, so the
    // trail (its head too) is left as it was, and the gateway records it at its next start.
    expect(r.stdout).toMatch(/^audit: queued in the audit inbox/m);
    expect(readFileSync(path.join(state, 'audit/head.json'))).toEqual(before.get(path.join(state, 'audit/head.json')));
  });

  afterAll(() => tmp.cleanup());

  it('writes one 0600 file that shows nothing of what it holds', () => {
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const bytes = readFileSync(out);
    expect(bytes.subarray(0, 16).toString('latin1')).toBe('PACS-EDGE-BACKUP');
    const text = bytes.toString('latin1');
    for (const needle of ['edge-backup-test', 'gateway.yaml', 'BEGIN', 'device.key', 's3cret', etc]) expect(text).not.toContain(needle);
    expect(bytes.includes(readFileSync(path.join(state, 'keys/device.key')))).toBe(false);
  });

  it('restores into a new root: same configuration, same key bytes, same certificate files, modes 0600/0640', async () => {
    const B = path.join(tmp.dir, 'restored');
    const r = await cli('restore', '--in', out, '--passphrase-file', pass, '--root', B);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const f of files) {
      const restored = path.join(B, f);
      expect(readFileSync(restored).equals(before.get(f) ?? readFileSync(f)), `${f} restored byte for byte`).toBe(true);
      expect(statSync(restored).mode & 0o777, f).toBe(secretFiles.has(f) ? 0o600 : 0o640);
    }
    expect(listFiles(B).sort()).toEqual(files.map((f) => path.relative('/', f)).sort());
    // check-config on the restored file, and the same validated configuration.
    const check = await cli('check-config', '--config', path.join(B, configFile));
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(unroot(loadConfig(path.join(B, configFile)), B)).toEqual(loadConfig(configFile));
  });

  it('refuses to overwrite without --force, and overwrites with it', async () => {
    const B = path.join(tmp.dir, 'restored-twice');
    expect((await cli('restore', '--in', out, '--passphrase-file', pass, '--root', B)).code).toBe(0);
    writeFileSync(path.join(B, configFile), 'changed: true\n');
    const again = await cli('restore', '--in', out, '--passphrase-file', pass, '--root', B);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refusing to overwrite .*--force/);
    expect(readFileSync(path.join(B, configFile), 'utf8')).toBe('changed: true\n');
    const forced = await cli('restore', '--in', out, '--passphrase-file', pass, '--root', B, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(path.join(B, configFile)).equals(readFileSync(configFile))).toBe(true);
  });

  it('wrong passphrase: a clear error, non-zero exit, nothing written', async () => {
    const wrong = path.join(tmp.dir, 'wrong.txt');
    writeFileSync(wrong, 'correct horse battery stapler\n');
    const C = path.join(tmp.dir, 'wrong-root');
    const r = await cli('restore', '--in', out, '--passphrase-file', wrong, '--root', C);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('wrong passphrase');
    expect(listFiles(C)).toEqual([]);
  });

  it('a changed byte anywhere is refused (AES-GCM), nothing written', async () => {
    const sealed = readFileSync(out);
    // In the ciphertext, in the tag, and in the authenticated header (the nonce).
    for (const at of [68 + Math.floor((sealed.length - 84) / 2), sealed.length - 1, 45]) {
      const bad = Buffer.from(sealed);
      bad[at] = bad[at]! ^ 0x01;
      const badFile = path.join(tmp.dir, `tampered-${at}.peb`);
      writeFileSync(badFile, bad);
      const D = path.join(tmp.dir, `tampered-root-${at}`);
      const r = await cli('restore', '--in', badFile, '--passphrase-file', pass, '--root', D);
      expect(r.code, `byte ${at}`).toBe(1);
      expect(r.stderr, `byte ${at}`).toMatch(/tampered|damaged/);
      expect(listFiles(D)).toEqual([]);
    }
  });

  it('a configuration whose device key does not exist yet is backed up without it, and says so', async () => {
    const E = path.join(tmp.dir, 'fresh');
    const cfg = path.join(E, 'gateway.yaml');
    mkdirSync(E);
    writeFileSync(cfg, stringify({ device: { id: 'fresh' }, receive: { aeTitle: 'EDGE', callers: [{ aeTitle: 'CT' }] }, spool: { dir: 'spool' } }));
    const r = await cli('backup', '--config', cfg, '--out', path.join(E, 'fresh.peb'), '--passphrase-file', pass);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/device key .*does not exist yet.*not included/);
    expect(r.stdout).toContain('no device key');
  });

  it('a short passphrase is refused for a new backup', async () => {
    const short = path.join(tmp.dir, 'short.txt');
    writeFileSync(short, 'hunter2\n');
    const r = await cli('backup', '--config', configFile, '--out', path.join(tmp.dir, 'short.peb'), '--passphrase-file', short);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/at least 12 characters/);
    expect(existsSync(path.join(tmp.dir, 'short.peb'))).toBe(false);
  });
});

describe('backup file format', () => {
  it('round-trips, and tells a wrong passphrase from a damaged file', () => {
    const payload = Buffer.from('{"format":"pacs-edge-backup"}');
    const sealed = sealBackup(payload, 'a long enough passphrase');
    expect(openBackup(sealed, 'a long enough passphrase').equals(payload)).toBe(true);
    expect(() => openBackup(sealed, 'another passphrase!!')).toThrow(/wrong passphrase/);
    const bad = Buffer.from(sealed);
    bad[70] = bad[70]! ^ 0x80;
    expect(() => openBackup(bad, 'a long enough passphrase')).toThrow(/tampered/);
    expect(() => openBackup(Buffer.from('not a backup at all, really not'), 'x')).toThrow(/not a pacs-edge backup/);
    const future = Buffer.from(sealed);
    future[16] = 2;
    expect(() => openBackup(future, 'a long enough passphrase')).toThrow(/version 2/);
  });

  it('new backups cost scrypt N = 2^17; a header that would make a restore derive with 128 GiB is refused before any work', () => {
    const sealed = sealBackup(Buffer.from('{}'), 'a long enough passphrase');
    expect([sealed[18], sealed[19], sealed[20]]).toEqual([17, 8, 1]);
    const greedy = Buffer.from(sealed);
    greedy[18] = 20;
    greedy[19] = 32;
    greedy[20] = 16;
    // Refused from the header alone (the parameters are checked before any key is derived).
    expect(() => openBackup(greedy, 'a long enough passphrase')).toThrow(/KDF parameters out of range/);
  });
});
