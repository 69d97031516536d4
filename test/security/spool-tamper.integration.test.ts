import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { SPOOL_FORMAT } from '../../src/spool/format.js';
import { INDEX_MAC_MARKER, unkeyedRecord } from '../../src/spool/record-codec.js';
import type { SpoolRecord } from '../../src/spool/spool.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, nothingPending, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * Someone holding the SD card, without the device key, tries to get images of their own to the
 * PACS (or to change which image goes): a sealed file swapped for plain bytes, an index record
 * rewritten with the (unkeyed) checksum, an object injected with record, queue entry and plain
 * file. None of it is ever forwarded: the plain file is a corrupt dead letter, the records fail
 * their MAC and are quarantined; all of it is kept, and each is a Security Alert (SPOOL-INTEGRITY)
 * in the audit trail. The untouched object is delivered, and so is a new one afterwards.
 *
 * And the upgrade: a spool whose records were written by the release before the MAC (the exact
 * encoding it wrote, `{r, c}`, no marker, spool format 2) delivers everything after the update,
 * and is then format 3, which that release refuses to open (it would write unkeyed records).
 */
type Status = { spool: { unreadable: number }; destinations: { pending: number; deadLetter: number }[] };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function withIndex<T>(spoolDir: string, fn: (db: Level<string, string>) => Promise<T>): Promise<T> {
  const db = new Level<string, string>(path.join(spoolDir, 'index'), { valueEncoding: 'utf8', createIfMissing: false });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function setup(profile: 'aes-256-gcm' | 'chacha20-poly1305' | 'none', n: number) {
  const t = tempDir('pacs-edge-tamper-');
  const pacsDir = path.join(t.dir, 'pacs');
  mkdirSync(pacsDir);
  const pacsPort = await freePort();
  const { configFile, port, spoolDir } = await writeGatewayConfig({
    dir: t.dir,
    spool: { compressAtRest: false, encryption: { profile } },
    config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
  });
  // The PACS is down: the objects wait in the spool.
  const gw = await runGateway(configFile, { port, spoolDir });
  mkdirSync(path.join(t.dir, 'study'));
  const study = writeStudy(path.join(t.dir, 'study'), n);
  expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(n);
  const ids: string[] = [];
  for (const s of study) ids.push((await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === s.uid)).id as string);
  expect(await gw.stop()).toBe(0);
  const pacsFiles = () => readdirSync(pacsDir).filter((f) => f.endsWith('.dcm')).map((f) => path.join(pacsDir, f));
  return { t, pacsDir, pacsPort, configFile, port, spoolDir, study, ids, pacsFiles };
}

describe('someone with the SD card but not the device key', () => {
  it.each(['aes-256-gcm', 'chacha20-poly1305'] as const)('%s: cannot get a planted, swapped or injected image forwarded: kept, never sent, alarmed; the rest flows', { timeout: 90_000 }, async (profile) => {
    const s = await setup(profile, 3);
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    let gw: Awaited<ReturnType<typeof runGateway>> | undefined;
    try {
      const objects = path.join(s.spoolDir, 'objects');
      const file = (id: string) => path.join(objects, `${id}.dcm`);
      mkdirSync(path.join(s.t.dir, 'evil'));
      const [evil1, evil2] = writeStudy(path.join(s.t.dir, 'evil'), 2);
      const injected = '0000000000009999';
      await withIndex(s.spoolDir, async (db) => {
        // 1. A sealed file replaced by plain bytes (its own plaintext: the record's SHA-256 still fits).
        writeFileSync(file(s.ids[0]!), readSpoolFile(file(s.ids[0]!)));
        // 2. Another image in the place of the second, its record rewritten with the unkeyed checksum.
        const bytes = readFileSync(evil1!.file);
        const r = (JSON.parse((await db.get(`o!${s.ids[1]}`))!) as { r: SpoolRecord }).r;
        writeFileSync(file(s.ids[1]!), bytes);
        await db.put(`o!${s.ids[1]}`, unkeyedRecord({ ...r, sopInstanceUid: evil1!.uid, sha256: sha256(bytes), size: bytes.length, plain: true }));
        // 3. An object injected whole: file, record, queue entry, durable marker, UID index.
        const b2 = readFileSync(evil2!.file);
        writeFileSync(file(injected), b2);
        await db.batch([
          { type: 'put', key: `o!${injected}`, value: unkeyedRecord({ ...r, id: injected, sopInstanceUid: evil2!.uid, sha256: sha256(b2), size: b2.length, pending: ['pacs'], plain: true }) },
          { type: 'put', key: `q!pacs!${injected}`, value: '' },
          { type: 'put', key: `c!${injected}`, value: '' },
          { type: 'put', key: `u!${evil2!.uid}`, value: injected },
        ]);
      });

      pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort });
      gw = await runGateway(s.configFile, { port: s.port, spoolDir: s.spoolDir });
      const sock = path.join(s.spoolDir, 'control.sock');
      await waitFor(() => nothingPending(s.spoolDir), { what: 'the queue drained' });
      const st = (await controlGet(sock, '/status')) as Status;
      expect(st.destinations[0]!.deadLetter).toBe(1);
      expect(st.spool.unreadable).toBe(2);
      // Only the untouched object reached the PACS, byte for byte.
      const got = s.pacsFiles();
      expect(got).toHaveLength(1);
      expect(readPart10Header(readFileSync(got[0]!))!.sopInstanceUid).toBe(s.study[2]!.uid);
      expect(datasetBytes(got[0]!).equals(datasetBytes(s.study[2]!.file))).toBe(true);
      // Everything the attacker touched is kept as evidence.
      for (const id of [s.ids[0]!, s.ids[1]!, injected]) expect(existsSync(file(id)), id).toBe(true);
      expect(gw.logs.some((l) => String(l.msg).startsWith('acknowledged object damaged') && l.id === s.ids[0])).toBe(true);
      expect(gw.logs.filter((l) => String(l.msg).startsWith('spooled object cannot be opened')).map((l) => l.id).sort()).toEqual([s.ids[1], injected].sort());
      // A Security Alert per object, in the audit trail.
      const auditDir = path.join(s.t.dir, 'audit');
      const trail = readdirSync(auditDir).filter((n) => n.startsWith('audit-')).map((n) => readFileSync(path.join(auditDir, n), 'utf8')).join('');
      for (const id of [s.ids[0]!, s.ids[1]!, injected]) expect(trail, id).toMatch(new RegExp(`SPOOL-INTEGRITY.*spooled object ${id}`));
      // A new object still goes through: storescu → gateway → storescp.
      mkdirSync(path.join(s.t.dir, 'after'));
      const [next] = writeStudy(path.join(s.t.dir, 'after'), 1);
      expect((await storescu({ port: s.port, files: [next!.file] })).acked).toHaveLength(1);
      await waitFor(() => s.pacsFiles().length === 2 || undefined, { what: 'the new object at the PACS' });
      expect(s.pacsFiles().map((f) => readPart10Header(readFileSync(f))!.sopInstanceUid).sort()).toEqual([s.study[2]!.uid, next!.uid].sort());
      expect(await gw.stop()).toBe(0);
    } finally {
      await gw?.stop();
      await pacs?.stop();
      s.t.cleanup();
    }
  });

  for (const profile of ['aes-256-gcm', 'none'] as const) {
    it(`upgrade (${profile}): a spool whose records the release before the MAC wrote delivers everything, authenticated once`, { timeout: 90_000 }, async () => {
      const s = await setup(profile, 3);
      let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
      let gw: Awaited<ReturnType<typeof runGateway>> | undefined;
      try {
        // The index as the previous release left it: `{r, c}` records (no MAC, no `plain`), no marker.
        await withIndex(s.spoolDir, async (db) => {
          for await (const [k, v] of db.iterator({ gte: 'o!', lt: 'o!\xff' })) {
            const { plain: _p, ...r } = (JSON.parse(v) as { r: SpoolRecord }).r;
            await db.put(k, unkeyedRecord(r));
          }
          await db.del(INDEX_MAC_MARKER);
          // …in the format that release wrote (2: before the index MAC).
          await db.put('m!format', JSON.stringify({ version: 2, by: '0.9.0' }));
        });
        pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort });
        gw = await runGateway(s.configFile, { port: s.port, spoolDir: s.spoolDir });
        const adopted = await gw.waitForLog((l) => String(l.msg).startsWith('spool index: authenticating the records of an earlier release'));
        expect(adopted.records).toBe(3);
        expect(gw.logs.filter((l) => l.msg === 'spool format migration: step done').map((l) => l.format)).toEqual([3]);
        await waitFor(() => nothingPending(s.spoolDir), { what: 'all delivered' });
        const st = (await controlGet(path.join(s.spoolDir, 'control.sock'), '/status')) as Status;
        expect(st.destinations[0]!.deadLetter).toBe(0);
        expect(st.spool.unreadable).toBe(0);
        const got = s.pacsFiles().map((f) => datasetBytes(f));
        expect(got).toHaveLength(3);
        for (const f of s.study) expect(got.some((b) => b.equals(datasetBytes(f.file)))).toBe(true);
        expect(await gw.stop()).toBe(0);
        // From now on the index is authenticated: the marker is there, and every record carries a MAC.
        await withIndex(s.spoolDir, async (db) => {
          expect(await db.get(INDEX_MAC_MARKER)).toBeDefined();
          expect(JSON.parse((await db.get('m!format'))!)).toMatchObject({ version: SPOOL_FORMAT });
        });
      } finally {
        await gw?.stop();
        await pacs?.stop();
        s.t.cleanup();
      }
    });
  }
});
