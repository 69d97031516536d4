import type { Level } from 'level';
import { idOf, keyRange, objectKey } from './keys.js';
import type { RecordCodec } from './record-codec.js';
import type { SpoolRecord } from './spool.js';

/**
 * The spool's records (`o!<id>`) as read from the index, with a small cache in front.
 *
 * Records of objects in motion (just received, claimed, being acknowledged) are read several
 * times each; the cache saves those index reads and checksum checks. Every write of an `o!` key
 * by the spool goes through {@link remember} / {@link forget}, so it never serves a stale record.
 * Records are treated as immutable (updates build new objects).
 */
export class RecordStore {
  private readonly cache = new Map<string, SpoolRecord>();

  constructor(
    private readonly db: Level<string, string>,
    /** Checks each record read from the index: its checksum and its MAC (record-codec.ts). */
    readonly codec: RecordCodec,
  ) {}

  /** A record as it is written to the index (checksum and MAC). */
  seal(r: SpoolRecord): string {
    return this.codec.seal(r);
  }

  /**
   * The record of `id`, or undefined when there is none, or it fails its checksum or MAC (read
   * from the index before each send: a record changed on the card since recovery is refused).
   */
  async get(id: string): Promise<SpoolRecord | undefined> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const raw = await this.db.get(objectKey(id));
    const r = raw === undefined ? undefined : this.codec.open(id, raw);
    if (r) this.remember(r);
    return r;
  }

  /** The record as it is in memory, without an index read (undefined when not cached). */
  cached(id: string): SpoolRecord | undefined {
    return this.cache.get(id);
  }

  /** `r` was just written: serve it from now on (most recently used last, 2048 at most). */
  remember(r: SpoolRecord): void {
    this.cache.delete(r.id);
    this.cache.set(r.id, r);
    if (this.cache.size > 2048) this.cache.delete(this.cache.keys().next().value!);
  }

  forget(id: string): void {
    this.cache.delete(id);
  }

  clear(): void {
    this.cache.clear();
  }

  /** Every record, oldest first, read from the index (not the cache). */
  async *all(): AsyncGenerator<SpoolRecord> {
    for await (const [k, v] of this.db.iterator(keyRange('o'))) {
      const r = this.codec.open(idOf(k), v);
      if (r) yield r;
    }
  }
}
