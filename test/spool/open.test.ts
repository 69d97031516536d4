import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { DeviceKey } from '../../src/security/device-key.js';
import { deviceKeyFor, sealKeyOf } from '../../src/security/spool-key.js';
import { openSpool, readSpool } from '../../src/spool/open.js';
import { sealBuffer, unsealBuffer } from '../../src/security/sealed-file.js';
import { expectPacsEdgeError } from '../helpers/expect-error.js';
import { tempDir, writeGatewayConfig } from '../helpers/processes.js';
import { put } from './conformance.js';

/**
 * The one way to open the spool (src/spool/open.ts) and the recovery rule behind it (issue 12):
 * recovery never discards what it cannot read. Objects sealed under another device key are
 * quarantined in place and come back with the right key; a key that opens none of them, no key,
 * or a missing index is a refusal that changes nothing on disk; a held spool is waited for, then
 * refused.
 */
const log = pino({ level: 'silent' });
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(profile: GatewayConfig['spool']['encryption']['profile'] = 'aes-256-gcm'): Promise<{ config: GatewayConfig; dir: string; key: DeviceKey }> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const { configFile } = await writeGatewayConfig({ dir: t.dir, spool: { encryption: { profile } }, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 104 }] } });
  const config = loadConfig(configFile);
  return { config, dir: t.dir, key: deviceKeyFor(config, { create: true }) };
}

async function fill(config: GatewayConfig, key: DeviceKey, n: number): Promise<string[]> {
  const o = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test' });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await put(o.spool, `1.2.3.${i}`, Buffer.alloc(20_000, i))).id);
  await o.close();
  return ids;
}

/** Every key and value of the index: "nothing changed" at the level the gateway reads. */
async function indexDump(config: GatewayConfig): Promise<string[]> {
  const db = new Level<string, string>(path.join(config.spool.dir, 'index'), { valueEncoding: 'utf8', createIfMissing: false });
  await db.open();
  const out: string[] = [];
  for await (const [k, v] of db.iterator()) if (!k.startsWith('m!')) out.push(`${k}=${v}`);
  await db.close();
  return out;
}

const files = (config: GatewayConfig) =>
  Object.fromEntries(
    readdirSync(path.join(config.spool.dir, 'objects'))
      .sort()
      .map((n) => [n, readFileSync(path.join(config.spool.dir, 'objects', n)).toString('base64').slice(0, 64) + readFileSync(path.join(config.spool.dir, 'objects', n)).length]),
  );

/** Re-seal one object under another device key: a file this box's key cannot open. */
function resealElsewhere(config: GatewayConfig, key: DeviceKey, id: string): Buffer {
  const file = path.join(config.spool.dir, 'objects', `${id}.dcm`);
  const original = readFileSync(file);
  const plain = unsealBuffer(sealKeyOf(key, 'aes-256-gcm'), original);
  writeFileSync(file, sealBuffer(sealKeyOf(DeviceKey.fromBytes(randomBytes(32), 'other'), 'aes-256-gcm'), plain));
  return original;
}

describe('openSpool: recovery never discards what it cannot read', () => {
  it('an object sealed under another key is quarantined in place: kept, queued in the index, not handed out; the right key brings it back', async () => {
    const { config, key } = await world();
    const ids = await fill(config, key, 4);
    const original = resealElsewhere(config, key, ids[1]!);
    const o = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test' });
    expect(o.recovery.unreadable.map((u) => u.id)).toEqual([ids[1]]);
    expect(o.recovery.unreadable[0]!.reason).toMatch(/does not unwrap/);
    expect(o.recovery.lost).toEqual([]);
    expect(o.spool.stats()).toMatchObject({ objects: 4, unreadable: 1, destinations: [{ name: 'pacs', pending: 3 }] });
    expect((await o.spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual([ids[0], ids[2], ids[3]]);
    await o.close();
    // A reader sees the same, and every file is where it was.
    expect(await readSpool(config, async (v) => v.stats())).toMatchObject({ objects: 4, unreadable: 1, destinations: [{ pending: 3 }] });
    expect(Object.keys(files(config))).toHaveLength(4);
    // The file as it was sealed on this box: the next start opens it and sends it.
    writeFileSync(path.join(config.spool.dir, 'objects', `${ids[1]}.dcm`), original);
    const again = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test' });
    expect(again.recovery.unreadable).toEqual([]);
    expect((await again.spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual(ids);
    await again.close();
    expect(await readSpool(config, async (v) => v.stats())).toMatchObject({ unreadable: 0, destinations: [{ pending: 4 }] });
  });

  it('an unreadable object is kept even without its durable marker (not provably unacknowledged)', async () => {
    const { config, key } = await world();
    const ids = await fill(config, key, 2);
    resealElsewhere(config, key, ids[0]!);
    const db = new Level<string, string>(path.join(config.spool.dir, 'index'));
    await db.del(`c!${ids[0]}`);
    await db.close();
    const o = await openSpool(config, { access: 'admin', log, deviceKey: key, command: 'test' });
    expect(o.recovery).toMatchObject({ discardedPartials: 0, unreadable: [{ id: ids[0] }] });
    await o.close();
    expect(Object.keys(files(config))).toEqual(ids.map((id) => `${id}.dcm`));
  });

  it.each(['aes-256-gcm', 'gm', 'chacha20-poly1305'] as const)('a key that opens none of the %s objects is refused, naming the key file, and nothing changes', async (profile) => {
    const { config, key } = await world(profile);
    await fill(config, key, 3);
    const before = { files: files(config), index: await indexDump(config) };
    const wrong = DeviceKey.fromBytes(randomBytes(32), config.spool.encryption.keyFile);
    const err = await expectPacsEdgeError(openSpool(config, { access: 'admin', log, deviceKey: wrong, command: 'test' }), 'SPOOL_KEY_MISMATCH');
    expect(err.message).toContain(config.spool.encryption.keyFile);
    expect(err.message).toContain('Nothing was changed');
    const none = await expectPacsEdgeError(openSpool(config, { access: 'gateway', log, deviceKey: undefined, command: 'test' }), 'SPOOL_KEY_MISSING');
    expect(none.message).toContain('no device key');
    expect({ files: files(config), index: await indexDump(config) }).toEqual(before);
    // The lock went with the refusal: the right key opens it at once.
    const o = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test', lockWaitMs: 0 });
    expect(o.recovery.recovered).toBe(3);
    await o.close();
  });

  it('object files without their index are refused (a deleted index or the wrong volume), and nothing is deleted', async () => {
    const { config, key } = await world();
    await fill(config, key, 2);
    renameSync(path.join(config.spool.dir, 'index'), path.join(config.spool.dir, 'index.aside'));
    const before = files(config);
    await expectPacsEdgeError(openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test' }), 'SPOOL_INDEX_MISSING');
    expect(files(config)).toEqual(before);
    expect(existsSync(path.join(config.spool.dir, 'index'))).toBe(false);
  });

  it('a held spool is waited for, then refused with who holds it; a reader is refused the same way', async () => {
    const { config, key } = await world();
    const holder = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'pacs-edge run' });
    try {
      const err = await expectPacsEdgeError(openSpool(config, { access: 'admin', log, deviceKey: key, command: 'test', lockWaitMs: 300 }), 'SPOOL_LOCKED');
      expect(err.message).toMatch(new RegExp(`in use by pacs-edge run \\(pid ${process.pid}`));
      await expectPacsEdgeError(readSpool(config, async () => 0, { lockWaitMs: 300 }), 'SPOOL_LOCKED');
    } finally {
      await holder.close();
    }
    // Released: a waiting opener gets it as soon as it is free.
    const again = await openSpool(config, { access: 'admin', log, deviceKey: key, command: 'test', lockWaitMs: 0 });
    await again.close();
  });
});

describe('deviceKeyFor: a key is made at the first start only, never over data', () => {
  it('refuses when the key is missing and objects or audit files exist; makes nothing', async () => {
    const { config, key } = await world();
    await fill(config, key, 1);
    const file = config.spool.encryption.keyFile;
    renameSync(file, `${file}.aside`);
    const err = await expectPacsEdgeError(Promise.resolve().then(() => deviceKeyFor(config, { create: true })), 'DEVICE_KEY_MISSING');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/1 spooled object file\(s\)/);
    expect(existsSync(file)).toBe(false);
  });

  it('makes the key on a box with no data yet; a command never makes one', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { configFile } = await writeGatewayConfig({ dir: t.dir });
    const config = loadConfig(configFile);
    await expectPacsEdgeError(Promise.resolve().then(() => deviceKeyFor(config, { create: false })), 'DEVICE_KEY_MISSING');
    expect(existsSync(config.spool.encryption.keyFile)).toBe(false);
    deviceKeyFor(config, { create: true });
    expect(existsSync(config.spool.encryption.keyFile)).toBe(true);
  });
});
