import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/validate.js';
import { DeviceKey } from '../../src/security/device-key.js';
import { commentKey, sealKeyOf, sealProfileOf, spoolKeks } from '../../src/security/spool-key.js';
import { tempDir } from '../helpers/processes.js';

describe('device key (spool.encryption.keyFile)', () => {
  const t = tempDir('pacs-edge-key-');
  afterAll(() => t.cleanup());

  it('is made once, 32 random bytes, mode 0600, in a 0700 directory; later loads give the same key', () => {
    const file = path.join(t.dir, 'keys', 'device.key');
    const a = DeviceKey.loadOrCreate(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readFileSync(file)).toHaveLength(32);
    const b = DeviceKey.loadOrCreate(file);
    expect(b.derive('spool-kek').equals(a.derive('spool-kek'))).toBe(true);
    // Purposes never share a key, and the device key itself is never one of them.
    expect(a.derive('spool-kek').equals(a.derive('audit-chain'))).toBe(false);
    expect(a.derive('spool-kek').equals(readFileSync(file))).toBe(false);
  });

  it('tightens a key file others can read back to 0600, and refuses one of the wrong size', () => {
    const file = path.join(t.dir, 'loose.key');
    writeFileSync(file, Buffer.alloc(32, 7));
    chmodSync(file, 0o644);
    DeviceKey.load(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const short = path.join(t.dir, 'short.key');
    writeFileSync(short, Buffer.alloc(16), { mode: 0o600 });
    expect(() => DeviceKey.load(short)).toThrow(expect.objectContaining({ code: 'KEY_FILE_INVALID' }));
  });

  it('may not live inside the spool it protects', () => {
    const doc = (keyFile: string) => ({
      device: { id: 'e' },
      receive: { aeTitle: 'A', callers: [{ aeTitle: 'B' }] },
      spool: { dir: '/data/spool', encryption: { keyFile } },
    });
    expect(() => validateConfig(doc('/data/spool/keys/device.key'), { baseDir: '/' })).toThrow(/spool\.encryption\.keyFile: must not be inside spool\.dir/);
    expect(validateConfig(doc('/data/keys/device.key'), { baseDir: '/' }).spool.encryption.keyFile).toBe('/data/keys/device.key');
  });

  it('derives a KEK of its own for every sealing profile, always all of them, so a change of profile strands nothing', () => {
    const key = DeviceKey.fromBytes(Buffer.alloc(32, 9), 'mem');
    const keks = spoolKeks(key);
    expect(Object.keys(keks).sort()).toEqual(['aes-256-gcm', 'chacha20-poly1305', 'gm']);
    expect(keks['chacha20-poly1305']).toHaveLength(32);
    expect(keks['chacha20-poly1305'].equals(key.derive('spool-kek-chacha20'))).toBe(true);
    // No key serves two algorithms: the chacha KEK is neither the AES KEK nor part of gm's.
    expect(keks['chacha20-poly1305'].equals(keks['aes-256-gcm'])).toBe(false);
    expect(keks.gm.includes(keks['chacha20-poly1305'])).toBe(false);
    for (const p of ['aes-256-gcm', 'gm', 'chacha20-poly1305'] as const) {
      const k = sealKeyOf(key, p);
      expect(k.kek.equals(keks[p])).toBe(true);
      expect(Object.keys(k.others ?? {}).sort()).toEqual(['aes-256-gcm', 'chacha20-poly1305', 'gm']);
      const c = commentKey(key, p);
      expect(c.kek.equals(k.kek), 'the Error Comment key is not the spool KEK').toBe(false);
      expect(Object.keys(c.others ?? {}).sort()).toEqual(['aes-256-gcm', 'chacha20-poly1305', 'gm']);
    }
    expect(sealProfileOf('none')).toBe('aes-256-gcm');
    expect(sealProfileOf('chacha20-poly1305')).toBe('chacha20-poly1305');
  });
});
