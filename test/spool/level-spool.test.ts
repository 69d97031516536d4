import { existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LevelSpool } from '../../src/spool/level-spool.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { readSpool } from '../../src/spool/open.js';
import { sealedHeaderBytes } from '../../src/security/sealed-file.js';
import { HashPool } from '../../src/spool/hash-pool.js';
import { tempDir } from '../helpers/processes.js';
import { put, spoolConformance } from './conformance.js';
import { SEAL_PROFILES } from '../../src/security/sealed-file.js';

const log = pino({ level: 'silent' });
let pool: HashPool | undefined;
let tmp: { dir: string; cleanup: () => void } | undefined;

function make(dir: string, destinations: string[], extra: Partial<ConstructorParameters<typeof LevelSpool>[0]> = {}) {
  pool ??= new HashPool(2);
  return new LevelSpool({ dir, destinations, minFreeBytes: 0, maxBytes: 0, verifyOnStart: 'size', hashPool: pool, log, ...extra });
}

spoolConformance({
  name: 'LevelSpool',
  durable: true,
  create: async (destinations, reuse) => {
    if (!reuse || !tmp) tmp = tempDir();
    const s = make(tmp.dir, destinations);
    await s.open();
    return s;
  },
  cleanup: async () => {
    tmp?.cleanup();
    tmp = undefined;
    await pool?.close();
    pool = undefined;
  },
});

// The same suite with encryption at rest, in every profile: the sealed file format must keep every promise.
for (const profile of SEAL_PROFILES) {
  const seal = { profile, kek: randomBytes(profile === 'gm' ? 48 : 32) };
  let sealedPool: HashPool | undefined;
  spoolConformance({
    name: `LevelSpool, encrypted (${profile})`,
    durable: true,
    sealed: true,
    create: async (destinations, reuse) => {
      if (!reuse || !tmp) tmp = tempDir();
      sealedPool ??= new HashPool(2, seal);
      const s = new LevelSpool({ dir: tmp.dir, destinations, minFreeBytes: 0, maxBytes: 0, verifyOnStart: 'sha256', hashPool: sealedPool, log, seal });
      await s.open();
      return s;
    },
    cleanup: async () => {
      tmp?.cleanup();
      tmp = undefined;
      await sealedPool?.close();
      sealedPool = undefined;
    },
  });
}

describe('LevelSpool recovery', () => {
  let t: { dir: string; cleanup: () => void };
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(async () => {
    t.cleanup();
    await pool?.close();
    pool = undefined;
  });

  const objects = () => path.join(t.dir, 'objects');

  it('discards partial receptions and unindexed files, and reports them', async () => {
    const s = make(t.dir, ['pacs']);
    await s.open();
    const kept = await put(s, '1.1');
    await s.close();
    writeFileSync(path.join(objects(), '0000000000000099.part'), Buffer.alloc(1000));
    writeFileSync(path.join(objects(), '0000000000000098.dcm'), Buffer.alloc(500));
    const s2 = make(t.dir, ['pacs']);
    const report = await s2.open();
    expect(report).toMatchObject({ recovered: 1, discardedPartials: 2, discardedBytes: 1500, lost: [] });
    expect(readdirSync(objects()).sort()).toEqual([`${kept.id}.dcm`]);
    // Ids continue past anything seen on disk, so a discarded id is never reused for new data.
    const next = await put(s2, '1.2');
    expect(Number(next.id)).toBeGreaterThan(99);
    await s2.close();
  });

  it('an acknowledged object whose file is missing or truncated is reported, dead-lettered as corrupt and kept: never deleted or moved', async () => {
    const s = make(t.dir, ['pacs']);
    await s.open();
    const a = await put(s, '2.1', 'a'.repeat(100));
    const b = await put(s, '2.2', 'b'.repeat(100));
    const c = await put(s, '2.3', 'c'.repeat(100));
    await s.close();
    truncateSync(path.join(objects(), `${a.id}.dcm`), 10);
    statSync(path.join(objects(), `${b.id}.dcm`));
    writeFileSync(path.join(objects(), `${b.id}.dcm`), ''); // emptied
    const { unlinkSync } = await import('node:fs');
    unlinkSync(path.join(objects(), `${c.id}.dcm`));
    const s2 = make(t.dir, ['pacs']);
    const report = await s2.open();
    expect(report.recovered).toBe(0);
    expect(report.lost.map((l) => [l.sopInstanceUid, l.reason])).toEqual([
      ['2.1', `object file is 10 bytes, expected ${a.size}`],
      ['2.2', `object file is 0 bytes, expected ${b.size}`],
      ['2.3', 'object file is missing'],
    ]);
    expect(await s2.claim('pacs', 10)).toEqual([]);
    expect(report.danglingQueueEntries).toBe(0);
    // Out of the queue, into the dead letters, where an operator sees them (and can purge them).
    const dead = await s2.listDeadLetters('pacs');
    expect(dead.map((d) => d.sopInstanceUid)).toEqual(['2.1', '2.2', '2.3']);
    expect(dead.every((d) => d.reason.startsWith('corrupt: '))).toBe(true);
    expect(s2.stats().destinations[0]).toMatchObject({ pending: 0, deadLetter: 3 });
    // What remains of them stays where it was, with its index entry, for inspection.
    expect(readdirSync(objects()).sort()).toEqual([`${a.id}.dcm`, `${b.id}.dcm`]);
    expect(existsSync(path.join(t.dir, 'lost'))).toBe(false);
    expect(await s2.find('2.1')).toMatchObject({ id: a.id });
    await s2.close();
    // The next start finds the same and changes nothing: no double dead letters.
    const s3 = make(t.dir, ['pacs']);
    const again = await s3.open();
    expect(again.lost).toHaveLength(3);
    expect(await s3.listDeadLetters('pacs')).toHaveLength(3);
    expect(s3.stats().destinations[0]).toMatchObject({ pending: 0, deadLetter: 3 });
    await s3.close();
  });

  // Plain (its SHA-256 is the check) and sealed (recorded without a digest: its authenticated segments are the check).
  for (const profile of [undefined, 'aes-256-gcm', 'chacha20-poly1305'] as const) {
    it(`an indexed object without its durable marker (power loss mid-commit) is verified: kept when intact, discarded as unacknowledged when not (${profile ?? 'plain'})`, async () => {
      const seal = profile ? { profile, kek: randomBytes(32) } : undefined;
      if (seal) pool = new HashPool(2, seal);
      const mk = () => make(t.dir, ['pacs'], seal ? { seal } : {});
      const s = mk();
      await s.open();
      const intact = await put(s, '6.1', 'i'.repeat(3000));
      const torn = await put(s, '6.2', 't'.repeat(3000));
      const confirmed = await put(s, '6.3', 'c'.repeat(3000));
      expect(intact.sha256 === '').toBe(seal !== undefined);
      await s.close();
      // Power loss after the index batch but before the data fsync and the marker: the index
      // entry exists, the marker does not, the file may be anything. Recreate that state.
      const { Level } = await import('level');
      const db = new Level<string, string>(path.join(t.dir, 'index'));
      await db.batch([{ type: 'del', key: `c!${intact.id}` }, { type: 'del', key: `c!${torn.id}` }]);
      await db.close();
      const tornFile = path.join(objects(), `${torn.id}.dcm`);
      const b = readFileSync(tornFile);
      b.fill(0, 200); // same size, data never reached the disk
      writeFileSync(tornFile, b);
      const s2 = mk();
      const report = await s2.open();
      expect(report.lost, 'nothing acknowledged was lost').toEqual([]);
      expect(report).toMatchObject({ recovered: 2, discardedPartials: 1, discardedBytes: b.length }); // the file's bytes (a sealed file's header and tags included)
      expect((await s2.claim('pacs', 10)).map((c) => c.record.id)).toEqual([intact.id, confirmed.id]);
      expect(await s2.find('6.2')).toBeUndefined();
      await s2.close();
      // The intact one got its marker at recovery: damage to it now is a real loss.
      // (A sealed file keeps its header: one cut inside the header is unreadable, quarantined, not judged.)
      truncateSync(path.join(objects(), `${intact.id}.dcm`), profile ? sealedHeaderBytes(profile) + 10 : 5);
      const s3 = mk();
      const report3 = await s3.open();
      expect(report3.lost.map((l) => l.sopInstanceUid)).toEqual(['6.1']);
      await s3.close();
    });
  }

  it('with verifyOnStart sha256, a flipped byte is found at start; read() always checks', async () => {
    const s = make(t.dir, ['pacs']);
    await s.open();
    const a = await put(s, '3.1', 'x'.repeat(4096));
    const b = await put(s, '3.2', 'y'.repeat(4096));
    const fileB = path.join(objects(), `${b.id}.dcm`);
    const bytes = readFileSync(fileB);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0x01, bytes.length - 1);
    writeFileSync(fileB, bytes);
    await expect(s.read(b.id)).rejects.toMatchObject({ code: 'SPOOL_CORRUPT' });
    await s.close();
    const s2 = make(t.dir, ['pacs'], { verifyOnStart: 'sha256' });
    const report = await s2.open();
    expect(report.recovered).toBe(1);
    expect(report.lost).toEqual([{ id: b.id, sopInstanceUid: '3.2', reason: 'object file fails its SHA-256 check' }]);
    expect((await s2.claim('pacs', 10)).map((c) => c.record.id)).toEqual([a.id]);
    await s2.close();
  });

  it('refuses new objects below minFreeBytes and at maxBytes with SPOOL_FULL', async () => {
    const s = make(t.dir, ['pacs'], { minFreeBytes: Number.MAX_SAFE_INTEGER });
    await s.open();
    await expect(s.begin(Buffer.alloc(132))).rejects.toMatchObject({ code: 'SPOOL_FULL', retryable: true });
    await s.close();
    const s2 = make(t.dir, ['pacs'], { maxBytes: 300 });
    await s2.open();
    await put(s2, '4.1', 'z'.repeat(400));
    await expect(s2.begin(Buffer.alloc(132))).rejects.toMatchObject({ code: 'SPOOL_FULL' });
    await s2.close();
  });

  it('keeps delivered objects for keepForwardedMs, sweeps them after, and evicts them first when space runs out', async () => {
    const s = make(t.dir, ['pacs'], { keepForwardedMs: 3_600_000, maxBytes: 2000 });
    await s.open();
    const a = await put(s, '7.1', 'a'.repeat(600));
    const b = await put(s, '7.2', 'b'.repeat(600));
    await s.ack('pacs', a.id);
    expect((await s.find('7.1'))?.forwardedAt).toBeGreaterThan(0);
    expect(await s.sweep()).toBe(0); // not expired yet
    expect(s.stats().objects).toBe(2);
    // Kept across a restart too.
    await s.close();
    const s2 = make(t.dir, ['pacs'], { keepForwardedMs: 3_600_000, maxBytes: 2000 });
    await s2.open();
    expect(s2.stats().objects).toBe(2);
    // Over maxBytes (3 × 736 bytes): the delivered copy gives way, the undelivered ones never do.
    await put(s2, '7.3', 'c'.repeat(600));
    expect(await s2.find('7.1')).toBeDefined();
    await put(s2, '7.4', 'd'.repeat(600));
    expect(await s2.find('7.1')).toBeUndefined();
    expect(await s2.find('7.2')).toBeDefined();
    await expect(put(s2, '7.5', 'e'.repeat(600))).rejects.toMatchObject({ code: 'SPOOL_FULL' });
    void b;
    await s2.close();
  });

  it('offline statistics (used by `status` when no gateway runs) match the live ones', async () => {
    const s = make(t.dir, ['pacs', 'archive']);
    await s.open();
    const a = await put(s, '5.1');
    await put(s, '5.2');
    await s.ack('pacs', a.id);
    await s.deadLetter('archive', a.id, 'rejected', 0xa900);
    const live = s.stats();
    await s.close();
    const config = { spool: { dir: t.dir }, forward: [{ name: 'pacs' }, { name: 'archive' }] } as unknown as GatewayConfig;
    const offline = await readSpool(config, async (v) => v.stats());
    expect(offline.objects).toBe(live.objects);
    expect(offline.bytes).toBe(live.bytes);
    for (const d of live.destinations) {
      expect(offline.destinations.find((o) => o.name === d.name)).toMatchObject({ pending: d.pending, pendingBytes: d.pendingBytes, deadLetter: d.deadLetter });
    }
  });
});

describe('LevelSpool rewriter (compression at rest)', () => {
  let t: { dir: string; cleanup: () => void };
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(async () => {
    t.cleanup();
    await pool?.close();
    pool = undefined;
  });

  const newBytes = Buffer.from('DICM-ish replacement bytes, shorter');

  it('replaces a reserved object: record, queue bytes and reader follow; queues wait at it while reserved', async () => {
    const s = make(t.dir, ['pacs']);
    await s.open();
    const a = await put(s, '1.1', Buffer.alloc(4000, 1));
    const b = await put(s, '1.2');
    const r = await s.rewriter.reserve(a.id);
    expect(r).toMatchObject({ id: a.id });
    // FIFO: nothing behind a reserved object is handed out first.
    expect(await s.claim('pacs', 10)).toEqual([]);
    const updated = await s.rewriter.replace(r as typeof a, newBytes, '1.2.840.10008.1.2.4.80');
    expect(updated).toMatchObject({ size: newBytes.length, transferSyntaxUid: '1.2.840.10008.1.2.4.80', receivedTransferSyntaxUid: '1.2.840.10008.1.2.1', receivedSize: a.size });
    s.rewriter.release(a.id);
    expect(s.stats().destinations[0]).toMatchObject({ pending: 2, pendingBytes: newBytes.length + b.size });
    const claims = await s.claim('pacs', 10);
    expect(claims.map((c) => c.record.id)).toEqual([a.id, b.id]);
    // A claimed object cannot be reserved; a delivered one is gone.
    expect(await s.rewriter.reserve(a.id)).toBe('busy');
    await s.ack('pacs', b.id);
    expect(await s.rewriter.reserve(b.id)).toBe('gone');
    const reader = await s.read(a.id);
    expect(reader.size).toBe(newBytes.length);
    await reader.close();
    await s.close();
  });

  it('recovery finishes a replacement whose file was renamed, and undoes one whose file was not', async () => {
    const s = make(t.dir, ['pacs']);
    await s.open();
    const done = await put(s, '2.1', Buffer.alloc(3000, 2));
    const undone = await put(s, '2.2', Buffer.alloc(3000, 3));
    await s.close();
    // As a crash would leave them: intents written; one file renamed, the other still a .z.
    const { Level } = await import('level');
    const db = new Level<string, string>(path.join(t.dir, 'index'), { valueEncoding: 'utf8' });
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(newBytes).digest('hex');
    for (const id of [done.id, undone.id]) await db.put(`z!${id}`, JSON.stringify({ size: newBytes.length, sha256: sha, transferSyntaxUid: '1.2.840.10008.1.2.4.80' }));
    await db.close();
    writeFileSync(path.join(t.dir, 'objects', `${done.id}.dcm`), newBytes);
    writeFileSync(path.join(t.dir, 'objects', `${undone.id}.z`), newBytes);
    const s2 = make(t.dir, ['pacs'], { verifyOnStart: 'sha256' });
    const report = await s2.open();
    expect(report).toMatchObject({ recovered: 2, lost: [] });
    const claims = await s2.claim('pacs', 10);
    expect(claims.find((c) => c.record.id === done.id)!.record).toMatchObject({ size: newBytes.length, sha256: sha, transferSyntaxUid: '1.2.840.10008.1.2.4.80' });
    expect(claims.find((c) => c.record.id === undone.id)!.record).toMatchObject({ size: undone.size, sha256: undone.sha256, transferSyntaxUid: '1.2.840.10008.1.2.1' });
    expect(readdirSync(path.join(t.dir, 'objects')).filter((n) => n.endsWith('.z'))).toEqual([]);
    await s2.close();
  });
});
