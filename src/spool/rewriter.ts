import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { PacsEdgeError } from '../errors.js';
import type { SealKey } from '../security/sealed-file.js';
import { crashpoint } from '../util/crashpoint.js';
import { stageDurable, type StagedFile } from '../util/durable-write.js';
import type { HashPool } from './hash-pool.js';
import { objectKey, rewriteKey } from './keys.js';
import { rewrittenRecord } from './record-codec.js';
import type { SpoolRecord, SpoolRewriter } from './spool.js';
import type { SpoolState } from './spool-state.js';

/*
 * Replacing an object's file in place (compression at rest, src/compress/at-rest.ts): the
 * object is reserved so no destination is handed it meanwhile, its new bytes are made durable
 * beside the old ones, and the switch is recorded so that recovery can finish or undo it.
 */

/** What the rewriter needs besides the spool's state. */
export interface RewriterOptions {
  /** The key new files are sealed with, if they are. */
  sealing(): SealKey | undefined;
  /** A whole new file's bytes (sealed under `key` when given) and its plaintext's SHA-256, from a worker thread (src/spool/write-pool.ts). */
  prepare(key: SealKey | undefined, plain: Buffer): Promise<{ bytes: Buffer; sha256: string }>;
  hashPool: HashPool;
  /** fsync of the objects directory (shared with the commits). */
  syncDir(): Promise<void>;
}

export class FileRewriter {
  /** Objects whose file is being replaced; queues wait at them (see {@link QueueState.lease}). */
  private readonly rewriting = new Set<string>();

  constructor(
    private readonly h: SpoolState,
    private readonly o: RewriterOptions,
  ) {}

  /** True while `id` is reserved for a replacement (a destination must not be handed it). */
  busy(id: string): boolean {
    return this.rewriting.has(id);
  }

  readonly api: SpoolRewriter = {
    filePath: (id) => this.h.filePath(id),
    reserve: async (id) => {
      const r = await this.h.records.get(id);
      if (!r || r.pending.length === 0 || this.h.quarantined.has(id)) return 'gone';
      if (this.rewriting.has(id) || this.h.queues.leasedAnywhere(id)) return 'busy';
      this.rewriting.add(id);
      return r;
    },
    release: (id) => {
      if (!this.rewriting.delete(id)) return;
      const r = this.h.records.cached(id);
      if (r) this.h.emitEnqueued(r.pending);
    },
    replace: (record, bytes, ts) => this.replace(record, bytes, ts),
    onStored: (fn) => void this.h.storedListeners.push(fn),
    onGone: (fn) => void this.h.goneListeners.push(fn),
    records: () => this.records(),
  };

  /** Every record whose file may be rewritten (not the quarantined ones), oldest first. */
  private async *records(): AsyncIterable<SpoolRecord> {
    for await (const r of this.h.records.all()) if (!this.h.quarantined.has(r.id)) yield r;
  }

  /**
   * Replace a reserved object's file, crash-safely:
   *   1. the new bytes go to `<id>.z` and are fsynced;
   *   2. an intent `z!<id>` (new size, SHA-256, syntax) is written with `sync: true`;
   *   3. `<id>.z` is renamed over `<id>.dcm` (atomic) and the directory fsynced;
   *   4. the record is updated and the intent deleted (not synced: recovery redoes it).
   * After a crash, recovery (recovery.ts, finishRewrites) hashes the file of every intent: the
   * new bytes mean step 3 happened and the record is updated; the old bytes mean it did not,
   * and the intent and `.z` file are dropped. Either way the record matches the file.
   */
  private async replace(record: SpoolRecord, bytes: Buffer, transferSyntaxUid: string): Promise<SpoolRecord> {
    const id = record.id;
    const tmp = path.join(path.dirname(this.h.filePath(id)), `${id}.z`);
    let sha256: string;
    let size: number;
    let staged: StagedFile;
    // Sealed under a fresh data key of its own, like every spool file.
    const sealing = this.o.sealing();
    try {
      // Hashed (and sealed) on a write worker from the plaintext it seals: no read-back, and no
      // hash worker started for it (each is a thread and ~10 MB).
      const file = await this.o.prepare(sealing, bytes);
      ({ sha256 } = file);
      size = bytes.length;
      staged = await stageDurable(this.h.filePath(id), file.bytes, { tmp, mode: 0o640, syncDir: () => this.o.syncDir() });
    } catch (err) {
      // Nothing refers to the .z file yet: it goes, and the object stays as it was.
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const next = rewrittenRecord(record, { size, sha256, transferSyntaxUid, plain: !sealing });
    await this.h.db.put(rewriteKey(id), JSON.stringify({ size: next.size, sha256, transferSyntaxUid, plain: !sealing }), { sync: true });
    crashpoint('rewrite-after-intent');
    await staged.commit();
    crashpoint('rewrite-after-rename');
    const current = await this.h.records.get(id);
    if (!current) {
      // Removed meanwhile (dead letter purged): the new file must not outlive its record.
      await unlink(this.h.filePath(id)).catch(() => undefined);
      await this.h.db.del(rewriteKey(id));
      return record;
    }
    const updated = { ...next, pending: current.pending, forwardedAt: current.forwardedAt };
    await this.h.db.batch([
      { type: 'put', key: objectKey(id), value: this.h.records.seal(updated) },
      { type: 'del', key: rewriteKey(id) },
    ]);
    this.h.records.remember(updated);
    this.h.queues.resize(id, updated.size);
    this.h.objectBytes += updated.size - record.size;
    return updated;
  }
}
