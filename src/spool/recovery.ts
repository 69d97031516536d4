import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Level } from 'level';
import type { Logger } from '../log.js';
import type { HashPool } from '../util/hash-pool.js';
import { sealedSize, type SealKey } from './sealed-file.js';
import { QueueState } from './queues.js';
import { openRecord, rewrittenRecord, sealRecord } from './record-codec.js';
import type { RecoveryReport, SpoolRecord } from './spool.js';

/**
 * Start-up recovery of a {@link LevelSpool}: rebuild the in-memory state from the index and the
 * object files, remove what a crash left half-done, and report every acknowledged object that
 * cannot be vouched for.
 *
 * - `.part` files (earlier versions) and `.dcm` files with no index entry: never acknowledged,
 *   deleted and counted as discarded partials.
 * - Indexed objects: the file must exist with the recorded size (and SHA-256 with
 *   `verifyOnStart: sha256`). Objects without their durable marker (the last few before a
 *   crash) are always hashed: a failure there means the data never reached the disk before a
 *   power loss — never acknowledged, discarded with a warning. With the marker, a failure is an
 *   acknowledged object lost: reported, logged as an error, what is left moved to `lost/`.
 * - Queue entries pointing to nothing, markers of removed objects and stale UID index entries
 *   are deleted; intact objects without a marker get one.
 */
export interface RecoveryInput {
  db: Level<string, string>;
  dir: string;
  objectsDir: string;
  destinations: readonly string[];
  verifyOnStart: 'size' | 'sha256';
  hashPool: HashPool;
  log: Logger;
  /** The spool key: an encrypted file is its sealed size on disk. */
  seal?: SealKey | undefined;
}

export interface RecoveryResult {
  report: RecoveryReport;
  queues: QueueState;
  /** Delivered objects kept by keepForwardedHours: id → forwardedAt, oldest first. */
  kept: Map<string, number>;
  objectCount: number;
  objectBytes: number;
  maxId: number;
}

/**
 * Finish or undo the file replacements a crash interrupted (compression at rest, see
 * LevelSpool.replaceFile): the file holding the intent's bytes means the rename happened and
 * the record is brought up to date; otherwise the old file is still in place and the intent
 * and its `.z` file are dropped. Stray `.z` files (a crash before the intent) go too.
 */
async function finishRewrites(opts: RecoveryInput): Promise<{ finished: number; undone: number }> {
  const { db } = opts;
  const ops: ({ type: 'put'; key: string; value: string } | { type: 'del'; key: string })[] = [];
  let finished = 0;
  let undone = 0;
  for await (const [key, raw] of db.iterator({ gte: 'z!', lt: 'z!\xff' })) {
    const id = key.slice(2);
    ops.push({ type: 'del', key });
    const intent = JSON.parse(raw) as { size: number; sha256: string; transferSyntaxUid: string };
    const recRaw = await db.get(`o!${id}`);
    const record = recRaw === undefined ? undefined : openRecord(recRaw);
    const now = await opts.hashPool.hashFile(path.join(opts.objectsDir, `${id}.dcm`)).catch(() => undefined);
    if (record && now && now.sha256 === intent.sha256 && now.size === intent.size) {
      ops.push({ type: 'put', key: `o!${id}`, value: sealRecord(rewrittenRecord(record, intent)) });
      finished++;
    } else undone++;
  }
  if (ops.length) await db.batch(ops, { sync: true });
  for (const name of await readdir(opts.objectsDir)) if (/^\d{16}\.z$/.test(name)) await unlink(path.join(opts.objectsDir, name)).catch(() => undefined);
  if (finished || undone) opts.log.info({ finished, undone }, 'interrupted compressions at rest completed or undone');
  return { finished, undone };
}

export async function recoverSpool(opts: RecoveryInput): Promise<RecoveryResult> {
  const { db, log } = opts;
  await finishRewrites(opts);
  const filePath = (id: string) => path.join(opts.objectsDir, `${id}.dcm`);
  const report: RecoveryReport = { recovered: 0, recoveredBytes: 0, discardedPartials: 0, discardedBytes: 0, lost: [], danglingQueueEntries: 0 };
  const files = new Map<string, number>();
  let maxId = 0;
  let objectCount = 0;
  let objectBytes = 0;
  for (const name of await readdir(opts.objectsDir)) {
    const m = /^(\d{16})\.(dcm|part)$/.exec(name);
    if (!m) continue;
    maxId = Math.max(maxId, Number(m[1]));
    const full = path.join(opts.objectsDir, name);
    const size = (await stat(full)).size;
    if (m[2] === 'part') {
      await unlink(full);
      report.discardedPartials++;
      report.discardedBytes += size;
    } else files.set(m[1]!, size);
  }

  const markers = new Set<string>();
  for await (const key of db.keys({ gte: 'c!', lt: 'c!\xff' })) markers.add(key.slice(2));

  const destinations = new Set(opts.destinations);
  const live = new Map<string, SpoolRecord>();
  const kept: [string, number][] = [];
  const deletes: string[] = [];
  const puts: string[] = [];
  const quarantine: string[] = [];
  const removedUids: [string, string][] = [];
  const lose = (id: string, sopInstanceUid: string | undefined, reason: string) => {
    report.lost.push({ id, sopInstanceUid: sopInstanceUid ?? '(unknown)', reason });
    quarantine.push(id);
    log.error({ id, sopInstanceUid, reason }, 'acknowledged object lost from the spool');
    deletes.push(`o!${id}`, `c!${id}`);
    if (sopInstanceUid) removedUids.push([sopInstanceUid, id]);
  };
  /** Indexed, but its data never became durable before the crash: it was never acknowledged. */
  const unconfirmed = (id: string, record: SpoolRecord, size: number | undefined, reason: string) => {
    files.set(id, size ?? 0); // deleted (and counted) below with the unindexed files
    deletes.push(`o!${id}`);
    removedUids.push([record.sopInstanceUid, id]);
    log.warn({ id, sopInstanceUid: record.sopInstanceUid, reason }, 'unacknowledged object discarded: a crash came before its data was durable');
  };
  const keep = (id: string, record: SpoolRecord, confirmed: boolean) => {
    live.set(id, record);
    if (record.forwardedAt !== undefined && record.pending.length === 0) kept.push([id, record.forwardedAt]);
    if (!confirmed) puts.push(`c!${id}`);
    report.recovered++;
    report.recoveredBytes += record.size;
    objectCount++;
    objectBytes += record.size;
    for (const d of record.pending) destinations.add(d);
  };
  // Files are hashed on the worker pool, all threads at once: every file without a durable
  // marker, and all of them with verifyOnStart: sha256.
  const hashing: { id: string; record: SpoolRecord; size: number; confirmed: boolean; hash: Promise<{ sha256: string }> }[] = [];
  for await (const [key, raw] of db.iterator({ gte: 'o!', lt: 'o!\xff' })) {
    const id = key.slice(2);
    maxId = Math.max(maxId, Number(id));
    const record = openRecord(raw);
    const size = files.get(id);
    files.delete(id);
    const confirmed = markers.delete(id);
    if (!record) {
      lose(id, undefined, 'index record fails its checksum');
      continue;
    }
    const bad = (reason: string) => (confirmed ? lose(id, record.sopInstanceUid, reason) : unconfirmed(id, record, size, reason));
    if (size === undefined) bad('object file is missing');
    // Plain, or sealed under either profile (the profile may have changed since it was written).
    else if (size !== record.size && !(opts.seal && (size === sealedSize(record.size, 'aes-256-gcm') || size === sealedSize(record.size, 'gm')))) bad(`object file is ${size} bytes, expected ${record.size}`);
    else if (opts.verifyOnStart === 'sha256' || !confirmed) {
      const hash = opts.hashPool.hashFile(filePath(id));
      hash.catch(() => undefined);
      hashing.push({ id, record, size, confirmed, hash });
    } else keep(id, record, true);
  }
  for (const h of hashing) {
    const sha = await h.hash.then((r) => r.sha256, () => undefined);
    if (sha === h.record.sha256) keep(h.id, h.record, h.confirmed);
    else if (h.confirmed) lose(h.id, h.record.sopInstanceUid, 'object file fails its SHA-256 check');
    else unconfirmed(h.id, h.record, h.size, 'object file fails its SHA-256 check');
  }
  for (const id of markers) deletes.push(`c!${id}`); // markers of objects no longer indexed
  for (const [uid, id] of removedUids) if ((await db.get(`u!${uid}`)) === id) deletes.push(`u!${uid}`);
  // What is left of a lost object goes to lost/ for inspection, out of the queues' way.
  if (quarantine.length) await mkdir(path.join(opts.dir, 'lost'), { recursive: true });
  for (const id of quarantine) await rename(filePath(id), path.join(opts.dir, 'lost', `${id}.dcm`)).catch(() => undefined);

  // .dcm files with no index entry: written (maybe fully) but never indexed, so never acknowledged.
  for (const [id, size] of files) {
    await unlink(filePath(id)).catch(() => undefined);
    report.discardedPartials++;
    report.discardedBytes += size;
  }

  const queues = new QueueState([...destinations]);
  for await (const key of db.keys({ gte: 'q!', lt: 'q!\xff' })) {
    const [, dest, id] = key.split('!') as [string, string, string];
    const r = live.get(id);
    if (!r) {
      deletes.push(key);
      report.danglingQueueEntries++;
      continue;
    }
    queues.enqueue(dest, id, { size: r.size, receivedAt: r.receivedAt });
  }
  for await (const key of db.keys({ gte: 'd!', lt: 'd!\xff' })) queues.addDeadLetters(key.split('!')[1]!, 1);
  for (const d of queues.stats(Date.now())) {
    if (!opts.destinations.includes(d.name) && d.pending > 0) {
      log.warn({ destination: d.name, pending: d.pending }, 'objects are still owed to a destination that is no longer configured; they stay in the spool until it is configured again');
    }
  }
  if (deletes.length || puts.length) {
    await db.batch([...deletes.map((key) => ({ type: 'del' as const, key })), ...puts.map((key) => ({ type: 'put' as const, key, value: '' }))], { sync: true });
  }
  return { report, queues, kept: new Map(kept.sort((a, b) => a[1] - b[1])), objectCount, objectBytes, maxId };
}
