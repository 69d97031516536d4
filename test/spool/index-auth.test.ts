import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import type { DeviceKey } from '../../src/security/device-key.js';
import { deviceKeyFor, indexMacKey } from '../../src/security/spool-key.js';
import { openSpool } from '../../src/spool/open.js';
import { INDEX_MAC_MARKER, RecordCodec, unkeyedRecord } from '../../src/spool/record-codec.js';
import type { SpoolRecord } from '../../src/spool/spool.js';
import { tempDir, writeGatewayConfig } from '../helpers/processes.js';
import { put } from './conformance.js';

/**
 * The index records' MAC (src/spool/record-codec.ts, src/spool/index-auth.ts) at the edges:
 * an interrupted first authentication resumes, a removed marker adopts nothing, a changed or
 * moved record fails, and a record failing its MAC is kept but never handed out.
 */
const log = pino({ level: 'silent' });
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(n: number): Promise<{ config: GatewayConfig; key: DeviceKey; ids: string[]; codec: RecordCodec }> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const { configFile } = await writeGatewayConfig({ dir: t.dir, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 104 }] } });
  const config = loadConfig(configFile);
  const key = deviceKeyFor(config, { create: true });
  const o = await openSpool(config, { access: 'gateway', log, deviceKey: key, command: 'test' });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await put(o.spool, `1.2.3.${i}`, Buffer.alloc(5000, i))).id);
  await o.close();
  return { config, key, ids, codec: new RecordCodec(indexMacKey(key)) };
}

async function index<T>(config: GatewayConfig, fn: (db: Level<string, string>) => Promise<T>): Promise<T> {
  const db = new Level<string, string>(path.join(config.spool.dir, 'index'), { valueEncoding: 'utf8', createIfMissing: false });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const recordOf = (raw: string) => (JSON.parse(raw) as { r: SpoolRecord }).r;

async function reopen(w: { config: GatewayConfig; key: DeviceKey }) {
  const o = await openSpool(w.config, { access: 'gateway', log, deviceKey: w.key, command: 'test' });
  cleanups.push(() => o.close());
  return o;
}

describe('index record authentication', () => {
  it('a record changed on the card (same checksum rules, MAC kept) or moved under another id fails its MAC', async () => {
    const w = await world(2);
    const raw = await index(w.config, async (db) => (await db.get(`o!${w.ids[0]}`))!);
    const r = recordOf(raw);
    expect(w.codec.check(r.id, raw)).toMatchObject({ mac: 'ok' });
    // Destinations changed, checksum recomputed, MAC left as it was.
    const { m } = JSON.parse(raw) as { m: string };
    const changed = JSON.parse(unkeyedRecord({ ...r, pending: ['elsewhere'] })) as Record<string, unknown>;
    expect(w.codec.check(r.id, JSON.stringify({ ...changed, m }))).toEqual({ record: undefined, problem: 'mac' });
    // The whole record, MAC and all, copied under another id.
    expect(w.codec.check(w.ids[1]!, raw)).toEqual({ record: undefined, problem: 'mac' });
    // Another device key's codec does not accept it either.
    const other = new RecordCodec(Buffer.alloc(32, 7), true);
    expect(other.open(r.id, raw)).toBeUndefined();
  });

  it('a record that fails its MAC is kept in the index, quarantined (not handed out), reported as tampered', async () => {
    const w = await world(2);
    await index(w.config, async (db) => {
      const r = recordOf((await db.get(`o!${w.ids[0]}`))!);
      const { m } = JSON.parse((await db.get(`o!${w.ids[0]}`))!) as { m: string };
      await db.put(`o!${w.ids[0]}`, JSON.stringify({ ...(JSON.parse(unkeyedRecord({ ...r, size: r.size + 1 })) as object), m }));
    });
    const o = await reopen(w);
    expect(o.recovery.unreadable.map((u) => u.id)).toEqual([w.ids[0]]);
    expect(o.recovery.tampered).toEqual([{ id: w.ids[0], reason: 'index record fails its authentication (MAC)' }]);
    const claims = await o.spool.claim('pacs', 10);
    expect(claims.map((c) => c.record.id)).toEqual([w.ids[1]]);
    await o.close();
    cleanups.pop();
    // Kept as it was found: evidence, and judged again at the next start.
    expect(await index(w.config, async (db) => db.get(`o!${w.ids[0]}`))).toBeDefined();
  });

  it('an interrupted first authentication (marker "adopting", some records MACed) resumes: every object recovered', async () => {
    const w = await world(3);
    await index(w.config, async (db) => {
      // As the previous release left them, but the first has been MACed already when the power went.
      for (const id of w.ids.slice(1)) {
        const { plain: _p, ...r } = recordOf((await db.get(`o!${id}`))!);
        await db.put(`o!${id}`, unkeyedRecord(r));
      }
      await db.put(INDEX_MAC_MARKER, w.codec.marker(Date.now(), true));
    });
    const o = await reopen(w);
    expect(o.recovery.recovered).toBe(3);
    expect(o.recovery.unreadable).toEqual([]);
    expect((await o.spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual(w.ids);
    await o.close();
    cleanups.pop();
    await index(w.config, async (db) => {
      expect(w.codec.markerState((await db.get(INDEX_MAC_MARKER))!)).toBe('done');
      for (const id of w.ids) expect(w.codec.check(id, (await db.get(`o!${id}`))!)).toMatchObject({ mac: 'ok' });
    });
  });

  it('the marker removed while records are authenticated adopts nothing: an injected unkeyed record stays quarantined', async () => {
    const w = await world(2);
    const injected = '0000000000000777';
    await index(w.config, async (db) => {
      const r = recordOf((await db.get(`o!${w.ids[0]}`))!);
      await db.batch([
        { type: 'put', key: `o!${injected}`, value: unkeyedRecord({ ...r, id: injected, sopInstanceUid: '9.9.9' }) },
        { type: 'put', key: `q!pacs!${injected}`, value: '' },
        { type: 'put', key: `c!${injected}`, value: '' },
        { type: 'del', key: INDEX_MAC_MARKER },
      ]);
    });
    copyFileSync(path.join(w.config.spool.dir, 'objects', `${w.ids[0]}.dcm`), path.join(w.config.spool.dir, 'objects', `${injected}.dcm`));
    const o = await reopen(w);
    expect(o.recovery.unreadable.map((u) => u.id)).toEqual([injected]);
    expect(o.recovery.tampered?.map((t) => t.id)).toEqual([injected]);
    expect((await o.spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual(w.ids);
    await o.close();
    cleanups.pop();
    await index(w.config, async (db) => expect(w.codec.markerState((await db.get(INDEX_MAC_MARKER))!)).toBe('done'));
  });

  it('before each send: a record changed in the index after recovery is refused, kept and quarantined, never handed out', async () => {
    const w = await world(2);
    const o = await reopen(w);
    // The running spool's own index (what a process with the card mounted could change underneath).
    const db = (o.spool as unknown as { db: Level<string, string> }).db;
    const raw = (await db.get(`o!${w.ids[0]}`))!;
    const { m } = JSON.parse(raw) as { m: string };
    await db.put(`o!${w.ids[0]}`, JSON.stringify({ ...(JSON.parse(unkeyedRecord({ ...recordOf(raw), sha256: '0'.repeat(64) })) as object), m }));
    expect((await o.spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual([w.ids[1]]);
    expect(o.spool.stats().unreadable).toBe(1);
    expect(await db.get(`x!${w.ids[0]}`)).toBeDefined();
    expect(await db.get(`o!${w.ids[0]}`)).toBeDefined();
  });
});
