import { unlink } from 'node:fs/promises';
import { durableKey, handedOverKey, keyRange, objectKey, queueKey, SYNC_KEY, uidKey } from './keys.js';
import { HANDED_OVER_KEEP_MS, type SpoolRecord } from './spool.js';
import type { SpoolState } from './spool-state.js';

type Put = { type: 'put'; key: string; value: string };
type Op = Put | { type: 'del'; key: string };

/**
 * The far end of an object's life in the spool: a destination has it (or an operator gave it
 * up), it is kept a while if spool.keepForwardedHours says so, then its record and file go.
 *
 * An acknowledgement is not synced: losing one in a crash only means the object is sent once
 * more (a PACS deduplicates by SOP Instance UID), and an fsync per delivered object would halve
 * the forwarding rate. A removed object's file is deleted only once its index deletion has been
 * made durable by a later synced write ({@link Delivery.syncAndUnlink}), so a crash can never
 * leave an index entry whose file is gone.
 */
export class Delivery {
  /** Objects removed from the index whose files wait for that removal to be durable. */
  private unlinkAfterSync: string[] = [];

  constructor(
    private readonly s: SpoolState,
    private readonly o: {
      /** Keep delivered objects this long (0: remove at once). */
      keepForwardedMs?: number | undefined;
      /** How long a study's history is kept once nothing of it is owed (default 30 days). */
      studyKeepMs?: number | undefined;
    },
  ) {}

  /** The destination no longer owes the object: delivered, or (`delivered` false) given up by an operator. */
  async done(destination: string, id: string, delivered: boolean): Promise<void> {
    return this.doneMany(destination, [id], delivered);
  }

  /**
   * {@link done} for several objects of one destination in one index write (the forwarder's
   * batched acknowledgements): each object's record, queue entry, study history and hand-over
   * are changed exactly as one by one, in order, and nothing of them is forgotten in memory
   * before the write has succeeded. A write that fails leaves them all owed (sent again).
   */
  async doneMany(destination: string, ids: readonly string[], delivered: boolean): Promise<void> {
    const ops: Op[] = [];
    const after: (() => void)[] = [];
    for (const id of ids) {
      const record = await this.s.records.get(id);
      this.s.queues.remove(destination, id);
      if (!record) continue;
      const pending = record.pending.filter((d) => d !== destination);
      const study = delivered ? this.s.studies.delivered(record, destination, Date.now()) : this.s.studies.purged(record, destination);
      const studyOps = study ? [study] : [];
      if (pending.length > 0) {
        ops.push({ type: 'put', key: objectKey(id), value: this.s.records.seal({ ...record, pending }) }, { type: 'del', key: queueKey(destination, id) }, ...studyOps);
        after.push(() => this.s.records.remember({ ...record, pending }));
        continue;
      }
      // Owed to nobody now: nothing waits for it any more (compression at rest drops it).
      for (const fn of this.s.goneListeners) fn(id);
      // Remembered for Storage Commitment requests that come after the object has gone.
      const handed = [...(delivered ? [{ type: 'put' as const, key: handedOverKey(record.sopInstanceUid), value: String(Date.now()) }] : []), ...studyOps];
      if ((this.o.keepForwardedMs ?? 0) > 0) {
        const forwardedAt = Date.now();
        ops.push({ type: 'put', key: objectKey(id), value: this.s.records.seal({ ...record, pending, forwardedAt }) }, { type: 'del', key: queueKey(destination, id) }, ...handed);
        after.push(() => {
          this.s.records.remember({ ...record, pending, forwardedAt });
          this.s.kept.set(id, forwardedAt);
        });
        continue;
      }
      const removal = await this.removalOps(record, destination, handed);
      ops.push(...removal.ops);
      after.push(removal.after);
    }
    if (ops.length > 0) await this.s.db.batch(ops, { sync: false });
    for (const fn of after) fn();
  }

  async remove(record: SpoolRecord, destination?: string, extra: Put[] = []): Promise<void> {
    const r = await this.removalOps(record, destination, extra);
    await this.s.db.batch(r.ops, { sync: false });
    r.after();
  }

  /** The index changes that remove an object, and what to forget in memory once they are written. */
  private async removalOps(record: SpoolRecord, destination?: string, extra: Put[] = []): Promise<{ ops: Op[]; after: () => void }> {
    const ops: Op[] = [...extra, { type: 'del', key: objectKey(record.id) }, { type: 'del', key: durableKey(record.id) }];
    if (destination) ops.push({ type: 'del', key: queueKey(destination, record.id) });
    if ((await this.s.db.get(uidKey(record.sopInstanceUid))) === record.id) ops.push({ type: 'del', key: uidKey(record.sopInstanceUid) });
    return {
      ops,
      after: () => {
        this.s.records.forget(record.id);
        this.unlinkAfterSync.push(record.id);
        this.s.objectCount--;
        this.s.objectBytes -= record.size;
      },
    };
  }

  /** Remove delivered objects kept longer than keepForwardedMs (or, with `force`, the n oldest). */
  async sweep(force = 0): Promise<number> {
    const limit = Date.now() - (this.o.keepForwardedMs ?? 0);
    let n = 0;
    for (const [id, at] of [...this.s.kept]) {
      if (at > limit && n >= force) break;
      const record = await this.s.records.get(id);
      this.s.kept.delete(id);
      if (record) await this.remove(record);
      n++;
    }
    return n;
  }

  /**
   * Make every index change so far durable (one synced write), then delete the files whose
   * index entries are gone. Runs with each new object's commit, and at least once a second.
   */
  async syncAndUnlink(extra: Put[] = []): Promise<void> {
    const ids = this.unlinkAfterSync.splice(0);
    if (ids.length === 0 && extra.length === 0) return;
    try {
      await this.s.db.batch(extra.length ? extra : [{ type: 'put', key: SYNC_KEY, value: String(Date.now()) }], { sync: true });
    } catch (err) {
      this.unlinkAfterSync.unshift(...ids);
      throw err;
    }
    for (const id of ids) await unlink(this.s.filePath(id)).catch(() => undefined);
  }

  async handedOver(sopInstanceUid: string): Promise<number | undefined> {
    const v = await this.s.db.get(handedOverKey(sopInstanceUid));
    const at = v === undefined ? NaN : Number(v);
    return at > Date.now() - HANDED_OVER_KEEP_MS ? at : undefined;
  }

  /** Forget hand-overs older than {@link HANDED_OVER_KEEP_MS} (at open, then daily). */
  async trimHandedOver(): Promise<void> {
    const expired = this.s.studies.expire(Date.now() - (this.o.studyKeepMs ?? 30 * 24 * 3600 * 1000));
    if (expired.length) await this.s.db.batch(expired, { sync: false });
    const limit = Date.now() - HANDED_OVER_KEEP_MS;
    const old: { type: 'del'; key: string }[] = [];
    for await (const [k, v] of this.s.db.iterator(keyRange('h'))) if (!(Number(v) > limit)) old.push({ type: 'del', key: k });
    if (old.length) await this.s.db.batch(old, { sync: false });
  }

  /** The files waiting for their removal to be durable, for a synced index write about to be made. */
  takeUnlinks(): string[] {
    return this.unlinkAfterSync.splice(0);
  }

  /** That write failed: they wait for the next one. */
  putBackUnlinks(ids: string[]): void {
    this.unlinkAfterSync.unshift(...ids);
  }

  /** That write succeeded: their files go (in the background; a leftover is removed by recovery). */
  unlinkFiles(ids: string[]): void {
    for (const u of ids) void unlink(this.s.filePath(u)).catch(() => undefined);
  }
}
