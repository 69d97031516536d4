import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Level } from 'level';
import { Code, PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HashPool } from './hash-pool.js';
import { closeFd, openFd, readFd } from '../util/fd.js';
import { isSealed, profileOfHead, SEALED_HEAD_BYTES, sealedHeaderProblem, sealedSize, type SealKey, type SealProfile } from '../security/sealed-file.js';
import { migrate, refuseNewerFormat } from './format.js';
import { QueueState } from './queues.js';
import { owe as oweTo, type Owed, StudyBook, type StudySummary } from './studies.js';
import { type RecordCodec, rewrittenRecord } from './record-codec.js';
import { authenticateIndex } from './index-auth.js';
import type { DeadLetter, RecoveryReport, SpoolRecord } from './spool.js';
import { deadLetterKey, destinationAndId, durableKey, idOf, keyRange, objectKey, quarantineKey, queueKey, studyKey, uidKey } from './keys.js';

/**
 * Start-up recovery of a {@link LevelSpool}: rebuild the in-memory state from the index and the
 * object files, undo what a crash left half-done, and account for every acknowledged object.
 *
 * The rule it keeps: **only what was provably never acknowledged is discarded, and nothing is
 * discarded because it cannot be read.** Success is answered only after the object's file, its
 * directory entry and its index batch are all durable (see LevelSpool), so:
 *
 * - `.part` files (earlier versions) and `.dcm` files with no index entry were never
 *   acknowledged: deleted, counted as discarded partials, logged with their ids.
 * - An indexed object without its durable marker whose file is missing, of the wrong size or
 *   fails its SHA-256 never became durable before a crash, so it was never acknowledged:
 *   discarded with a warning.
 * - An indexed object *with* its marker whose file is missing or damaged was acknowledged: it is
 *   kept with its index entry and file, and dead-lettered for every destination still owed it
 *   (reason `corrupt: …`, an error-level log line each), where `pacs-edge dead-letter` shows it.
 * - A file that cannot be opened — sealed and no key, a key that does not unwrap its data key,
 *   an unknown format — is never judged: it stays where it is, queued in the index, and is
 *   *quarantined* for this run (not handed to a forwarder, counted in status, logged at error
 *   level, `x!<id>`). The next start looks again, so the right key brings it back.
 *
 * Before anything is changed, the whole spool is surveyed read-only. When the spool holds
 * sealed files and the key opens none of them, recovery refuses (nothing on disk changes):
 * that is a missing or wrong key, not damage.
 */
export interface RecoveryInput {
  db: Level<string, string>;
  dir: string;
  objectsDir: string;
  destinations: readonly string[];
  verifyOnStart: 'size' | 'sha256';
  hashPool: HashPool;
  log: Logger;
  /** The spool key (undefined: no device key, only plain files can be read). */
  seal?: SealKey | undefined;
  /** The device key file, named when recovery refuses because of it. */
  keyFile?: string | undefined;
  /** Checks and writes index records (checksum and MAC, record-codec.ts). */
  codec: RecordCodec;
}

export interface RecoveryResult {
  report: RecoveryReport;
  queues: QueueState;
  /** Delivered objects kept by keepForwardedHours: id → forwardedAt, oldest first. */
  kept: Map<string, number>;
  /** Objects whose file cannot be opened this run: id → reason (not in `queues`). */
  quarantined: Map<string, string>;
  /** Per study: history from the index, pending and dead letters counted from the objects. */
  studies: StudyBook;
  objectCount: number;
  objectBytes: number;
  maxId: number;
}

type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };
export type HeaderProblem = NonNullable<ReturnType<typeof sealedHeaderProblem>>;

/** One indexed object as the survey found it. */
interface Entry {
  id: string;
  raw: string;
  record: SpoolRecord | undefined;
  /** The record's MAC: checked good, absent (an earlier release's record), or not checked (no key). */
  mac: 'ok' | 'missing' | 'unchecked' | undefined;
  /** Why `record` is undefined. */
  problem: 'checksum' | 'mac' | undefined;
  /** Size of its `.dcm` file; undefined when there is none. */
  fileSize: number | undefined;
  confirmed: boolean;
  /** How the file starts: plain, sealed under a profile, or unreadable (why). */
  head: { sealed: SealProfile | undefined; problem: HeaderProblem | undefined } | undefined;
}

/** Read the first bytes of a file: enough for any profile's sealed header. */
async function readHead(file: string): Promise<Buffer> {
  const fd = await openFd(file, 'r');
  try {
    const head = Buffer.alloc(SEALED_HEAD_BYTES);
    const n = await readFd(fd, head, 0);
    return head.subarray(0, n);
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
}

/** Run `fn` over `items`, `width` at a time (file reads at start-up: bounded, not one by one). */
async function eachLimited<T>(items: readonly T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/** The read-only first pass: files, index records, markers and every file's header. */
async function survey(opts: RecoveryInput): Promise<{ files: Map<string, { size: number; part: boolean }>; entries: Entry[]; maxId: number }> {
  const files = new Map<string, { size: number; part: boolean }>();
  let maxId = 0;
  for (const name of await readdir(opts.objectsDir)) {
    const m = /^(\d{16})\.(dcm|part)$/.exec(name);
    if (!m) continue;
    maxId = Math.max(maxId, Number(m[1]));
    const size = (await stat(path.join(opts.objectsDir, name))).size;
    files.set(m[2] === 'part' ? `${m[1]}.part` : m[1]!, { size, part: m[2] === 'part' });
  }
  const markers = new Set<string>();
  for await (const key of opts.db.keys(keyRange('c'))) markers.add(idOf(key));
  const entries: Entry[] = [];
  for await (const [key, raw] of opts.db.iterator(keyRange('o'))) {
    const id = idOf(key);
    maxId = Math.max(maxId, Number(id));
    const c = opts.codec.check(id, raw);
    entries.push({ id, raw, record: c.record, mac: c.record ? c.mac : undefined, problem: c.record ? undefined : c.problem, fileSize: files.get(id)?.size, confirmed: markers.has(id), head: undefined });
  }
  await eachLimited(
    entries.filter((e) => e.fileSize !== undefined),
    16,
    async (e) => {
      const head = await readHead(path.join(opts.objectsDir, `${e.id}.dcm`));
      e.head = { sealed: profileOfHead(head), problem: sealedHeaderProblem(opts.seal, head) };
    },
  );
  return { files, entries, maxId };
}

/** Refuse to touch a spool whose sealed files this key cannot open at all. */
function refuseUnlessReadable(opts: RecoveryInput, entries: readonly Entry[]): void {
  const sealed = entries.filter((e) => e.fileSize !== undefined && e.head && isSealedHead(e.head));
  const opened = sealed.filter((e) => !e.head!.problem);
  if (sealed.length > 0 && opened.length === 0) throw spoolKeyRefusal(sealed[0]!.head!.problem!, sealed.length, opts.dir, opts.keyFile ?? 'spool.encryption.keyFile');
}

/** The refusal for a spool none of whose sealed files a key opens; it names the key file and says nothing was changed. */
export function spoolKeyRefusal(first: HeaderProblem, sealed: number, dir: string, keyFile: string): PacsEdgeError {
  const code = first.kind === 'no-key' ? 'SPOOL_KEY_MISSING' : first.kind === 'format' ? 'SPOOL_FORMAT_UNKNOWN' : 'SPOOL_KEY_MISMATCH';
  const message =
    first.kind === 'no-key'
      ? `the spool ${dir} holds ${sealed} encrypted object(s) and there is no device key (${keyFile}): put back the key they were sealed with (pacs-edge restore from a backup) and start again. Nothing was changed.`
      : first.kind === 'format'
        ? `the spool ${dir} holds ${sealed} object(s) in a format this release cannot read (${first.message}): run the release that wrote them. Nothing was changed.`
        : `the device key ${keyFile} opens none of the ${sealed} encrypted object(s) in ${dir} (${first.message}): it is not the key they were sealed with. Put back the right key file (pacs-edge restore from a backup) and start again. Nothing was changed.`;
  return new PacsEdgeError(code, message, { retryable: false, details: { keyFile, spool: dir, sealed } });
}

const isSealedHead = (h: NonNullable<Entry['head']>) => h.sealed !== undefined || h.problem !== undefined;

/**
 * Finish or undo the file replacements a crash interrupted (compression at rest, see
 * LevelSpool.replaceFile): the file holding the intent's bytes means the rename happened and
 * the record is brought up to date; otherwise the old file is still in place and the intent
 * and its `.z` file are dropped. Stray `.z` files (a crash before the intent) go too. An
 * intent whose file cannot be opened (key) is left for a start that can.
 */
async function finishRewrites(opts: RecoveryInput, unreadable: ReadonlySet<string>): Promise<void> {
  const { db } = opts;
  const ops: Op[] = [];
  let finished = 0;
  let undone = 0;
  const waiting = new Set<string>();
  for await (const [key, raw] of db.iterator(keyRange('z'))) {
    const id = idOf(key);
    if (unreadable.has(id)) {
      waiting.add(id);
      continue;
    }
    ops.push({ type: 'del', key });
    const intent = JSON.parse(raw) as { size: number; sha256: string; transferSyntaxUid: string };
    const recRaw = await db.get(objectKey(id));
    // Only an authenticated record is brought up to date (the index was authenticated first).
    const record = recRaw === undefined ? undefined : opts.codec.open(id, recRaw);
    const file = path.join(opts.objectsDir, `${id}.dcm`);
    const now = await opts.hashPool.hashFile(file).catch(() => undefined);
    if (record && now && now.sha256 === intent.sha256 && now.size === intent.size) {
      // Intents of earlier releases do not say whether the new file is sealed: its header does.
      const plain = (intent as { plain?: boolean }).plain ?? !isSealed(await readHead(file));
      ops.push({ type: 'put', key: objectKey(id), value: opts.codec.seal(rewrittenRecord(record, { ...intent, plain })) });
      finished++;
    } else undone++;
  }
  if (ops.length) await db.batch(ops, { sync: true });
  for (const name of await readdir(opts.objectsDir)) {
    const m = /^(\d{16})\.z$/.exec(name);
    if (m && !waiting.has(m[1]!)) await unlink(path.join(opts.objectsDir, name)).catch(() => undefined);
  }
  if (finished || undone) opts.log.info({ finished, undone }, 'interrupted compressions at rest completed or undone');
}

export async function recoverSpool(opts: RecoveryInput): Promise<RecoveryResult> {
  const { db, log } = opts;
  // 0. A spool written by a newer release is not ours to touch.
  const format = await refuseNewerFormat(db, opts.dir);
  // 1. Look at everything before changing anything.
  let s = await survey(opts);
  refuseUnlessReadable(opts, s.entries);
  // An older format is brought up to date first (crash-safe steps, src/spool/format.ts).
  await migrate(db, log, format);
  // Index records of an earlier release are authenticated once; unkeyed ones are refused after.
  await authenticateIndex(opts, s.entries);
  const unreadableIds = new Set(s.entries.filter((e) => e.head?.problem).map((e) => e.id));
  // 2. Interrupted replacements change records: finish them, then look again at what they touched.
  if (await hasIntents(db)) {
    await finishRewrites(opts, unreadableIds);
    s = await survey(opts);
  }
  const { files, entries } = s;
  const filePath = (id: string) => path.join(opts.objectsDir, `${id}.dcm`);
  const report: RecoveryReport = { recovered: 0, recoveredBytes: 0, discardedPartials: 0, discardedBytes: 0, lost: [], unreadable: [], danglingQueueEntries: 0 };
  const ops: Op[] = [];
  const live = new Map<string, SpoolRecord>();
  const quarantined = new Map<string, string>();
  const damaged = new Set<string>();
  const kept: [string, number][] = [];
  const discard = new Set<string>();
  const removedUids: [string, string][] = [];
  const destinations = new Set(opts.destinations);
  /** Dead-letter keys: those in the index, and those this recovery adds. */
  const deadKeys = new Set<string>();
  for await (const key of db.keys(keyRange('d'))) deadKeys.add(key);
  let objectCount = 0;
  let objectBytes = 0;
  const now = Date.now();

  const count = (size: number) => {
    objectCount++;
    objectBytes += size;
  };
  /** Indexed, but its data never became durable before the crash: it was never acknowledged. */
  const unconfirmed = (e: Entry, reason: string) => {
    discard.add(e.id);
    ops.push({ type: 'del', key: objectKey(e.id) });
    if (e.record) removedUids.push([e.record.sopInstanceUid, e.id]);
    log.error({ id: e.id, sopInstanceUid: e.record?.sopInstanceUid, reason }, 'unacknowledged object discarded: a crash came before its data was durable');
  };
  /** The file cannot be opened: keep everything, hand it to nobody this run, look again next start. */
  const quarantine = (e: Entry, reason: string) => {
    quarantined.set(e.id, reason);
    report.unreadable.push({ id: e.id, sopInstanceUid: e.record?.sopInstanceUid ?? '(unknown)', reason });
    ops.push({ type: 'put', key: quarantineKey(e.id), value: JSON.stringify({ reason, at: now }) });
    log.error({ id: e.id, sopInstanceUid: e.record?.sopInstanceUid, reason }, 'spooled object cannot be opened: kept in the spool and queued, but not sent until a start can open it');
    count(e.record?.size ?? e.fileSize ?? 0);
  };
  /** Acknowledged, and its file is missing or damaged: kept as a dead letter for each destination still owed it. */
  const corrupt = (e: Entry & { record: SpoolRecord }, reason: string) => {
    const r = e.record;
    if (r.pending.length === 0) {
      // Already delivered everywhere (kept by keepForwardedHours): nobody is owed it.
      ops.push({ type: 'del', key: objectKey(e.id) }, { type: 'del', key: durableKey(e.id) });
      removedUids.push([r.sopInstanceUid, e.id]);
      log.warn({ id: e.id, sopInstanceUid: r.sopInstanceUid, reason }, 'a delivered object kept in the spool is damaged: removed');
      return;
    }
    damaged.add(e.id);
    report.lost.push({ id: e.id, sopInstanceUid: r.sopInstanceUid, reason });
    for (const d of r.pending) {
      // Already a dead letter there (the destination refused it earlier): it stays one.
      if (deadKeys.has(deadLetterKey(d, e.id))) continue;
      deadKeys.add(deadLetterKey(d, e.id));
      const dl: DeadLetter = { id: e.id, destination: d, sopInstanceUid: r.sopInstanceUid, sopClassUid: r.sopClassUid, reason: `corrupt: ${reason} (found at start-up)`, at: now };
      ops.push({ type: 'del', key: queueKey(d, e.id) }, { type: 'put', key: deadLetterKey(d, e.id), value: JSON.stringify(dl) });
      destinations.add(d);
    }
    log.error({ id: e.id, sopInstanceUid: r.sopInstanceUid, destinations: r.pending, reason }, 'acknowledged object damaged in the spool: moved from the queue to the dead letters (kept with its index entry for inspection)');
    count(r.size);
  };
  const keep = (e: Entry & { record: SpoolRecord }, markDurable: boolean) => {
    const r = e.record;
    live.set(e.id, r);
    if (r.forwardedAt !== undefined && r.pending.length === 0) kept.push([e.id, r.forwardedAt]);
    if (markDurable && !e.confirmed) ops.push({ type: 'put', key: durableKey(e.id), value: '' });
    report.recovered++;
    report.recoveredBytes += r.size;
    count(r.size);
    for (const d of r.pending) destinations.add(d);
  };

  // 3. Judge each indexed object; hash where needed, on the worker pool, all threads at once.
  const hashing: { e: Entry & { record: SpoolRecord }; hash: Promise<{ sha256: string; size: number } | { error: PacsEdgeError | Error }> }[] = [];
  for (const e of entries) {
    if (!e.record || (e.mac === 'missing' && opts.codec.strict)) {
      // A damaged, forged or unauthenticated index entry: which destinations it owes is not
      // known for sure, so nothing of it is touched, and nothing of it is sent.
      const reason = !e.record && e.problem === 'checksum' ? 'index record fails its checksum' : e.record ? 'index record is not authenticated (no MAC; written outside the gateway)' : 'index record fails its authentication (MAC)';
      if (e.record || e.problem === 'mac') (report.tampered ??= []).push({ id: e.id, reason });
      quarantine(e, reason);
      continue;
    }
    const withRecord = e as Entry & { record: SpoolRecord };
    const bad = (reason: string) => (e.confirmed ? corrupt(withRecord, reason) : unconfirmed(e, reason));
    if (e.fileSize === undefined) {
      bad('object file is missing');
      continue;
    }
    if (e.head?.problem) {
      quarantine(e, e.head.problem.message);
      continue;
    }
    if (!e.head?.sealed && !e.record.plain && opts.codec.keyed) {
      // A plain file where the authenticated record says sealed: planted or swapped by someone
      // without the key. Kept as evidence, never sent, whatever the profile (and never discarded).
      const reason = 'object file is not encrypted, but its record says it was sealed: a planted or swapped file';
      (report.tampered ??= []).push({ id: e.id, reason });
      corrupt(withRecord, reason);
      continue;
    }
    const expected = e.head?.sealed ? sealedSize(e.record.size, e.head.sealed) : e.record.size;
    if (e.fileSize !== expected) bad(`object file is ${e.fileSize} bytes, expected ${expected}`);
    else if (opts.verifyOnStart === 'sha256' || !e.confirmed) {
      const hash = opts.hashPool.hashFile(filePath(e.id)).catch((error: Error) => ({ error }));
      hashing.push({ e: withRecord, hash });
    } else keep(withRecord, false);
  }
  for (const { e, hash } of hashing) {
    const h = await hash;
    if ('error' in h) {
      // Damage found by the segment authentication is a verdict; any other failure (the pool,
      // the file system) is not: the object stays, and is checked again when it is sent.
      if ((h.error as PacsEdgeError).code === Code.SPOOL_CORRUPT) (e.confirmed ? corrupt(e, h.error.message) : unconfirmed(e, h.error.message));
      else {
        log.warn({ id: e.id, err: h.error.message }, 'could not verify a spooled object at start-up; it stays queued and is checked when sent');
        keep(e, false);
      }
    } else if (h.sha256 === e.record.sha256 || (e.record.sha256 === '' && e.head?.sealed)) keep(e, true); // '' : sealed, every segment authenticated by the hashing
    else if (e.confirmed) corrupt(e, 'object file fails its SHA-256 check');
    else unconfirmed(e, 'object file fails its SHA-256 check');
  }
  const indexed = new Set(entries.map((e) => e.id));
  for await (const key of db.keys(keyRange('c'))) if (!indexed.has(idOf(key)) || discard.has(idOf(key))) ops.push({ type: 'del', key });
  for await (const key of db.keys(keyRange('x'))) if (!quarantined.has(idOf(key))) ops.push({ type: 'del', key });
  for (const [uid, id] of removedUids) if ((await db.get(uidKey(uid))) === id) ops.push({ type: 'del', key: uidKey(uid) });

  // 4. Queues: the index's entries for what is live; those of quarantined objects stay in the
  // index (they are sent once a start can open them); entries pointing to nothing go.
  const queues = new QueueState([...destinations]);
  // What each study is owed, from the objects' own entries (the study summaries' counts follow).
  const byId = new Map(entries.map((e) => [e.id, e.record] as const));
  const owed: Owed = new Map();
  const owe = (id: string, dest: string, k: 'pending' | 'deadLetter') => {
    if (!discard.has(id)) oweTo(owed, byId.get(id)?.studyInstanceUid, dest, k);
  };
  for await (const key of db.keys(keyRange('q'))) {
    const { destination: dest, id } = destinationAndId(key);
    const r = live.get(id);
    // Queue keys are not authenticated: one only counts for a destination the record owes.
    if (r && r.pending.includes(dest)) {
      queues.enqueue(dest, id, { size: r.size, receivedAt: r.receivedAt });
      owe(id, dest, 'pending');
    } else if (quarantined.has(id)) owe(id, dest, 'pending');
    else if (!damaged.has(id)) {
      ops.push({ type: 'del', key });
      report.danglingQueueEntries++;
    }
  }
  for (const key of deadKeys) {
    const { destination: dest, id } = destinationAndId(key);
    queues.addDeadLetters(dest, 1);
    owe(id, dest, 'deadLetter');
  }
  const summaries: StudySummary[] = [];
  for await (const v of db.values(keyRange('s'))) {
    try {
      summaries.push(JSON.parse(v) as StudySummary);
    } catch {
      /* a damaged summary: the study's objects still count; its history is gone */
    }
  }
  const studies = new StudyBook(summaries);
  // Objects of a study without a summary (spooled by a release before study summaries): the
  // summary is made from them; pending and dead letters follow from their entries just below.
  const known = new Set(summaries.map((x) => x.studyInstanceUid));
  const adopted = new Set<string>();
  for (const e of entries) {
    const r = e.record;
    if (!r?.studyInstanceUid || known.has(r.studyInstanceUid) || discard.has(e.id)) continue;
    studies.received(r);
    adopted.add(r.studyInstanceUid);
  }
  studies.rebuild(owed);
  for (const uid of adopted) ops.push({ type: 'put', key: studyKey(uid), value: JSON.stringify(studies.get(uid)) });
  for (const d of queues.stats(now)) {
    if (!opts.destinations.includes(d.name) && d.pending > 0) {
      log.warn({ destination: d.name, pending: d.pending }, 'objects are still owed to a destination that is no longer configured; they stay in the spool until it is configured again');
    }
  }
  if (ops.length) await db.batch(dedupe(ops), { sync: true });

  // 5. Files no index entry vouches for (and only those) go, now that the index is durable.
  const unindexed: string[] = [];
  for (const [name, f] of files) {
    const id = f.part ? name.slice(0, -'.part'.length) : name;
    if (!f.part && indexed.has(id) && !discard.has(id)) continue;
    await unlink(path.join(opts.objectsDir, f.part ? `${id}.part` : `${id}.dcm`)).catch(() => undefined);
    report.discardedPartials++;
    report.discardedBytes += f.size;
    unindexed.push(id);
  }
  if (unindexed.length) log.warn({ ids: unindexed.slice(0, 20), more: Math.max(0, unindexed.length - 20) }, 'partial receptions removed: files of objects that were never acknowledged');
  return { report, queues, kept: new Map(kept.sort((a, b) => a[1] - b[1])), quarantined, studies, objectCount, objectBytes, maxId: s.maxId };
}

async function hasIntents(db: Level<string, string>): Promise<boolean> {
  for await (const key of db.keys({ ...keyRange('z'), limit: 1 })) if (key) return true;
  return false;
}

/** The last operation on a key wins (a batch must not both put and delete one key). */
function dedupe(ops: Op[]): Op[] {
  const last = new Map<string, Op>();
  for (const o of ops) {
    last.delete(o.key);
    last.set(o.key, o);
  }
  return [...last.values()];
}
