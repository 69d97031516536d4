import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectReader, Spool } from '../../src/spool/spool.js';

/**
 * The one conformance suite every {@link Spool} implementation runs. `durable` implementations
 * also get the reopen cases (what was committed survives close/open).
 */
export interface SpoolFactory {
  name: string;
  durable: boolean;
  /**
   * True when every object file is sealed (encryption at rest): a new object's digest may then be
   * left out ('') because its segments are authenticated; everything else is promised the same.
   */
  sealed?: boolean;
  /** A new empty spool with these destinations (same storage when `reuse` is set). */
  create(destinations: string[], reuse?: boolean): Promise<Spool>;
  cleanup(): Promise<void>;
}

const header = (n = 0) => Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from(`hdr${n}`)]);

export async function put(spool: Spool, uid: string, body: Buffer | string = `data-${uid}`) {
  // With the hint the receiver gives (the command set's SOP Instance UID).
  const w = await spool.begin(header(), { sopInstanceUid: uid });
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  // Write in uneven slices, as a socket would deliver them.
  for (let i = 0; i < b.length; i += 7) w.write(b.subarray(i, i + 7));
  return w.commit({ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: uid, transferSyntaxUid: '1.2.840.10008.1.2.1', callingAeTitle: 'MOD' });
}

/** Every byte of a spooled object, through its reader (small reads, to exercise positions). */
export async function readAll(r: ObjectReader): Promise<Buffer> {
  const parts: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024 + 3);
  for (let pos = 0; ; ) {
    const n = await r.read(buf, pos);
    if (n === 0) break;
    parts.push(Buffer.from(buf.subarray(0, n)));
    pos += n;
  }
  await r.close();
  return Buffer.concat(parts);
}

export function spoolConformance(f: SpoolFactory): void {
  describe(`Spool conformance: ${f.name}`, () => {
    let spool: Spool;
    beforeEach(async () => {
      spool = await f.create(['pacs', 'archive']);
    });
    afterEach(async () => {
      await spool.close();
      await f.cleanup();
    });

    it('commit returns a record with size and SHA-256 of header + data, pending for every destination', async () => {
      const r = await put(spool, '1.1', 'hello world');
      const expected = Buffer.concat([header(), Buffer.from('hello world')]);
      expect(r.size).toBe(expected.length);
      expect(r.sha256).toBe(f.sealed ? '' : createHash('sha256').update(expected).digest('hex'));
      expect(r.pending.sort()).toEqual(['archive', 'pacs']);
      const reader = await spool.read(r.id);
      expect(reader.size).toBe(expected.length);
      expect(reader.sha256).toBe(r.sha256);
      expect(await readAll(reader)).toEqual(expected);
      expect((await spool.find('1.1'))?.id).toBe(r.id);
    });

    it('claims are FIFO per destination and never hand out the same object twice at once', async () => {
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await put(spool, `2.${i}`)).id);
      const a = await spool.claim('pacs', 2);
      const b = await spool.claim('pacs', 10);
      expect(a.map((c) => c.record.id)).toEqual(ids.slice(0, 2));
      expect(b.map((c) => c.record.id)).toEqual(ids.slice(2));
      expect(await spool.claim('pacs', 10)).toEqual([]);
      // The other destination has its own queue.
      expect((await spool.claim('archive', 10)).map((c) => c.record.id)).toEqual(ids);
    });

    it('nack puts the object back in its place with one more attempt', async () => {
      const r1 = await put(spool, '3.1');
      await put(spool, '3.2');
      const [c1] = await spool.claim('pacs', 1);
      expect(c1!.attempts).toBe(0);
      await spool.nack('pacs', r1.id, 'connection refused');
      const again = await spool.claim('pacs', 10);
      expect(again.map((c) => c.record.sopInstanceUid)).toEqual(['3.1', '3.2']);
      expect(again[0]!.attempts).toBe(1);
    });

    it('an object leaves the spool only when every destination has acknowledged it', async () => {
      const r = await put(spool, '4.1');
      await spool.ack('pacs', r.id);
      expect(await spool.find('4.1')).toBeDefined();
      expect(spool.stats().objects).toBe(1);
      expect(await spool.handedOver('4.1')).toBeUndefined();
      await spool.ack('archive', r.id);
      expect(await spool.find('4.1')).toBeUndefined();
      // Remembered after it has gone, for a Storage Commitment request that comes later.
      expect(await spool.handedOver('4.1')).toBeGreaterThan(0);
      expect(spool.stats().objects).toBe(0);
      await expect(spool.read(r.id)).rejects.toMatchObject({ code: 'SPOOL_NOT_FOUND' });
    });

    it('dead-letter removes from the queue, keeps the object, records status and reason', async () => {
      const r = await put(spool, '5.1');
      await put(spool, '5.2');
      await spool.deadLetter('pacs', r.id, 'SOP class not supported', 0x0122);
      const dl = await spool.listDeadLetters('pacs');
      expect(dl).toHaveLength(1);
      expect(dl[0]).toMatchObject({ id: r.id, sopInstanceUid: '5.1', status: 0x0122, reason: 'SOP class not supported' });
      expect((await spool.claim('pacs', 10)).map((c) => c.record.sopInstanceUid)).toEqual(['5.2']);
      const pacs = spool.stats().destinations.find((d) => d.name === 'pacs')!;
      expect(pacs.deadLetter).toBe(1);
      expect(pacs.pending).toBe(1);
      // Still owed to the other destination and still readable.
      await spool.ack('archive', r.id);
      expect(await spool.find('5.1')).toBeDefined();
    });

    it('unclaim gives a claim back in place without counting an attempt', async () => {
      const r1 = await put(spool, '11.1');
      await put(spool, '11.2');
      await spool.claim('pacs', 1);
      await spool.unclaim('pacs', r1.id);
      const again = await spool.claim('pacs', 10);
      expect(again.map((c) => c.record.sopInstanceUid)).toEqual(['11.1', '11.2']);
      expect(again[0]!.attempts).toBe(0);
    });

    it('dead letters can be retried (back in their FIFO place) or purged (no longer owed)', async () => {
      const a = await put(spool, '12.1');
      const b = await put(spool, '12.2');
      const c = await put(spool, '12.3');
      await spool.deadLetter('pacs', a.id, 'refused', 0xa900);
      await spool.deadLetter('pacs', b.id, 'refused', 0xa900);
      const woken: string[] = [];
      spool.onEnqueue((d) => woken.push(d));
      expect(await spool.retryDeadLetters('pacs', [a.id])).toBe(1);
      expect(woken).toEqual(['pacs']);
      expect((await spool.claim('pacs', 10)).map((x) => x.record.id)).toEqual([a.id, c.id]);
      expect(await spool.listDeadLetters('pacs')).toHaveLength(1);
      expect(await spool.purgeDeadLetters('pacs')).toBe(1);
      expect(await spool.listDeadLetters('pacs')).toEqual([]);
      expect(spool.stats().destinations.find((d) => d.name === 'pacs')!.deadLetter).toBe(0);
      // b is no longer owed to pacs; once archive has it too, it leaves the spool.
      await spool.ack('archive', b.id);
      expect(await spool.find('12.2')).toBeUndefined();
    });

    it('onEnqueue is called for every destination of a new object', async () => {
      const seen: string[] = [];
      spool.onEnqueue((d) => seen.push(d));
      await put(spool, '13.1');
      expect(seen.sort()).toEqual(['archive', 'pacs']);
    });

    it('stats count pending objects and bytes per destination and the oldest age', async () => {
      const a = await put(spool, '6.1', 'aaaa');
      const b = await put(spool, '6.2', 'bbbbbbbb');
      const s = spool.stats();
      expect(s.objects).toBe(2);
      expect(s.bytes).toBe(a.size + b.size);
      const pacs = s.destinations.find((d) => d.name === 'pacs')!;
      expect(pacs).toMatchObject({ pending: 2, pendingBytes: a.size + b.size, deadLetter: 0 });
      expect(pacs.oldestPendingSeconds).toBeGreaterThanOrEqual(0);
      await spool.ack('pacs', a.id);
      expect(spool.stats().destinations.find((d) => d.name === 'pacs')).toMatchObject({ pending: 1, pendingBytes: b.size });
    });

    it('an identical re-send of a UID is folded into the spooled copy', async () => {
      const r1 = await put(spool, '7.1', 'same');
      const r2 = await put(spool, '7.1', 'same');
      expect(r2.id).toBe(r1.id);
      expect(spool.stats().objects).toBe(1);
      expect(await spool.claim('pacs', 10)).toHaveLength(1);
      // A third copy: the record the fold kept still tells identical bytes from different ones.
      expect((await put(spool, '7.1', 'same')).id).toBe(r1.id);
      expect((await put(spool, '7.1', 'not the same')).id).not.toBe(r1.id);
    });

    it('an object begun without a hint is hashed, and a re-send of it is folded too', async () => {
      const w = await spool.begin(header());
      w.write(Buffer.from('unhinted'));
      const r1 = await w.commit({ sopClassUid: '1.2', sopInstanceUid: '7.2', transferSyntaxUid: '1.2.840.10008.1.2.1', callingAeTitle: 'MOD' });
      expect(r1.sha256).toBe(createHash('sha256').update(Buffer.concat([header(), Buffer.from('unhinted')])).digest('hex'));
      expect((await put(spool, '7.2', 'unhinted')).id).toBe(r1.id);
    });

    it('a different object under the same UID is kept as a new version and queued after the first', async () => {
      const r1 = await put(spool, '8.1', 'first');
      const r2 = await put(spool, '8.1', 'second version');
      expect(r2.id).not.toBe(r1.id);
      expect((await spool.find('8.1'))?.id).toBe(r2.id);
      expect((await spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual([r1.id, r2.id]);
    });

    it('an aborted object leaves nothing behind', async () => {
      const w = await spool.begin(header());
      w.write(Buffer.from('partial'));
      await w.abort();
      expect(spool.stats().objects).toBe(0);
      expect(await spool.claim('pacs', 10)).toEqual([]);
    });

    it('large objects stream through in bounded slices and read back identical', async () => {
      const big = Buffer.alloc(9 * 1024 * 1024 + 13);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
      const w = await spool.begin(header());
      for (let i = 0; i < big.length; i += 64 * 1024) w.write(big.subarray(i, i + 64 * 1024));
      const r = await w.commit({ sopClassUid: '1.2', sopInstanceUid: '9.1', transferSyntaxUid: '1.2.840.10008.1.2.1', callingAeTitle: 'MOD' });
      expect(r.size).toBe(header().length + big.length);
      const back = await readAll(await spool.read(r.id));
      expect(back.subarray(header().length).equals(big)).toBe(true);
    });

    if (f.durable) {
      it('committed objects, queues, attempts-independent order and dead letters survive close and reopen', async () => {
        const r1 = await put(spool, '10.1');
        const r2 = await put(spool, '10.2');
        const r3 = await put(spool, '10.3');
        await spool.ack('pacs', r1.id);
        await spool.deadLetter('archive', r2.id, 'rejected', 0xa900);
        await spool.close();
        spool = await f.create(['pacs', 'archive'], true);
        expect((await spool.claim('pacs', 10)).map((c) => c.record.id)).toEqual([r2.id, r3.id]);
        expect((await spool.claim('archive', 10)).map((c) => c.record.id)).toEqual([r1.id, r3.id]);
        expect(await spool.listDeadLetters('archive')).toHaveLength(1);
        expect(spool.stats().objects).toBe(3);
        // New ids continue after the old ones: FIFO order holds across restarts.
        const r4 = await put(spool, '10.4');
        expect(r4.id > r3.id).toBe(true);
      });
    }
  });
}
