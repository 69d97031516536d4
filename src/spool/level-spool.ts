import { mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { isDiskFull, PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { CoalescedDirSync } from '../util/coalesced-fsync.js';
import { crashpoint } from '../util/crashpoint.js';
import { openFd } from '../util/fd.js';
import type { HashPool } from './hash-pool.js';
import { DiskGuard } from './disk-guard.js';
import { recoverSpool } from './recovery.js';
import { defaultWriteThreads, WritePool } from './write-pool.js';
import type { SealKey } from '../security/sealed-file.js';
import { StudyBook } from './studies.js';
import { formatId, RecordCodec } from './record-codec.js';
import { SpoolState } from './spool-state.js';
import { DeadLetters, UNROUTED, unroutedLetter } from './dead-letters.js';
import { FileRewriter } from './rewriter.js';
import { Delivery } from './delivery.js';
import { type Claim, type DeadLetter, type ObjectInfo, type ObjectReader, type ObjectWriter, type RecoveryReport, type Spool, type SpoolRecord, type SpoolRewriter, type SpoolStats } from './spool.js';
import { deadLetterKey, durableKey, objectKey, quarantineKey, queueKey, uidKey } from './keys.js';
import { openObjectFile } from './object-reader.js';

/**
 * The production spool: LevelDB (via `level`) holds the index and one FIFO queue per
 * destination; each object is a Part 10 file under `<dir>/objects/`.
 *
 * Commit, which is what makes `kill -9` and power loss safe:
 *   1. bytes written to `objects/<id>.dcm` as they arrive, by a write worker (write-pool.ts);
 *   2. at the last byte, together: fsync of the file, fsync of the directory (its new entry),
 *      and one LevelDB batch (record, queue entries, UID index) written with `sync: true`;
 *   3. when all of 2 is done, the receiver may answer Success, and the id joins the
 *      "durable" markers (`c!<id>`), written with the next index batch or within a second.
 * The index write runs alongside the data fsync (~0.35 ms per object off the path to Success),
 * so a power loss can leave an index entry whose file never became durable: an object never
 * acknowledged. Recovery tells the cases apart with the marker: without one the file is
 * verified in full (SHA-256, or a sealed file's authenticated segments) and discarded as
 * unacknowledged if it fails; with one a failing file is an acknowledged object lost, and is
 * reported. A file with no index entry is deleted at recovery (never acknowledged either).
 * The index's keys are laid out in keys.ts; dead letters are kept by dead-letters.ts, file
 * replacements (compression at rest) made by rewriter.ts.
 *
 * Construct it only through `openSpool` (src/spool/open.ts): it knows the key, the lock and
 * the access a caller may have. test/spool/construction.test.ts holds every other module to that.
 */
export class LevelSpool implements Spool {
  private readonly db: Level<string, string>;
  /** The in-memory state, shared with the modules this spool is made of. */
  private readonly s: SpoolState;
  private readonly letters: DeadLetters;
  private readonly delivery: Delivery;
  private readonly files: FileRewriter;
  /** The worker threads that hash, seal and write received objects. */
  private readonly writers: WritePool;
  /** Replaces object files in place (compression at rest, rewriter.ts). */
  readonly rewriter: SpoolRewriter;
  private readonly objectsDir: string;
  private readonly dirSync: CoalescedDirSync;
  private readonly guard: DiskGuard;
  private nextId = 1;
  /** Commits under way, so a duplicate of an object still being committed waits for it. */
  private readonly committing = new Map<string, Promise<void>>();
  /** Ids whose durable marker is not written yet. */
  private pendingMarkers: string[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private markerTimer: NodeJS.Timeout | undefined;

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
      /** Worker threads that hash, seal and write received objects (default: see defaultWriteThreads). */
      writeThreads?: number | undefined;
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
       * The index records' MAC key (HKDF `spool-index` of the device key, record-codec.ts);
       * undefined only for a spool without a device key (tests).
       */
      indexKey?: Buffer | undefined;
      /** Seals destinations' Error Comments in dead letters; undefined (profile none): only their length is kept. */
      commentKey?: SealKey | undefined;
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
    this.s = new SpoolState(this.db, this.objectsDir, opts.destinations, new RecordCodec(opts.indexKey));
    this.delivery = new Delivery(this.s, opts);
    this.letters = new DeadLetters(this.s, (destination, id, delivered) => this.delivery.done(destination, id, delivered), opts.commentKey);
    this.writers = new WritePool(opts.writeThreads ?? defaultWriteThreads());
    this.files = new FileRewriter(this.s, { sealing: () => this.sealing, prepare: (key, plain) => this.writers.prepare(key, plain), hashPool: opts.hashPool, syncDir: () => this.dirSync.sync() });
    this.rewriter = this.files.api;
  }

  async open(): Promise<RecoveryReport> {
    await mkdir(this.objectsDir, { recursive: true });
    await this.db.open();
    const report = await this.recover();
    await this.delivery.trimHandedOver();
    this.trimTimer = setInterval(() => void this.delivery.trimHandedOver().catch(() => undefined), 24 * 3600 * 1000);
    this.trimTimer.unref();
    // Markers of objects acknowledged while no other object arrived are written within a second.
    this.markerTimer = setInterval(() => void this.flushMarkers().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not write durable markers; retrying')), 1000);
    this.markerTimer.unref();
    this.sweepTimer = setInterval(() => void this.delivery.sweep().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not remove expired forwarded objects')), 60_000);
    this.sweepTimer.unref();
    return report;
  }

  /** Remove delivered objects kept longer than keepForwardedMs (or, with `force`, the n oldest). */
  sweep(force = 0): Promise<number> {
    return this.delivery.sweep(force);
  }

  /** When every destination confirmed `sopInstanceUid` (Storage Commitment), if it did lately. */
  handedOver(sopInstanceUid: string): Promise<number | undefined> {
    return this.delivery.handedOver(sopInstanceUid);
  }

  async close(): Promise<void> {
    clearInterval(this.markerTimer);
    clearInterval(this.sweepTimer);
    clearInterval(this.trimTimer);
    await Promise.all(this.committing.values());
    await this.flushMarkers().catch(() => undefined);
    this.dirSync.close();
    await this.writers.close();
    await this.db.close();
  }

  private async flushMarkers(): Promise<void> {
    const ids = this.pendingMarkers.splice(0);
    try {
      await this.delivery.syncAndUnlink(ids.map((id) => ({ type: 'put' as const, key: durableKey(id), value: '' })));
    } catch (err) {
      this.pendingMarkers.unshift(...ids);
      throw err;
    }
  }

  async begin(header: Buffer, hint?: { sopInstanceUid: string }): Promise<ObjectWriter> {
    try {
      await this.guard.check(this.s.objectBytes);
    } catch (err) {
      // Delivered objects kept only for convenience give way before a modality is refused.
      if (this.s.kept.size === 0) throw err;
      const evicted = await this.delivery.sweep(Math.min(this.s.kept.size, 64));
      this.opts.log.info({ evicted }, 'spool short of space: removed delivered objects kept by spool.keepForwardedHours');
      // Their files are deleted only once the removals are durable (normally within a second)
      // and the guard's free space is cached: make it durable, delete them, and ask statfs
      // again now, so that the space just freed serves this object instead of refusing it.
      await this.delivery.syncAndUnlink();
      this.guard.invalidate();
      await this.guard.check(this.s.objectBytes);
    }
    const id = formatId(this.nextId++);
    const filePath = this.filePath(id);
    const sealing = this.sealing;
    // A plain file's SHA-256 is its only integrity check. A sealed file's segments are
    // authenticated; its digest serves only to fold an identical re-send, so it is computed
    // only when the SOP Instance UID is already spooled (or not known yet).
    const [fd, resend] = await Promise.all([openFd(filePath, 'wx'), sealing && hint ? this.db.get(uidKey(hint.sopInstanceUid)).catch(() => id) : Promise.resolve(id)]);
    const file = this.writers.open(fd, filePath, header, { hash: !sealing || resend !== undefined, seal: sealing });
    return {
      write: (chunk) => file.write(chunk),
      onDrain: (fn) => file.onDrain(fn),
      get bytes() {
        return file.bytes;
      },
      abort: () => file.abort(),
      commit: async (info) => {
        // The duplicate lookup runs while the last bytes are written: off the critical path.
        const previous = this.db.get(uidKey(info.sopInstanceUid));
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
      const prev = await this.s.records.get(previousId);
      if (prev && (await this.sameBytes(prev, info.sha256))) {
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
    // `plain` is authenticated with the record: a plain file is accepted only where its record says so.
    const record: SpoolRecord = { id, ...info, pending: unrouted ? [UNROUTED] : routed, ...(this.sealing ? {} : { plain: true }) };
    const markers = this.pendingMarkers.splice(0);
    const unlinks = this.delivery.takeUnlinks();
    let study = this.s.studies.received(record);
    if (unrouted) study = this.s.studies.deadLettered(record, UNROUTED) ?? study;
    const ops: { type: 'put'; key: string; value: string }[] = [
      { type: 'put', key: objectKey(id), value: this.s.records.seal(record) },
      { type: 'put', key: uidKey(info.sopInstanceUid), value: id },
      ...(unrouted
        ? [{ type: 'put' as const, key: deadLetterKey(UNROUTED, id), value: JSON.stringify(unroutedLetter(record)) }]
        : record.pending.map((d) => ({ type: 'put' as const, key: queueKey(d, id), value: '' }))),
      ...markers.map((m) => ({ type: 'put' as const, key: durableKey(m), value: '' })),
      ...(study ? [study] : []),
    ];
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      this.pendingMarkers.unshift(...markers);
      this.delivery.putBackUnlinks(unlinks);
      throw err;
    }
    this.delivery.unlinkFiles(unlinks);
    crashpoint('after-index');
    this.s.records.remember(record);
    if (unrouted) {
      this.s.queues.addDeadLetters(UNROUTED, 1);
      this.opts.log.error({ id, sopInstanceUid: info.sopInstanceUid, sopClassUid: info.sopClassUid, modality: info.modality, callingAeTitle: info.callingAeTitle }, 'object taken by no destination (forward[].match): kept as an unrouted dead letter');
      for (const fn of this.s.unroutedListeners) fn(record);
    } else for (const d of record.pending) this.s.queues.enqueue(d, id, { size: info.size, receivedAt: info.receivedAt });
    this.s.emitEnqueued(record.pending);
    for (const fn of this.s.storedListeners) fn(record);
    this.s.objectCount++;
    this.s.objectBytes += info.size;
    return record;
  }

  async claim(destination: string, max: number): Promise<Claim[]> {
    const out: Claim[] = [];
    for (const { id, attempts } of this.s.queues.lease(destination, max, (x) => this.files.busy(x))) {
      const record = await this.s.records.get(id);
      if (record) out.push({ record, destination, attempts });
      else await this.refuseRecord(destination, id);
    }
    return out;
  }

  /**
   * A queued object whose record is gone or no longer passes its checksum and MAC (changed on
   * the card since recovery). Gone: its queue entry goes. Present but refused: never handed
   * out, kept in the index as it is, quarantined for this run (counted in status) and judged
   * again by the next start's recovery.
   */
  private async refuseRecord(destination: string, id: string): Promise<void> {
    this.s.queues.remove(destination, id);
    if ((await this.db.get(objectKey(id))) === undefined) return;
    const reason = 'index record fails its checksum or authentication (MAC)';
    this.s.quarantined.set(id, reason);
    await this.db.put(quarantineKey(id), JSON.stringify({ reason, at: Date.now() })).catch(() => undefined);
    this.opts.log.error({ id, destination, reason }, 'spooled object refused before sending: its index record was changed outside the gateway; kept, not sent');
  }

  async read(id: string, opts: { verify?: 'spool' | 'caller' | 'memory' } = {}): Promise<ObjectReader> {
    const record = await this.s.records.get(id);
    if (!record) throw new PacsEdgeError('SPOOL_NOT_FOUND', `no spooled object ${id}`, { details: { id } });
    return openObjectFile(this.filePath(id), record, { verify: opts.verify ?? 'spool', seal: this.opts.seal, hashPool: this.opts.hashPool });
  }

  filePath(id: string): string {
    return this.s.filePath(id);
  }

  /** Per study and destination: received, pending, forwarded, dead letters (studies.ts). */
  get studies(): StudyBook {
    return this.s.studies;
  }

  /** Does `prev` hold the bytes hashed `sha256`? A sealed one kept without a digest is hashed now, on a worker (re-sends are rare). */
  private async sameBytes(prev: SpoolRecord, sha256: string): Promise<boolean> {
    if (sha256 === '' || prev.sha256 !== '') return sha256 !== '' && prev.sha256 === sha256;
    const h = await this.opts.hashPool.hashFile(this.filePath(prev.id)).catch(() => undefined); // damaged: keep both
    return h?.sha256 === sha256 && h.size === prev.size;
  }

  /** The key new files are sealed with, if they are. */
  private get sealing(): SealKey | undefined {
    return this.opts.sealNew === false ? undefined : this.opts.seal;
  }


  /**
   * A reload changed the destinations or their `match`: new objects follow the new routing;
   * objects already queued stay owed where they are.
   */
  setRouting(destinations: readonly string[], route: (info: ObjectInfo) => string[]): void {
    this.opts = { ...this.opts, destinations, route };
    for (const d of destinations) this.s.queues.addDeadLetters(d, 0);
  }

  /** Remember that a study's event was announced (src/health/study-events.ts); not synced: a lost mark only repeats an event. */
  markStudy(uid: string, what: 'received' | 'done'): void {
    const op = this.s.studies.announce(uid, what, Date.now());
    if (op) void this.db.put(op.key, op.value).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not record a study announcement'));
  }

  /** Called with every object no destination takes (for the alarm). */
  onUnrouted(fn: (r: SpoolRecord) => void): void {
    this.s.unroutedListeners.push(fn);
  }

  /**
   * The destination has the object. Not synced: losing an ack in a crash only means the object
   * is sent once more (a PACS deduplicates by SOP Instance UID), and an fsync per delivered
   * object would halve the forwarding rate. The file itself is deleted only after its index
   * deletion has been made durable by a later synced write (see {@link syncAndUnlink}), so a
   * crash can never leave an index entry whose file is gone.
   */
  async ack(destination: string, id: string): Promise<void> {
    return this.delivery.done(destination, id, true);
  }

  async ackMany(destination: string, ids: readonly string[]): Promise<void> {
    return this.delivery.doneMany(destination, ids, true);
  }

  async nack(destination: string, id: string, _reason: string): Promise<void> {
    this.s.queues.release(destination, id, true);
  }

  async unclaim(destination: string, id: string): Promise<void> {
    this.s.queues.unlease(destination, id);
  }

  onEnqueue(fn: (destination: string) => void): void {
    this.s.enqueuedListeners.push(fn);
  }

  retryDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    return this.letters.retry(destination, ids);
  }

  /**
   * Queue a study's objects again for destinations that already have them (a PACS lost them;
   * `pacs-edge resend`): see {@link DeadLetters.resendStudy}.
   */
  resendStudy(studyUid: string, destinations: readonly string[]): Promise<{ queued: number; retried: number; alreadyQueued: number; gone: number }> {
    return this.letters.resendStudy(studyUid, destinations);
  }

  purgeDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    return this.letters.purge(destination, ids);
  }

  deadLetter(destination: string, id: string, reason: string, status?: number, peerComment?: string): Promise<void> {
    return this.letters.add(destination, id, reason, status, peerComment);
  }

  listDeadLetters(destination?: string): Promise<DeadLetter[]> {
    return this.letters.list(destination);
  }


  async find(sopInstanceUid: string): Promise<SpoolRecord | undefined> {
    const id = await this.db.get(uidKey(sopInstanceUid));
    return id === undefined ? undefined : this.s.records.get(id);
  }

  stats(): SpoolStats {
    return { objects: this.s.objectCount, bytes: this.s.objectBytes, unreadable: this.s.quarantined.size, destinations: this.s.queues.stats(Date.now()) };
  }

  /** Every record, oldest first (for status and tests). */
  records(): AsyncGenerator<SpoolRecord> {
    return this.s.records.all();
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
      codec: this.s.records.codec,
    });
    this.s.queues = r.queues;
    this.s.quarantined = r.quarantined;
    this.s.studies = r.studies;
    for (const [id, at] of r.kept) this.s.kept.set(id, at);
    this.s.objectCount = r.objectCount;
    this.s.objectBytes = r.objectBytes;
    this.nextId = r.maxId + 1;
    this.s.records.clear();
    return r.report;
  }
}

