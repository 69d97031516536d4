import { accessSync, chownSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import type { GatewayConfig } from '../config/types.js';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceKey } from '../security/device-key.js';
import { commentKey, indexMacKey, sealProfileOf, spoolKey } from '../security/spool-key.js';
import { HashPool } from './hash-pool.js';
import { LevelSpool } from './level-spool.js';
import { refuseNewerFormat } from './format.js';
import { owe as oweTo, type Owed, StudyBook, type StudySummary } from './studies.js';
import { routeOf } from './route.js';
import { openRecord } from './record-codec.js';
import { isSealed, SEALED_HEAD_BYTES, sealedHeaderProblem, type SealKey } from '../security/sealed-file.js';
import { closeFd, openFd, readFd } from '../util/fd.js';
import type { DeadLetter, RecoveryReport, SpoolStats } from './spool.js';
import { deadLetterRange, destinationAndId, idOf, keyRange } from './keys.js';

/**
 * The one way to open the spool. Every caller — the gateway and every command — comes here with
 * the whole configuration, so none can open it without the key, the lock or the recovery rules
 * (a command that once built its own spool without the key moved every sealed object out of the
 * queue; issue 12). No other module constructs a {@link LevelSpool} or opens its index
 * (test/spool/construction.test.ts checks that).
 *
 * Access:
 * - `gateway`: the running gateway. Takes the spool's lock (LevelDB's `LOCK`, released by the
 *   kernel when the process dies), runs the full recovery (recovery.ts) with the device key.
 * - `admin`: a command that changes a stopped gateway's spool (dead-letter retry/purge…). The
 *   same lock, key and recovery as the gateway, so it can do nothing the gateway would not.
 * - read-only ({@link readSpool}): a command that only reads (status, dead-letter list). Opens
 *   the index briefly, runs no recovery, needs no key, writes nothing of its own.
 *
 * The lock is waited for a while (another command may hold it for a moment), then refused with
 * `SPOOL_LOCKED`, naming the holder when it left an `owner.json`.
 */
export type SpoolAccess = 'gateway' | 'admin';

export interface OpenedSpool {
  spool: LevelSpool;
  /** SHA-256 workers that can read the spool's sealed files. */
  hashPool: HashPool;
  /** The key files are sealed (and opened) with; undefined without a device key. */
  seal: SealKey | undefined;
  recovery: RecoveryReport;
  /** Close the spool and its workers; the lock goes with it. */
  close(): Promise<void>;
}

/** Who holds the spool, for the message another process gets (informative only: the lock is LevelDB's). */
export const OWNER_FILE = 'owner.json';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function isLockedError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) if (e.code === 'LEVEL_LOCKED') return true;
  return false;
}

function owner(dir: string): string {
  try {
    const o = JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { pid?: number; command?: string; since?: string };
    return `${o.command ?? 'a process'} (pid ${o.pid ?? '?'}, since ${o.since ?? '?'})`;
  } catch {
    return 'another process';
  }
}

function lockedError(dir: string, waitedMs: number): PacsEdgeError {
  return new PacsEdgeError('SPOOL_LOCKED', `the spool ${dir} is in use by ${owner(dir)}: waited ${Math.round(waitedMs / 1000)} s for it. Nothing was changed; try again when it is free.`, {
    retryable: true,
    details: { spool: dir },
  });
}

/** Retry `open` while another process holds the LevelDB lock, until `waitMs` has passed. */
async function withLockWait<T>(dir: string, waitMs: number, open: () => Promise<T>, onWait?: () => void, signal?: AbortSignal): Promise<T> {
  const start = Date.now();
  let told = false;
  for (;;) {
    try {
      return await open();
    } catch (err) {
      if (!isLockedError(err)) throw err;
      if (Date.now() - start >= waitMs || signal?.aborted) throw lockedError(dir, Date.now() - start);
      if (!told) onWait?.();
      told = true;
      await sleep(100);
    }
  }
}

/**
 * A spool index without its object files is possible (nothing received yet); object files
 * without an index are not: the index was deleted or the wrong directory is mounted. Opening
 * would make a new, empty index and recovery would then delete every file as never indexed.
 */
function refuseOrphanedObjects(dir: string): void {
  const objects = path.join(dir, 'objects');
  if (existsSync(path.join(dir, 'index', 'CURRENT')) || !existsSync(objects)) return;
  const n = readdirSync(objects).filter((f) => /^\d{16}\.dcm$/.test(f)).length;
  if (n > 0) {
    throw new PacsEdgeError('SPOOL_INDEX_MISSING', `the spool ${dir} holds ${n} object file(s) but its index (${path.join(dir, 'index')}) is missing: restore the index or move the spool aside. Nothing was changed.`, {
      retryable: false,
      details: { spool: dir, files: n },
    });
  }
}

/**
 * Open the spool for the gateway or for a command that changes it (see {@link SpoolAccess}).
 * `deviceKey`: the key its files are sealed with (undefined only when none exists and no data
 * was made with one). `command` names the holder in {@link OWNER_FILE}.
 *
 * @throws PacsEdgeError SPOOL_LOCKED, SPOOL_INDEX_MISSING, SPOOL_KEY_MISSING, SPOOL_KEY_MISMATCH, SPOOL_FORMAT_UNKNOWN (nothing changed on disk)
 */
export async function openSpool(
  config: GatewayConfig,
  opts: { access: SpoolAccess; log: Logger; deviceKey: DeviceKey | undefined; command: string; lockWaitMs?: number; signal?: AbortSignal },
): Promise<OpenedSpool> {
  const dir = config.spool.dir;
  mayReach(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  await mkdir(dir, { recursive: true, mode: 0o750 });
  refuseOrphanedObjects(dir);
  const { key: seal, sealNew } = spoolKey(config, opts.deviceKey);
  const gateway = opts.access === 'gateway';
  const hashPool = new HashPool(gateway ? config.workers.threads : 1, seal);
  const spool = new LevelSpool({
    dir,
    destinations: config.forward.map((f) => f.name),
    // A command adds no objects: the space checks are the gateway's.
    minFreeBytes: gateway ? config.spool.minFreeBytes : 0,
    maxBytes: gateway ? config.spool.maxBytes : 0,
    verifyOnStart: config.spool.verifyOnStart,
    keepForwardedMs: config.spool.keepForwardedHours * 3_600_000,
    hashPool,
    log: opts.log,
    seal,
    sealNew,
    keyFile: config.spool.encryption.keyFile,
    indexKey: opts.deviceKey ? indexMacKey(opts.deviceKey) : undefined,
    // Under profile none a destination's Error Comment is not kept at all (only its length).
    commentKey: opts.deviceKey && sealNew ? commentKey(opts.deviceKey, sealProfileOf(config.spool.encryption.profile)) : undefined,
    route: routeOf(config.forward),
    studyKeepMs: config.studies.keepDays * 24 * 3_600_000,
  });
  let recovery: RecoveryReport;
  try {
    recovery = await withLockWait(
      dir,
      opts.lockWaitMs ?? (gateway ? 30_000 : 5000),
      () => spool.open(),
      () => opts.log.warn({ spool: dir, holder: owner(dir) }, 'the spool is locked by another process; waiting for it'),
      opts.signal,
    );
  } catch (err) {
    await spool.close().catch(() => undefined);
    await hashPool.close();
    throw err;
  }
  const ownerFile = path.join(dir, OWNER_FILE);
  await writeFile(ownerFile, JSON.stringify({ pid: process.pid, command: opts.command, since: new Date().toISOString() })).catch(() => undefined);
  return {
    spool,
    hashPool,
    seal,
    recovery,
    close: async () => {
      await spool.close();
      await hashPool.close();
      await unlink(ownerFile).catch(() => undefined);
    },
  };
}

/** What a read-only command sees of a stopped gateway's spool. */
export interface SpoolView {
  stats(): SpoolStats;
  listDeadLetters(destination?: string): Promise<DeadLetter[]>;
  /** Every study's summary, pending and dead letters counted from the objects' entries. */
  studies(): Promise<StudySummary[]>;
}

/**
 * Read a stopped gateway's spool: the index only, opened for as long as `fn` runs, no recovery,
 * no key, nothing written (a spool that does not exist reads as empty). A starting gateway that
 * finds the index held waits for it (see {@link openSpool}), so a reader never makes it fail.
 *
 * @throws PacsEdgeError SPOOL_LOCKED when the index stays held (a gateway starting or stopping, a command)
 */
export async function readSpool<T>(config: GatewayConfig, fn: (view: SpoolView) => Promise<T>, opts: { lockWaitMs?: number } = {}): Promise<T> {
  const dir = config.spool.dir;
  const destinations = config.forward.map((f) => f.name);
  const indexDir = path.join(dir, 'index');
  // A spool the caller may not enter is not an empty one.
  mayReach(dir, constants.R_OK | constants.X_OK);
  if (!existsSync(path.join(indexDir, 'CURRENT'))) return fn(emptyView(destinations));
  const db = new Level<string, string>(indexDir, { valueEncoding: 'utf8', createIfMissing: false });
  await withLockWait(dir, opts.lockWaitMs ?? 3000, () => db.open());
  try {
    await refuseNewerFormat(db, dir);
    const stats = await offlineStats(db, destinations);
    return await fn({
      stats: () => stats,
      listDeadLetters: async (destination) => {
        const out: DeadLetter[] = [];
        for await (const v of db.values(deadLetterRange(destination))) out.push(JSON.parse(v) as DeadLetter);
        return out;
      },
      studies: () => offlineStudies(db),
    });
  } finally {
    await db.close();
  }
}

/**
 * A stopped gateway's spool is root's and its state owner's (mode 0700): an operator or auditor
 * (src/health/roles.ts) works through the running gateway. Said as such (ROLE_DENIED, exit 8)
 * rather than as an empty spool or a permission error half-way. A directory not made yet is fine.
 */
export function mayReach(dir: string, mode: number): void {
  try {
    accessSync(dir, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new PacsEdgeError('ROLE_DENIED', `the spool ${dir} of a stopped gateway is for root (sudo) and its owner only; operators and auditors work through the running gateway`, { cause: err });
  }
}

function emptyView(destinations: readonly string[]): SpoolView {
  return {
    stats: () => ({ objects: 0, bytes: 0, unreadable: 0, destinations: destinations.map((name) => ({ name, pending: 0, pendingBytes: 0, deadLetter: 0, oldestPendingSeconds: 0 })) }),
    listDeadLetters: async () => [],
    studies: async () => [],
  };
}

/** Study summaries read from the index, their pending and dead-letter counts taken from the objects' entries (as recovery does). */
async function offlineStudies(db: Level<string, string>): Promise<StudySummary[]> {
  const summaries: StudySummary[] = [];
  for await (const v of db.values(keyRange('s'))) {
    try {
      summaries.push(JSON.parse(v) as StudySummary);
    } catch {
      /* a damaged summary is left out */
    }
  }
  const studyOf = new Map<string, string>();
  for await (const [key, raw] of db.iterator(keyRange('o'))) {
    const r = openRecord(raw);
    if (r?.studyInstanceUid) studyOf.set(idOf(key), r.studyInstanceUid);
  }
  const owed: Owed = new Map();
  const owe = (id: string, dest: string, k: 'pending' | 'deadLetter') => oweTo(owed, studyOf.get(id), dest, k);
  for await (const key of db.keys(keyRange('q'))) {
    const { destination: dest, id } = destinationAndId(key);
    owe(id, dest, 'pending');
  }
  for await (const key of db.keys(keyRange('d'))) {
    const { destination: dest, id } = destinationAndId(key);
    owe(id, dest, 'deadLetter');
  }
  const book = new StudyBook(summaries);
  book.rebuild(owed);
  return book.all();
}

/** Counts read straight from the index (the gateway's own figures come from its memory). */
async function offlineStats(db: Level<string, string>, destinations: readonly string[]): Promise<SpoolStats> {
  type Per = { pending: number; pendingBytes: number; deadLetter: number; oldest: number };
  const per = new Map<string, Per>();
  const of = (d: string): Per => {
    let s = per.get(d);
    if (!s) per.set(d, (s = { pending: 0, pendingBytes: 0, deadLetter: 0, oldest: Number.POSITIVE_INFINITY }));
    return s;
  };
  for (const d of destinations) of(d);
  let objects = 0;
  let bytes = 0;
  // Quarantined objects (their file could not be opened at the last start) are not pending: they are counted apart.
  const unreadable = new Set<string>();
  for await (const key of db.keys(keyRange('x'))) unreadable.add(idOf(key));
  const info = new Map<string, { size: number; receivedAt: number }>();
  for await (const [key, raw] of db.iterator(keyRange('o'))) {
    objects++;
    const r = openRecord(raw);
    if (!r) continue;
    bytes += r.size;
    info.set(idOf(key), { size: r.size, receivedAt: r.receivedAt });
  }
  for await (const key of db.keys(keyRange('q'))) {
    const { destination: dest, id } = destinationAndId(key);
    const i = info.get(id);
    if (!i || unreadable.has(id)) continue;
    const s = of(dest);
    s.pending++;
    s.pendingBytes += i.size;
    s.oldest = Math.min(s.oldest, i.receivedAt);
  }
  for await (const key of db.keys(keyRange('d'))) of(destinationAndId(key).destination).deadLetter++;
  const now = Date.now();
  return {
    objects,
    bytes,
    unreadable: unreadable.size,
    destinations: [...per.entries()].map(([name, s]) => ({
      name,
      pending: s.pending,
      pendingBytes: s.pendingBytes,
      deadLetter: s.deadLetter,
      oldestPendingSeconds: Number.isFinite(s.oldest) ? Math.max(0, Math.floor((now - s.oldest) / 1000)) : 0,
    })),
  };
}

/**
 * Hold the spool's lock while `fn` runs, without opening the spool (no recovery, no key): for
 * `restore`, which changes the files the spool depends on (its device key) and must not do so
 * under a gateway that is starting.
 *
 * @throws PacsEdgeError SPOOL_LOCKED
 */
export async function holdSpoolLock<T>(config: GatewayConfig, fn: () => Promise<T>, opts: { lockWaitMs?: number } = {}): Promise<T> {
  const indexDir = path.join(config.spool.dir, 'index');
  if (!existsSync(path.join(indexDir, 'CURRENT'))) return fn();
  const db = new Level<string, string>(indexDir, { valueEncoding: 'utf8', createIfMissing: false });
  await withLockWait(config.spool.dir, opts.lockWaitMs ?? 3000, () => db.open());
  try {
    return await fn();
  } finally {
    await db.close();
    // Opening LevelDB writes files (its log, manifest): run as root (restore writes /etc), they
    // go back to the index's owner, or the service could not open its own index.
    giveBackToOwner(indexDir);
  }
}

/** As root, give every file of `dir` its directory's owner (when that is another user). */
function giveBackToOwner(dir: string): void {
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dir);
  if (owner.uid === 0) return;
  for (const n of readdirSync(dir)) chownSync(path.join(dir, n), owner.uid, owner.gid);
}

/**
 * Which of the spool's sealed object files each candidate key opens (header only: the data
 * key unwraps). `restore` uses it to refuse a device key that would strand queued objects.
 */
export async function sealedFilesOpenedBy(config: GatewayConfig, candidates: Record<string, SealKey | undefined>): Promise<{ sealed: string[]; opened: Record<string, Set<string>> }> {
  const objects = path.join(config.spool.dir, 'objects');
  const sealed: string[] = [];
  const opened: Record<string, Set<string>> = Object.fromEntries(Object.keys(candidates).map((k) => [k, new Set<string>()]));
  let names: string[] = [];
  try {
    names = readdirSync(objects).filter((n) => /^\d{16}\.dcm$/.test(n));
  } catch {
    return { sealed, opened };
  }
  for (const n of names) {
    const fd = await openFd(path.join(objects, n), 'r');
    let head: Buffer;
    try {
      const buf = Buffer.alloc(SEALED_HEAD_BYTES);
      head = buf.subarray(0, await readFd(fd, buf, 0));
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
    if (!isSealed(head)) continue;
    sealed.push(n);
    for (const [name, key] of Object.entries(candidates)) if (key && !sealedHeaderProblem(key, head)) opened[name]!.add(n);
  }
  return { sealed, opened };
}

/**
 * Refuse a spool written by a newer release before anything else opens (the audit trail
 * included): a downgrade too far stops with exit code 7 and changes nothing.
 *
 * @throws PacsEdgeError SPOOL_FORMAT_NEWER, SPOOL_LOCKED
 */
export async function checkSpoolFormat(config: GatewayConfig): Promise<void> {
  // A command may hold the index for a moment: the gateway waits as long as openSpool would.
  await readSpool(config, async () => undefined, { lockWaitMs: 30_000 });
}
