import { mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { isDiskFull, PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { CoalescedDirSync } from '../util/coalesced-fsync.js';
import { crashpoint } from '../util/crashpoint.js';
import { closeFd, openFd, readFd } from '../util/fd.js';
import { stageDurable, type StagedFile } from '../util/durable-write.js';
import type { HashPool } from './hash-pool.js';
import { DiskGuard } from './disk-guard.js';
import { recoverSpool } from './recovery.js';
import { FileObjectWriter } from './file-writer.js';
import { isSealed, SEALED_HEAD_BYTES, SealedReader, sealBuffer, Sealer, type SealKey } from '../security/sealed-file.js';
import { QueueState } from './queues.js';
import { StudyBook } from './studies.js';
import { formatId, openRecord, rewrittenRecord, sealRecord } from './record-codec.js';
import { type Claim, type DeadLetter, HANDED_OVER_KEEP_MS, type ObjectInfo, type ObjectReader, type ObjectWriter, type RecoveryReport, type Spool, type SpoolRecord, type SpoolRewriter, type SpoolStats } from './spool.js';

/**
 * The production spool: LevelDB (via `level`) holds the index and one FIFO queue per
 * destination; each object is a Part 10 file under `<dir>/objects/`.
 *
 * Commit, which is what makes `kill -9` and power loss safe:
 *   1. bytes written to `objects/<id>.dcm` as they arrive;
 *   2. at the last byte, together: fsync of the file, fsync of the directory (its new entry),
 *      and one LevelDB batch (record with the SHA-256 computed while receiving, queue entries,
 *      UID index) written with `sync: true`;
 *   3. when all of 2 is done, the receiver may answer Success, and the id joins the
 *      "durable" markers (`c!<id>`), written with the next index batch or within a second.
 * Running the index write alongside the data fsync takes its latency off the path to Success
 * (measured ~0.35 ms per object, a tenth of the budget of one association). It means a power
 * loss can leave an index entry whose file never became durable — an object that was never
 * acknowledged. Recovery tells the two cases apart with the marker: without a marker the file
 * is verified in full (SHA-256) and, if it fails, discarded as unacknowledged; with a marker a
 * failing file is an acknowledged object lost, and is reported as such.
 * A file with no index entry at all is deleted at recovery (never acknowledged either).
 * (`.part` files are from earlier versions and are deleted the same way.)
 *
 * Key layout (destination names are restricted to [A-Za-z0-9_.-], so "!" separates safely):
 *   o!<id>            sealed record (see record-codec.ts)
 *   q!<dest>!<id>     pending for dest
 *   d!<dest>!<id>     dead letter for dest (JSON)
 *   u!<sopInstanceUid> id of the newest object with that UID
 *   c!<id>            the object's data was durable before it was acknowledged
 *   x!<id>            its file could not be opened at the last start (quarantined, see recovery.ts)
 *   z!<id>            a file replacement under way (compression at rest)
 *   h!<sopInstanceUid> when every destination confirmed it (Storage Commitment)
 *   s!<studyUid>       what happened to the study, per destination (studies.ts)
 *   m!format          the spool's format version (format.ts)
 *
 * Construct it only through `openSpool` (src/spool/open.ts): it knows the key, the lock and
 * the access a caller may have. test/spool/construction.test.ts holds every other module to that.
 */
/**
 * The dead-letter list of objects no destination's `forward[].match` takes: kept (never dropped
 * in silence), alarmed, and purged or re-sent by an operator once the routing is right.
 */
export const UNROUTED = 'unrouted';

function unroutedLetter(r: SpoolRecord): DeadLetter {
  return {
    id: r.id,
    destination: UNROUTED,
    sopInstanceUid: r.sopInstanceUid,
    sopClassUid: r.sopClassUid,
    studyInstanceUid: r.studyInstanceUid,
    reason: `no destination takes it (forward[].match; modality ${r.modality ?? '-'}, calling AE ${r.callingAeTitle}, SOP Class ${r.sopClassUid})`,
    at: Date.now(),
  };
}

export class LevelSpool implements Spool {
  private readonly db: Level<string, string>;
  private readonly objectsDir: string;
  private readonly dirSync: CoalescedDirSync;
  private readonly guard: DiskGuard;
  private queues: QueueState;
  private nextId = 1;
  private objectCount = 0;
  /** Commits under way, so a duplicate of an object still being committed waits for it. */
  private readonly committing = new Map<string, Promise<void>>();
  /** Ids whose durable marker is not written yet. */
  private pendingMarkers: string[] = [];
  private readonly listeners: ((destination: string) => void)[] = [];
  /** Delivered objects kept for keepForwardedMs: id → forwardedAt, oldest first. */
  private readonly kept = new Map<string, number>();
  /** Objects whose file could not be opened at start-up: kept, queued in the index, never handed out this run. */
  private quarantined = new Map<string, string>();
  /** Per study and destination: received, pending, forwarded, dead letters (studies.ts). */
  studies = new StudyBook();
  /** Objects removed from the index whose files wait for that removal to be durable. */
  private unlinkAfterSync: string[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private markerTimer: NodeJS.Timeout | undefined;
  private objectBytes = 0;

  constructor(
    private opts: {
      dir: string;
      destinations: readonly string[];
      minFreeBytes: number;
      maxBytes: number;
      verifyOnStart: 'size' | 'sha256';
      /** Keep delivered objects this long (0: remove at once). They are evicted first when space runs low. */
      keepForwardedMs?: number;
      hashPool: HashPool;
      log: Logger;
      /** Encryption at rest: every new object file is sealed with this key (src/security/sealed-file.ts). */
      seal?: SealKey | undefined;
      /**
       * False: new files are written plain (spool.encryption.profile none), while `seal` still
       * opens the files sealed before encryption was turned off.
       */
      sealNew?: boolean | undefined;
      /** The device key file, named when recovery refuses a spool it cannot open. */
      keyFile?: string | undefined;
      /**
       * Which destinations an object goes to (forward[].match); default: every destination.
       * An empty answer parks it as an `unrouted` dead letter (see {@link UNROUTED}).
       */
      route?: ((info: ObjectInfo) => string[]) | undefined;
      /** How long a study's history is kept once nothing of it is owed (default 30 days). */
      studyKeepMs?: number | undefined;
    },
  ) {
    this.db = new Level<string, string>(path.join(opts.dir, 'index'), { valueEncoding: 'utf8' });
    this.objectsDir = path.join(opts.dir, 'objects');
    this.dirSync = new CoalescedDirSync(this.objectsDir);
    this.guard = new DiskGuard(opts.dir, opts);
    this.queues = new QueueState(opts.destinations);
  }

  async open(): Promise<RecoveryReport> {
    await mkdir(this.objectsDir, { recursive: true });
    await this.db.open();
    const report = await this.recover();
    await this.trimHandedOver();
    this.trimTimer = setInterval(() => void this.trimHandedOver().catch(() => undefined), 24 * 3600 * 1000);
    this.trimTimer.unref();
    // Markers of objects acknowledged while no other object arrived are written within a second.
    this.markerTimer = setInterval(() => void this.flushMarkers().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not write durable markers; retrying')), 1000);
    this.markerTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not remove expired forwarded objects')), 60_000);
    this.sweepTimer.unref();
    return report;
  }

  /** Remove delivered objects kept longer than keepForwardedMs (or, with `force`, the n oldest). */
  async sweep(force = 0): Promise<number> {
    const limit = Date.now() - (this.opts.keepForwardedMs ?? 0);
    let n = 0;
    for (const [id, at] of [...this.kept]) {
      if (at > limit && n >= force) break;
      const record = await this.getRecord(id);
      this.kept.delete(id);
      if (record) await this.removeObject(record);
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.markerTimer);
    clearInterval(this.sweepTimer);
    clearInterval(this.trimTimer);
    await Promise.all(this.committing.values());
    await this.flushMarkers().catch(() => undefined);
    this.dirSync.close();
    await this.db.close();
  }

  private async flushMarkers(): Promise<void> {
    const ids = this.pendingMarkers.splice(0);
    try {
      await this.syncAndUnlink(ids.map((id) => ({ type: 'put' as const, key: `c!${id}`, value: '' })));
    } catch (err) {
      this.pendingMarkers.unshift(...ids);
      throw err;
    }
  }

  async begin(header: Buffer): Promise<ObjectWriter> {
    try {
      await this.guard.check(this.objectBytes);
    } catch (err) {
      // Delivered objects kept only for convenience give way before a modality is refused.
      if (this.kept.size === 0) throw err;
      const evicted = await this.sweep(Math.min(this.kept.size, 64));
      this.opts.log.info({ evicted }, 'spool short of space: removed delivered objects kept by spool.keepForwardedHours');
      // Their files are deleted only once the removals are durable (normally within a second)
      // and the guard's free space is cached: make it durable, delete them, and ask statfs
      // again now, so that the space just freed serves this object instead of refusing it.
      await this.syncAndUnlink();
      this.guard.invalidate();
      await this.guard.check(this.objectBytes);
    }
    const id = formatId(this.nextId++);
    const filePath = this.filePath(id);
    const fd = await openFd(filePath, 'wx');
    const file = new FileObjectWriter(fd, filePath, header, this.sealing ? new Sealer(this.sealing) : undefined);
    return {
      write: (chunk) => file.write(chunk),
      onDrain: (fn) => file.onDrain(fn),
      get bytes() {
        return file.bytes;
      },
      abort: () => file.abort(),
      commit: async (info) => {
        // The duplicate lookup runs while the last bytes are written: off the critical path.
        const previous = this.db.get(`u!${info.sopInstanceUid}`);
        previous.catch(() => undefined);
        const receivedAt = Date.now();
        const done = file.finish({
          syncDir: () => this.dirSync.sync(),
          index: async ({ size, sha256 }) => this.index(id, { ...info, size, sha256, receivedAt }, await previous),
        });
        this.committing.set(id, done.then(() => undefined, () => undefined));
        try {
          const record = await done;
          this.guard.wrote(record.size);
          if (record.id === id) this.pendingMarkers.push(id);
          return record;
        } catch (err) {
          // The volume filled behind the guard's back (another process): look again before the next object.
          if (isDiskFull(err)) this.guard.invalidate();
          throw err;
        } finally {
          this.committing.delete(id);
        }
      },
    };
  }

  /** The index step of the commit: one synced batch. Identical re-sends are folded into the existing record. */
  private async index(id: string, info: ObjectInfo, previousId: string | undefined): Promise<SpoolRecord> {
    if (previousId !== undefined) {
      const prev = await this.getRecord(previousId);
      if (prev && prev.sha256 === info.sha256) {
        // Same bytes again (the modality did not see our answer, or re-sent the study): keep one copy.
        await unlink(path.join(this.objectsDir, `${id}.dcm`)).catch(() => undefined);
        // If that copy is itself still being committed, our answer waits for its durability.
        await this.committing.get(prev.id);
        this.opts.log.info({ sopInstanceUid: info.sopInstanceUid, id: prev.id }, 'identical object received again; kept the spooled copy');
        return prev;
      }
      if (prev) {
        this.opts.log.warn(
          { sopInstanceUid: info.sopInstanceUid, previousId: prev.id, id, previousSha256: prev.sha256.slice(0, 16), sha256: info.sha256.slice(0, 16) },
          'a different object arrived under an already received SOP Instance UID; both are kept, in arrival order',
        );
      }
    }
    // New objects are owed to the configured destinations only (a destination removed from the
    // configuration keeps what it was already owed, and gets nothing new), and of those only to
    // the ones whose forward[].match takes them.
    const routed = this.opts.route ? this.opts.route(info) : [...this.opts.destinations];
    const unrouted = routed.length === 0 && this.opts.destinations.length > 0;
    const record: SpoolRecord = { id, ...info, pending: unrouted ? [UNROUTED] : routed };
    const markers = this.pendingMarkers.splice(0);
    const unlinks = this.unlinkAfterSync.splice(0);
    let study = this.studies.received(record);
    if (unrouted) study = this.studies.deadLettered(record, UNROUTED) ?? study;
    const ops: { type: 'put'; key: string; value: string }[] = [
      { type: 'put', key: `o!${id}`, value: sealRecord(record) },
      { type: 'put', key: `u!${info.sopInstanceUid}`, value: id },
      ...(unrouted
        ? [{ type: 'put' as const, key: `d!${UNROUTED}!${id}`, value: JSON.stringify(unroutedLetter(record)) }]
        : record.pending.map((d) => ({ type: 'put' as const, key: `q!${d}!${id}`, value: '' }))),
      ...markers.map((m) => ({ type: 'put' as const, key: `c!${m}`, value: '' })),
      ...(study ? [study] : []),
    ];
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      this.pendingMarkers.unshift(...markers);
      this.unlinkAfterSync.unshift(...unlinks);
      throw err;
    }
    for (const u of unlinks) void unlink(this.filePath(u)).catch(() => undefined);
    crashpoint('after-index');
    this.remember(record);
    if (unrouted) {
      this.queues.addDeadLetters(UNROUTED, 1);
      this.opts.log.error({ id, sopInstanceUid: info.sopInstanceUid, sopClassUid: info.sopClassUid, modality: info.modality, callingAeTitle: info.callingAeTitle }, 'object taken by no destination (forward[].match): kept as an unrouted dead letter');
      for (const fn of this.unroutedListeners) fn(record);
    } else for (const d of record.pending) this.queues.enqueue(d, id, { size: info.size, receivedAt: info.receivedAt });
    this.emitEnqueued(record.pending);
    for (const fn of this.storedListeners) fn(record);
    this.objectCount++;
    this.objectBytes += info.size;
    return record;
  }

  async claim(destination: string, max: number): Promise<Claim[]> {
    const out: Claim[] = [];
    for (const { id, attempts } of this.queues.lease(destination, max, (x) => this.rewriting.has(x))) {
      const record = await this.getRecord(id);
      if (record) out.push({ record, destination, attempts });
      else this.queues.remove(destination, id);
    }
    return out;
  }

  async read(id: string, opts: { verify?: 'spool' | 'caller' } = {}): Promise<ObjectReader> {
    const record = await this.getRecord(id);
    if (!record) throw new PacsEdgeError('SPOOL_NOT_FOUND', `no spooled object ${id}`, { details: { id } });
    const file = this.filePath(id);
    const { sha256, size } = opts.verify === 'caller' ? record : await this.opts.hashPool.hashFile(file);
    if (sha256 !== record.sha256 || size !== record.size) {
      throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${id} fails its SHA-256 check`, {
        details: { id, sopInstanceUid: record.sopInstanceUid, size, expectedSize: record.size },
      });
    }
    const fd = await openFd(file, 'r');
    try {
      // One read tells plain from sealed and holds a sealed file's header.
      const head = Buffer.alloc(SEALED_HEAD_BYTES);
      const n = await readFd(fd, head, 0);
      if (isSealed(head.subarray(0, n))) {
        // Encrypted: every read decrypts and authenticates the segments it covers, so a changed
        // byte is found before any of its segment is used (and the SHA-256 still covers it all).
        if (!this.opts.seal) throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${id} is encrypted, but the spool has no key`, { retryable: false });
        const sealed = SealedReader.fromHead(this.opts.seal, head.subarray(0, n), record.size, (buf, position) => readFd(fd, buf, position));
        return { size: record.size, sha256: record.sha256, verified: opts.verify !== 'caller', read: (buf, position) => sealed.read(buf, position), close: () => closeFd(fd) };
      }
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
    return {
      size,
      sha256: record.sha256,
      verified: opts.verify !== 'caller',
      read: (buf, position) => readFd(fd, buf, position),
      close: () => closeFd(fd),
    };
  }

  filePath(id: string): string {
    return path.join(this.objectsDir, `${id}.dcm`);
  }

  /** The key new files are sealed with, if they are. */
  private get sealing(): SealKey | undefined {
    return this.opts.sealNew === false ? undefined : this.opts.seal;
  }

  /** Objects whose file is being replaced; queues wait at them (see {@link QueueState.lease}). */
  private readonly rewriting = new Set<string>();

  readonly rewriter: SpoolRewriter = {
    filePath: (id) => this.filePath(id),
    reserve: async (id) => {
      const r = await this.getRecord(id);
      if (!r || r.pending.length === 0 || this.quarantined.has(id)) return 'gone';
      if (this.rewriting.has(id) || this.queues.leasedAnywhere(id)) return 'busy';
      this.rewriting.add(id);
      return r;
    },
    release: (id) => {
      if (!this.rewriting.delete(id)) return;
      const r = this.cache.get(id);
      if (r) this.emitEnqueued(r.pending);
    },
    replace: (record, bytes, ts) => this.replaceFile(record, bytes, ts),
    onStored: (fn) => this.storedListeners.push(fn),
    onGone: (fn) => this.goneListeners.push(fn),
    records: () => this.allRecords(),
  };

  private readonly storedListeners: ((r: SpoolRecord) => void)[] = [];
  private readonly unroutedListeners: ((r: SpoolRecord) => void)[] = [];

  /**
   * A reload changed the destinations or their `match`: new objects follow the new routing;
   * objects already queued stay owed where they are.
   */
  setRouting(destinations: readonly string[], route: (info: ObjectInfo) => string[]): void {
    this.opts = { ...this.opts, destinations, route };
    for (const d of destinations) this.queues.addDeadLetters(d, 0);
  }

  /** Remember that a study's event was announced (src/health/study-events.ts); not synced: a lost mark only repeats an event. */
  markStudy(uid: string, what: 'received' | 'done'): void {
    const op = this.studies.announce(uid, what, Date.now());
    if (op) void this.db.put(op.key, op.value).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not record a study announcement'));
  }

  /** Called with every object no destination takes (for the alarm). */
  onUnrouted(fn: (r: SpoolRecord) => void): void {
    this.unroutedListeners.push(fn);
  }
  private readonly goneListeners: ((id: string) => void)[] = [];

  private async *allRecords(): AsyncIterable<SpoolRecord> {
    for await (const [key, raw] of this.db.iterator({ gte: 'o!', lt: 'o!\xff' })) {
      const r = openRecord(raw);
      if (r && !this.quarantined.has(key.slice(2))) yield r;
    }
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
  private async replaceFile(record: SpoolRecord, bytes: Buffer, transferSyntaxUid: string): Promise<SpoolRecord> {
    const id = record.id;
    const tmp = path.join(this.objectsDir, `${id}.z`);
    let sha256: string;
    let size: number;
    let staged: StagedFile;
    try {
      // Sealed under a fresh data key of its own, like every spool file.
      const onDisk = this.sealing ? sealBuffer(this.sealing, bytes) : bytes;
      staged = await stageDurable(this.filePath(id), onDisk, { tmp, mode: 0o640, syncDir: () => this.dirSync.sync() });
      // Hashed on the worker pool (an object can be large: never on the event loop), from what
      // was written, so the record vouches for the bytes on disk.
      ({ sha256, size } = await this.opts.hashPool.hashFile(tmp));
      if (size !== bytes.length) throw new PacsEdgeError('SPOOL_WRITE_SHORT', `replacement for ${id} is ${size} bytes on disk, ${bytes.length} written`);
    } catch (err) {
      // Nothing refers to the .z file yet: it goes, and the object stays as it was.
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const next = rewrittenRecord(record, { size, sha256, transferSyntaxUid });
    await this.db.put(`z!${id}`, JSON.stringify({ size: next.size, sha256, transferSyntaxUid }), { sync: true });
    crashpoint('rewrite-after-intent');
    await staged.commit();
    crashpoint('rewrite-after-rename');
    const current = await this.getRecord(id);
    if (!current) {
      // Removed meanwhile (dead letter purged): the new file must not outlive its record.
      await unlink(this.filePath(id)).catch(() => undefined);
      await this.db.del(`z!${id}`);
      return record;
    }
    const updated = { ...next, pending: current.pending, forwardedAt: current.forwardedAt };
    await this.db.batch([
      { type: 'put', key: `o!${id}`, value: sealRecord(updated) },
      { type: 'del', key: `z!${id}` },
    ]);
    this.remember(updated);
    this.queues.resize(id, updated.size);
    this.objectBytes += updated.size - record.size;
    return updated;
  }

  /**
   * The destination has the object. Not synced: losing an ack in a crash only means the object
   * is sent once more (a PACS deduplicates by SOP Instance UID), and an fsync per delivered
   * object would halve the forwarding rate. The file itself is deleted only after its index
   * deletion has been made durable by a later synced write (see {@link syncAndUnlink}), so a
   * crash can never leave an index entry whose file is gone.
   */
  async ack(destination: string, id: string): Promise<void> {
    return this.done(destination, id, true);
  }

  /** The destination no longer owes the object: delivered, or (`delivered` false) given up by an operator. */
  private async done(destination: string, id: string, delivered: boolean): Promise<void> {
    const record = await this.getRecord(id);
    this.queues.remove(destination, id);
    if (!record) return;
    const pending = record.pending.filter((d) => d !== destination);
    const study = delivered ? this.studies.delivered(record, destination, Date.now()) : this.studies.purged(record, destination);
    const studyOps = study ? [study] : [];
    if (pending.length > 0) {
      await this.db.batch(
        [
          { type: 'put', key: `o!${id}`, value: sealRecord({ ...record, pending }) },
          { type: 'del', key: `q!${destination}!${id}` },
          ...studyOps,
        ],
        { sync: false },
      );
      this.remember({ ...record, pending });
      return;
    }
    // Owed to nobody now: nothing waits for it any more (compression at rest drops it).
    for (const fn of this.goneListeners) fn(id);
    // Remembered for Storage Commitment requests that come after the object has gone.
    const handed = [...(delivered ? [{ type: 'put' as const, key: `h!${record.sopInstanceUid}`, value: String(Date.now()) }] : []), ...studyOps];
    if ((this.opts.keepForwardedMs ?? 0) > 0) {
      const forwardedAt = Date.now();
      await this.db.batch(
        [
          { type: 'put', key: `o!${id}`, value: sealRecord({ ...record, pending, forwardedAt }) },
          { type: 'del', key: `q!${destination}!${id}` },
          ...handed,
        ],
        { sync: false },
      );
      this.remember({ ...record, pending, forwardedAt });
      this.kept.set(id, forwardedAt);
      return;
    }
    await this.removeObject(record, destination, handed);
  }

  private async removeObject(record: SpoolRecord, destination?: string, extra: { type: 'put'; key: string; value: string }[] = []): Promise<void> {
    const ops: ({ type: 'del'; key: string } | { type: 'put'; key: string; value: string })[] = [
      ...extra,
      { type: 'del', key: `o!${record.id}` },
      { type: 'del', key: `c!${record.id}` },
    ];
    if (destination) ops.push({ type: 'del', key: `q!${destination}!${record.id}` });
    if ((await this.db.get(`u!${record.sopInstanceUid}`)) === record.id) ops.push({ type: 'del', key: `u!${record.sopInstanceUid}` });
    await this.db.batch(ops, { sync: false });
    this.forget(record.id);
    this.unlinkAfterSync.push(record.id);
    this.objectCount--;
    this.objectBytes -= record.size;
  }

  /**
   * Make every index change so far durable (one synced write), then delete the files whose
   * index entries are gone. Runs with each new object's commit, and at least once a second.
   */
  private async syncAndUnlink(extra: { type: 'put'; key: string; value: string }[] = []): Promise<void> {
    const ids = this.unlinkAfterSync.splice(0);
    if (ids.length === 0 && extra.length === 0) return;
    try {
      await this.db.batch(extra.length ? extra : [{ type: 'put', key: 'm!sync', value: String(Date.now()) }], { sync: true });
    } catch (err) {
      this.unlinkAfterSync.unshift(...ids);
      throw err;
    }
    for (const id of ids) await unlink(this.filePath(id)).catch(() => undefined);
  }

  async nack(destination: string, id: string, _reason: string): Promise<void> {
    this.queues.release(destination, id, true);
  }

  async unclaim(destination: string, id: string): Promise<void> {
    this.queues.unlease(destination, id);
  }

  onEnqueue(fn: (destination: string) => void): void {
    this.listeners.push(fn);
  }

  private emitEnqueued(destinations: Iterable<string>): void {
    for (const d of destinations) for (const fn of this.listeners) fn(d);
  }

  async retryDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    const letters = (await this.listDeadLetters(destination)).filter((d) => !ids || ids.includes(d.id));
    const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
    const back: { id: string; size: number; receivedAt: number }[] = [];
    for (const d of letters) {
      ops.push({ type: 'del', key: `d!${destination}!${d.id}` });
      const r = await this.getRecord(d.id);
      if (r && r.pending.includes(destination) && destination !== UNROUTED) {
        ops.push({ type: 'put', key: `q!${destination}!${d.id}`, value: '' });
        back.push({ id: d.id, size: r.size, receivedAt: r.receivedAt });
        const study = this.studies.requeued(r, destination, true);
        if (study) ops.push(study);
      }
    }
    if (ops.length === 0) return 0;
    await this.db.batch(ops as { type: 'put'; key: string; value: string }[], { sync: true });
    for (const b of back) this.queues.requeue(destination, b.id, b);
    this.queues.addDeadLetters(destination, -letters.length);
    this.emitEnqueued([destination]);
    return back.length;
  }

  /**
   * Queue a study's objects again for destinations that already have them (a PACS lost them;
   * `pacs-edge resend`). Objects still queued stay where they are; dead letters are retried;
   * delivered objects still in the spool (spool.keepForwardedHours) are queued again. Returns
   * what was done and how many of the study's objects are no longer here to send.
   */
  async resendStudy(studyUid: string, destinations: readonly string[]): Promise<{ queued: number; retried: number; alreadyQueued: number; gone: number }> {
    const out = { queued: 0, retried: 0, alreadyQueued: 0, gone: 0 };
    const summary = this.studies.get(studyUid);
    const found: SpoolRecord[] = [];
    for await (const r of this.records()) if (r.studyInstanceUid === studyUid && !this.quarantined.has(r.id)) found.push(r);
    out.gone = Math.max(0, (summary?.instances ?? found.length) - found.length);
    for (const dest of destinations) {
      const dead = new Set((await this.listDeadLetters(dest)).map((d) => d.id));
      const retry = found.filter((r) => dead.has(r.id)).map((r) => r.id);
      if (retry.length) out.retried += await this.retryDeadLetters(dest, retry);
      for (const r0 of found) {
        if (dead.has(r0.id)) continue;
        if (this.queues.has(dest, r0.id)) {
          out.alreadyQueued++;
          continue;
        }
        const r = (await this.getRecord(r0.id)) ?? r0;
        const pending = r.pending.includes(dest) ? r.pending : [...r.pending, dest];
        const updated: SpoolRecord = { ...r, pending, forwardedAt: undefined };
        const study = this.studies.requeued(updated, dest, false);
        await this.db.batch(
          [
            { type: 'put', key: `o!${r.id}`, value: sealRecord(updated) },
            { type: 'put', key: `q!${dest}!${r.id}`, value: '' },
            ...(study ? [study] : []),
          ],
          { sync: true },
        );
        this.remember(updated);
        this.kept.delete(r.id);
        this.queues.requeue(dest, r.id, { size: r.size, receivedAt: r.receivedAt });
        out.queued++;
      }
      this.emitEnqueued([dest]);
    }
    return out;
  }

  async purgeDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    const letters = (await this.listDeadLetters(destination)).filter((d) => !ids || ids.includes(d.id));
    for (const d of letters) {
      await this.db.del(`d!${destination}!${d.id}`, { sync: true });
      this.queues.addDeadLetters(destination, -1);
      // The destination no longer owes it: the same bookkeeping as a delivery.
      await this.done(destination, d.id, false);
    }
    return letters.length;
  }

  async deadLetter(destination: string, id: string, reason: string, status?: number): Promise<void> {
    const record = await this.getRecord(id);
    if (!record) return;
    const dl: DeadLetter = { id, destination, sopInstanceUid: record.sopInstanceUid, sopClassUid: record.sopClassUid, studyInstanceUid: record.studyInstanceUid, reason, status, at: Date.now() };
    const study = this.studies.deadLettered(record, destination);
    await this.db.batch(
      [
        { type: 'del', key: `q!${destination}!${id}` },
        { type: 'put', key: `d!${destination}!${id}`, value: JSON.stringify(dl) },
        ...(study ? [study] : []),
      ],
      { sync: true },
    );
    this.queues.remove(destination, id);
    this.queues.addDeadLetters(destination, 1);
  }

  async listDeadLetters(destination?: string): Promise<DeadLetter[]> {
    const prefix = destination ? `d!${destination}!` : 'd!';
    const out: DeadLetter[] = [];
    for await (const v of this.db.values({ gte: prefix, lt: `${prefix}\xff` })) out.push(JSON.parse(v) as DeadLetter);
    return out;
  }

  async handedOver(sopInstanceUid: string): Promise<number | undefined> {
    const v = await this.db.get(`h!${sopInstanceUid}`);
    const at = v === undefined ? NaN : Number(v);
    return at > Date.now() - HANDED_OVER_KEEP_MS ? at : undefined;
  }

  /** Forget hand-overs older than {@link HANDED_OVER_KEEP_MS} (at open, then daily). */
  private async trimHandedOver(): Promise<void> {
    const expired = this.studies.expire(Date.now() - (this.opts.studyKeepMs ?? 30 * 24 * 3600 * 1000));
    if (expired.length) await this.db.batch(expired, { sync: false });
    const limit = Date.now() - HANDED_OVER_KEEP_MS;
    const old: { type: 'del'; key: string }[] = [];
    for await (const [k, v] of this.db.iterator({ gte: 'h!', lt: 'h!\xff' })) if (!(Number(v) > limit)) old.push({ type: 'del', key: k });
    if (old.length) await this.db.batch(old, { sync: false });
  }

  async find(sopInstanceUid: string): Promise<SpoolRecord | undefined> {
    const id = await this.db.get(`u!${sopInstanceUid}`);
    return id === undefined ? undefined : this.getRecord(id);
  }

  stats(): SpoolStats {
    return { objects: this.objectCount, bytes: this.objectBytes, unreadable: this.quarantined.size, destinations: this.queues.stats(Date.now()) };
  }

  /** Every record, oldest first (for status and tests). */
  async *records(): AsyncGenerator<SpoolRecord> {
    for await (const v of this.db.values({ gte: 'o!', lt: 'o!\xff' })) {
      const r = openRecord(v);
      if (r) yield r;
    }
  }

  /**
   * Records of objects in motion (just received, claimed, being acknowledged) are read several
   * times each; a small cache saves those index reads and checksum checks. Every write of an
   * `o!` key in this class goes through {@link remember} / {@link forget}, so it never serves a
   * stale record. Records are treated as immutable (updates build new objects).
   */
  private readonly cache = new Map<string, SpoolRecord>();

  private remember(r: SpoolRecord): void {
    this.cache.delete(r.id);
    this.cache.set(r.id, r);
    if (this.cache.size > 2048) this.cache.delete(this.cache.keys().next().value!);
  }

  private forget(id: string): void {
    this.cache.delete(id);
  }

  private async getRecord(id: string): Promise<SpoolRecord | undefined> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const raw = await this.db.get(`o!${id}`);
    const r = raw === undefined ? undefined : openRecord(raw);
    if (r) this.remember(r);
    return r;
  }

  /** Rebuild the in-memory state from the index and the object files (see recovery.ts). */
  private async recover(): Promise<RecoveryReport> {
    const r = await recoverSpool({
      db: this.db,
      dir: this.opts.dir,
      objectsDir: this.objectsDir,
      destinations: this.opts.destinations,
      verifyOnStart: this.opts.verifyOnStart,
      hashPool: this.opts.hashPool,
      log: this.opts.log,
      seal: this.opts.seal,
      keyFile: this.opts.keyFile,
    });
    this.queues = r.queues;
    this.quarantined = r.quarantined;
    this.studies = r.studies;
    for (const [id, at] of r.kept) this.kept.set(id, at);
    this.objectCount = r.objectCount;
    this.objectBytes = r.objectBytes;
    this.nextId = r.maxId + 1;
    this.cache.clear();
    return r.report;
  }
}
