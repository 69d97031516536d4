import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Level } from 'level';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { CoalescedDirSync } from '../util/coalesced-fsync.js';
import { crashpoint } from '../util/crashpoint.js';
import { openFd } from '../util/fd.js';
import type { HashPool } from '../util/hash-pool.js';
import { DiskGuard } from './disk-guard.js';
import { FileObjectWriter } from './file-writer.js';
import { QueueState } from './queues.js';
import { formatId, openRecord, sealRecord } from './record-codec.js';
import type { Claim, DeadLetter, ObjectInfo, ObjectWriter, RecoveryReport, Spool, SpoolRecord, SpoolStats } from './spool.js';

/**
 * The production spool: LevelDB (via `level`) holds the index and one FIFO queue per
 * destination; each object is a Part 10 file under `<dir>/objects/`.
 *
 * Commit order, which is what makes `kill -9` and power loss safe:
 *   1. bytes written to `objects/<id>.dcm` as they arrive;
 *   2. fsync of the file and of the directory (its new entry);
 *   3. one LevelDB batch (record + queue entries + UID index) written with `sync: true`.
 * Only after 3 does the receiver answer Success. A crash before 3 leaves a file with no index
 * entry, which recovery deletes (the modality never got Success, so it still owns the object).
 * (`.part` files are from earlier versions and are deleted the same way.)
 *
 * Key layout (destination names are restricted to [A-Za-z0-9_.-], so "!" separates safely):
 *   o!<id>            sealed record (see record-codec.ts)
 *   q!<dest>!<id>     pending for dest
 *   d!<dest>!<id>     dead letter for dest (JSON)
 *   u!<sopInstanceUid> id of the newest object with that UID
 */
export class LevelSpool implements Spool {
  private readonly db: Level<string, string>;
  private readonly objectsDir: string;
  private readonly dirSync: CoalescedDirSync;
  private readonly guard: DiskGuard;
  private queues: QueueState;
  private nextId = 1;
  private objectCount = 0;
  private objectBytes = 0;

  constructor(
    private readonly opts: {
      dir: string;
      destinations: readonly string[];
      minFreeBytes: number;
      maxBytes: number;
      verifyOnStart: 'size' | 'sha256';
      hashPool: HashPool;
      log: Logger;
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
    return this.recover();
  }

  async close(): Promise<void> {
    this.dirSync.close();
    await this.db.close();
  }

  async begin(header: Buffer): Promise<ObjectWriter> {
    await this.guard.check(this.objectBytes);
    const id = formatId(this.nextId++);
    const filePath = this.filePath(id);
    const fd = await openFd(filePath, 'wx');
    const file = new FileObjectWriter(fd, filePath, header);
    return {
      write: (chunk) => file.write(chunk),
      onDrain: (fn) => file.onDrain(fn),
      get bytes() {
        return file.bytes;
      },
      abort: () => file.abort(),
      commit: async (info) => {
        // The duplicate lookup runs while the fsyncs do: it is off the critical path.
        const previous = this.db.get(`u!${info.sopInstanceUid}`);
        previous.catch(() => undefined);
        const { size, sha256 } = await file.finish(() => this.dirSync.sync(), (p) => this.opts.hashPool.hashFile(p));
        this.guard.wrote(size);
        return this.index(id, { ...info, size, sha256, receivedAt: Date.now() }, await previous);
      },
    };
  }

  /** Step 3 of the commit: one synced batch. Identical re-sends are folded into the existing record. */
  private async index(id: string, info: ObjectInfo, previousId: string | undefined): Promise<SpoolRecord> {
    if (previousId !== undefined) {
      const prev = await this.getRecord(previousId);
      if (prev && prev.sha256 === info.sha256) {
        // Same bytes again (the modality did not see our answer, or re-sent the study): keep one copy.
        await unlink(path.join(this.objectsDir, `${id}.dcm`)).catch(() => undefined);
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
    const record: SpoolRecord = { id, ...info, pending: this.queues.destinations() };
    const ops: { type: 'put'; key: string; value: string }[] = [
      { type: 'put', key: `o!${id}`, value: sealRecord(record) },
      { type: 'put', key: `u!${info.sopInstanceUid}`, value: id },
      ...record.pending.map((d) => ({ type: 'put' as const, key: `q!${d}!${id}`, value: '' })),
    ];
    await this.db.batch(ops, { sync: true });
    crashpoint('after-index');
    for (const d of record.pending) this.queues.enqueue(d, id, { size: info.size, receivedAt: info.receivedAt });
    this.objectCount++;
    this.objectBytes += info.size;
    return record;
  }

  async claim(destination: string, max: number): Promise<Claim[]> {
    const out: Claim[] = [];
    for (const { id, attempts } of this.queues.lease(destination, max)) {
      const record = await this.getRecord(id);
      if (record) out.push({ record, destination, attempts });
      else this.queues.remove(destination, id);
    }
    return out;
  }

  async read(id: string): Promise<Readable> {
    const record = await this.getRecord(id);
    if (!record) throw new PacsEdgeError('SPOOL_NOT_FOUND', `no spooled object ${id}`, { details: { id } });
    const file = this.filePath(id);
    const { sha256, size } = await this.opts.hashPool.hashFile(file);
    if (sha256 !== record.sha256 || size !== record.size) {
      throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${id} fails its SHA-256 check`, {
        details: { id, sopInstanceUid: record.sopInstanceUid, size, expectedSize: record.size },
      });
    }
    return createReadStream(file, { highWaterMark: 256 * 1024 });
  }

  filePath(id: string): string {
    return path.join(this.objectsDir, `${id}.dcm`);
  }

  async ack(destination: string, id: string): Promise<void> {
    const record = await this.getRecord(id);
    this.queues.remove(destination, id);
    if (!record) return;
    const pending = record.pending.filter((d) => d !== destination);
    if (pending.length > 0) {
      await this.db.batch(
        [
          { type: 'put', key: `o!${id}`, value: sealRecord({ ...record, pending }) },
          { type: 'del', key: `q!${destination}!${id}` },
        ],
        { sync: true },
      );
      return;
    }
    await this.removeObject(record, destination);
  }

  private async removeObject(record: SpoolRecord, destination?: string): Promise<void> {
    const ops: { type: 'del'; key: string }[] = [{ type: 'del', key: `o!${record.id}` }];
    if (destination) ops.push({ type: 'del', key: `q!${destination}!${record.id}` });
    if ((await this.db.get(`u!${record.sopInstanceUid}`)) === record.id) ops.push({ type: 'del', key: `u!${record.sopInstanceUid}` });
    await this.db.batch(ops, { sync: true });
    await unlink(this.filePath(record.id)).catch(() => undefined);
    this.objectCount--;
    this.objectBytes -= record.size;
  }

  async nack(destination: string, id: string, _reason: string): Promise<void> {
    this.queues.release(destination, id, true);
  }

  async deadLetter(destination: string, id: string, reason: string, status?: number): Promise<void> {
    const record = await this.getRecord(id);
    if (!record) return;
    const dl: DeadLetter = { id, destination, sopInstanceUid: record.sopInstanceUid, sopClassUid: record.sopClassUid, reason, status, at: Date.now() };
    await this.db.batch(
      [
        { type: 'del', key: `q!${destination}!${id}` },
        { type: 'put', key: `d!${destination}!${id}`, value: JSON.stringify(dl) },
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

  async find(sopInstanceUid: string): Promise<SpoolRecord | undefined> {
    const id = await this.db.get(`u!${sopInstanceUid}`);
    return id === undefined ? undefined : this.getRecord(id);
  }

  stats(): SpoolStats {
    return { objects: this.objectCount, bytes: this.objectBytes, destinations: this.queues.stats(Date.now()) };
  }

  /** Every record, oldest first (for status and tests). */
  async *records(): AsyncGenerator<SpoolRecord> {
    for await (const v of this.db.values({ gte: 'o!', lt: 'o!\xff' })) {
      const r = openRecord(v);
      if (r) yield r;
    }
  }

  private async getRecord(id: string): Promise<SpoolRecord | undefined> {
    const raw = await this.db.get(`o!${id}`);
    return raw === undefined ? undefined : openRecord(raw);
  }

  /**
   * Rebuild the in-memory state from the index and the object files, removing what a crash
   * left half-done, and report every acknowledged object that cannot be vouched for.
   */
  private async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { recovered: 0, recoveredBytes: 0, discardedPartials: 0, discardedBytes: 0, lost: [], danglingQueueEntries: 0 };
    const files = new Map<string, number>();
    let maxId = 0;
    for (const name of await readdir(this.objectsDir)) {
      const m = /^(\d{16})\.(dcm|part)$/.exec(name);
      if (!m) continue;
      maxId = Math.max(maxId, Number(m[1]));
      const full = path.join(this.objectsDir, name);
      const size = (await stat(full)).size;
      if (m[2] === 'part') {
        await unlink(full);
        report.discardedPartials++;
        report.discardedBytes += size;
      } else files.set(m[1]!, size);
    }

    const destinations = new Set(this.opts.destinations);
    const live = new Set<string>();
    const deletes: string[] = [];
    const quarantine: string[] = [];
    const lose = (id: string, sopInstanceUid: string | undefined, reason: string) => {
      report.lost.push({ id, sopInstanceUid: sopInstanceUid ?? '(unknown)', reason });
      quarantine.push(id);
      this.opts.log.error({ id, sopInstanceUid, reason }, 'acknowledged object lost from the spool');
      deletes.push(`o!${id}`);
    };
    const keep = (id: string, record: SpoolRecord) => {
      live.add(id);
      report.recovered++;
      report.recoveredBytes += record.size;
      this.objectCount++;
      this.objectBytes += record.size;
      for (const d of record.pending) destinations.add(d);
    };
    // With verifyOnStart: sha256 every file is hashed on the worker pool, all threads at once.
    const hashing: { id: string; record: SpoolRecord; hash: Promise<{ sha256: string }> }[] = [];
    for await (const [key, raw] of this.db.iterator({ gte: 'o!', lt: 'o!\xff' })) {
      const id = key.slice(2);
      maxId = Math.max(maxId, Number(id));
      const record = openRecord(raw);
      const size = files.get(id);
      files.delete(id);
      if (!record) lose(id, undefined, 'index record fails its checksum');
      else if (size === undefined) lose(id, record.sopInstanceUid, 'object file is missing');
      else if (size !== record.size) lose(id, record.sopInstanceUid, `object file is ${size} bytes, expected ${record.size}`);
      else if (this.opts.verifyOnStart === 'sha256') {
        const hash = this.opts.hashPool.hashFile(this.filePath(id));
        hash.catch(() => undefined);
        hashing.push({ id, record, hash });
      } else keep(id, record);
    }
    for (const h of hashing) {
      const sha = await h.hash.then((r) => r.sha256, () => undefined);
      if (sha === h.record.sha256) keep(h.id, h.record);
      else lose(h.id, h.record.sopInstanceUid, 'object file fails its SHA-256 check');
    }
    // What is left of a lost object goes to lost/ for inspection, out of the queues' way.
    if (quarantine.length) await mkdir(path.join(this.opts.dir, 'lost'), { recursive: true });
    for (const id of quarantine) {
      await rename(this.filePath(id), path.join(this.opts.dir, 'lost', `${id}.dcm`)).catch(() => undefined);
    }

    // .dcm files with no index entry: written (maybe fully) but never indexed, so never acknowledged.
    for (const [id, size] of files) {
      await unlink(this.filePath(id)).catch(() => undefined);
      report.discardedPartials++;
      report.discardedBytes += size;
    }

    this.queues = new QueueState([...destinations]);
    const entryFor = new Map<string, { size: number; receivedAt: number }>();
    for await (const key of this.db.keys({ gte: 'q!', lt: 'q!\xff' })) {
      const [, dest, id] = key.split('!') as [string, string, string];
      if (!live.has(id)) {
        deletes.push(key);
        report.danglingQueueEntries++;
        continue;
      }
      let e = entryFor.get(id);
      if (!e) {
        const r = (await this.getRecord(id))!;
        e = { size: r.size, receivedAt: r.receivedAt };
        entryFor.set(id, e);
      }
      this.queues.enqueue(dest, id, e);
    }
    for await (const key of this.db.keys({ gte: 'd!', lt: 'd!\xff' })) {
      const [, dest] = key.split('!') as [string, string];
      this.queues.addDeadLetters(dest, 1);
    }
    if (deletes.length) await this.db.batch(deletes.map((key) => ({ type: 'del' as const, key })), { sync: true });
    this.nextId = maxId + 1;
    return report;
  }
}
