import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, readdir, stat, truncate, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceKey } from '../security/device-key.js';
import { syncDirSync, writeDurable } from '../util/durable-write.js';
import {
  fileDay,
  fileNameFor,
  formatRecord,
  GENESIS,
  HEAD_FILE,
  headText,
  INBOX_DIR,
  listFiles,
  LOCK_FILE,
  parseRecord,
  readHead,
  readLines,
  recordHmac,
  type Head,
} from './chain.js';
import { buildAuditMessage, type AuditEvent, type AuditSource, SECURITY_ALERT_TYPES, type SecurityAlertType } from './messages.js';

export type AuditAlarm =
  /** A record could not be made durable (it stays queued and is retried). */
  | { kind: 'write-failed'; error: string; failures: number }
  /** Usage crossed 80 % of `audit.maxBytes` (once per crossing). */
  | { kind: 'budget-warning'; usedBytes: number; maxBytes: number }
  /** Usage is at or over `audit.maxBytes` (repeats while it lasts). */
  | { kind: 'budget-exceeded'; usedBytes: number; maxBytes: number }
  /** At open: the files end before the head, the head is missing or fails its HMAC. */
  | { kind: 'chain-broken'; detail: string };

export interface AuditTrailOptions {
  dir: string;
  retentionDays: number;
  maxBytes: number;
  key: DeviceKey;
  log: Logger;
  /** Who writes: device id, AE title, address. */
  source: AuditSource;
  onAlarm?: ((a: AuditAlarm) => void) | undefined;
  /** Longest time a record waits before it is written and fsynced (default 50 ms, at most ~100 ms). */
  flushDelayMs?: number | undefined;
  /** How often the 100 % budget alarm and Security Alert repeat while over budget (default 1 h). */
  budgetRepeatMs?: number | undefined;
  /** Records up to this seq may be deleted by retention (the syslog cursor); default: all. */
  deliveredSeq?: (() => number) | undefined;
  /** Clock, for tests. */
  now?: (() => Date) | undefined;
}

interface Pending {
  seq: number;
  file: string;
  line: string;
  hmac: string;
}

const RETENTION_INTERVAL_MS = 3_600_000;
const INBOX_INTERVAL_MS = 1000;

/**
 * The tamper-evident audit trail: an append-only, HMAC-chained log of DICOM audit messages in
 * `audit.dir` (format in chain.ts and docs/audit.md).
 *
 * - `record(event)` assigns the next seq and chains the record at once (so order is the call
 *   order), and never throws: a failure is logged, counted, raised as an alarm, and the record
 *   stays queued to be written on the next attempt.
 * - Writes are batched: at most `flushDelayMs` after a record, the queued lines are appended,
 *   the file fdatasync'ed, then `head.json` (last seq + hmac, authenticated) is written to a
 *   temporary file, fsynced and renamed over the old one, and the directory fsynced. `stop()`
 *   flushes everything.
 * - One writer per directory (`audit.lock` with the owner's pid). The `audit verify` CLI, when the
 *   gateway holds the lock, drops its "Audit Log Used" event in `inbox/`, which the trail records.
 * - Retention and budget: see {@link AuditTrail.retentionPass} and {@link AuditTrail.checkBudget}.
 */
export class AuditTrail {
  private seq = 0;
  private prev = GENESIS;
  private head: Head;
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private fh: FileHandle | undefined;
  private fhName = '';
  private fhSize = 0;
  private usage = 0;
  private budgetWarned = false;
  private lastExceededAt = -Infinity;
  private inBudgetAlert = false;
  private closed = false;
  private intervals: NodeJS.Timeout[] = [];
  private durableListeners: ((seq: number) => void)[] = [];
  private readonly key: Buffer;
  private readonly now: () => Date;
  /** Counters, for status and metrics. */
  readonly stats = { records: 0, writeFailures: 0, recordFailures: 0, retentionDeletedFiles: 0 };

  private constructor(private readonly o: AuditTrailOptions) {
    this.key = o.key.derive('audit-chain');
    this.now = o.now ?? (() => new Date());
    this.head = { seq: 0, hmac: GENESIS, baseSeq: 0, baseHmac: GENESIS };
  }

  get dir(): string {
    return this.o.dir;
  }

  /** file:// URI of the log directory (the object of "Audit Log Used" messages). */
  get uri(): string {
    return pathToFileURL(this.o.dir).href;
  }

  /** Seq of the last record made durable. */
  get durableSeq(): number {
    return this.head.seq;
  }

  /** Seq of the last record accepted (durable or queued). */
  get lastSeq(): number {
    return this.seq;
  }

  get usedBytes(): number {
    return this.usage;
  }

  /** Called after every flush with the last durable seq (the syslog forwarder listens). */
  onDurable(fn: (seq: number) => void): void {
    this.durableListeners.push(fn);
  }

  static async open(o: AuditTrailOptions): Promise<AuditTrail> {
    const t = new AuditTrail(o);
    await mkdir(o.dir, { recursive: true, mode: 0o750 });
    await mkdir(path.join(o.dir, INBOX_DIR), { recursive: true, mode: 0o770 });
    await acquireLock(o.dir);
    try {
      await t.recover();
    } catch (err) {
      await releaseLock(o.dir);
      throw err;
    }
    t.intervals.push(setInterval(() => void t.drainInbox(), INBOX_INTERVAL_MS).unref());
    t.intervals.push(setInterval(() => void t.retentionPass(), RETENTION_INTERVAL_MS).unref());
    void t.drainInbox();
    void t.retentionPass();
    return t;
  }

  /** Find where the chain stands: the last complete record on disk, checked against the head. */
  private async recover(): Promise<void> {
    const files = await listFiles(this.o.dir);
    let last: { seq: number; hmac: string } | undefined;
    for (let i = files.length - 1; i >= 0 && !last; i--) {
      const file = path.join(this.o.dir, files[i]!);
      const { lines, rest, size } = await readLines(file);
      if (rest > 0 && i === files.length - 1) {
        // A line torn by a crash during the append: it was never fsynced, so never in the head.
        this.o.log.warn({ file: files[i], bytes: rest }, 'audit trail: removed a torn last line left by a crash');
        await truncate(file, size - rest);
      }
      for (let k = lines.length - 1; k >= 0 && !last; k--) {
        const r = parseRecord(lines[k]!.text);
        if (r) last = { seq: r.seq, hmac: r.hmac };
      }
    }
    for (const f of files) this.usage += (await stat(path.join(this.o.dir, f))).size;

    const hs = await readHead(this.o.dir, this.key);
    const problems: string[] = [];
    if (hs.state === 'ok') {
      this.head = hs.head;
      if (!last || last.seq < hs.head.seq) {
        // Records the head vouches for are gone (tail truncated, files deleted). Continue the
        // chain from the head, so the gap stays visible to `audit verify` for good.
        problems.push(`the log ends at seq ${last?.seq ?? 0} but its head says ${hs.head.seq}: records were removed`);
        this.seq = hs.head.seq;
        this.prev = hs.head.hmac;
      } else {
        this.seq = last.seq;
        this.prev = last.hmac;
      }
    } else {
      if (hs.state === 'invalid') problems.push(`head file: ${hs.detail}`);
      else if (files.length > 0) problems.push('head file is missing while day files exist');
      if (last) {
        this.seq = last.seq;
        this.prev = last.hmac;
      }
      this.head = { seq: this.seq, hmac: this.prev, baseSeq: 0, baseHmac: GENESIS };
    }
    this.head = { ...this.head, seq: this.seq, hmac: this.prev };
    for (const detail of problems) {
      this.o.log.error({ dir: this.o.dir, detail }, 'audit trail integrity problem found at start');
      this.alarm({ kind: 'chain-broken', detail });
      this.record({ kind: 'security-alert', type: 'audit-chain-broken', detail });
    }
  }

  /**
   * Append one event. Never throws; returns the seq given to the record, or undefined when it
   * could not even be built (logged, counted, alarm raised).
   */
  record(event: AuditEvent): number | undefined {
    try {
      if (this.closed) throw new PacsEdgeError('AUDIT_CLOSED', 'the audit trail is closed');
      const at = this.now();
      const iso = at.toISOString();
      const xml = buildAuditMessage(this.o.source, event, at);
      const seq = this.seq + 1;
      const hmac = recordHmac(this.key, this.prev, seq, iso, xml);
      const line = formatRecord({ seq, at: iso, prev: this.prev, hmac, xml });
      this.seq = seq;
      this.prev = hmac;
      this.pending.push({ seq, file: fileNameFor(at), line, hmac });
      this.usage += Buffer.byteLength(line);
      this.stats.records++;
      this.schedule();
      this.checkBudget();
      return seq;
    } catch (err) {
      this.stats.recordFailures++;
      const error = (err as Error).message;
      this.o.log.error({ err: error, kind: event.kind }, 'audit record could not be written');
      this.alarm({ kind: 'write-failed', error, failures: this.stats.recordFailures + this.stats.writeFailures });
      return undefined;
    }
  }

  /**
   * Budget: at 80 % of `maxBytes` an alarm fires once per crossing; at 100 % a Security Alert is
   * recorded and the alarm repeats (every `budgetRepeatMs`) while it lasts. Records are never
   * dropped or overwritten: an audit trail that silently loses the oldest or newest events is
   * worse for 等级保护 / MLPS than one that outgrows its budget, and the budget is set well
   * below the disk so that the operator (alarm → MQTT event) has time to act. The disk itself
   * is the only hard limit; when it is full, writes fail, the alarm says so and the records stay
   * queued in memory until they can be written.
   */
  private checkBudget(): void {
    const max = this.o.maxBytes;
    if (max <= 0 || this.inBudgetAlert) return;
    if (this.usage >= 0.8 * max) {
      if (!this.budgetWarned) {
        this.budgetWarned = true;
        this.o.log.warn({ usedBytes: this.usage, maxBytes: max }, 'audit trail uses over 80 % of audit.maxBytes');
        this.alarm({ kind: 'budget-warning', usedBytes: this.usage, maxBytes: max });
      }
    } else {
      this.budgetWarned = false;
    }
    const t = this.now().getTime();
    if (this.usage >= max && t - this.lastExceededAt >= (this.o.budgetRepeatMs ?? 3_600_000)) {
      this.lastExceededAt = t;
      this.o.log.error({ usedBytes: this.usage, maxBytes: max }, 'audit trail is over audit.maxBytes: records are kept, free space or raise the budget');
      this.alarm({ kind: 'budget-exceeded', usedBytes: this.usage, maxBytes: max });
      this.inBudgetAlert = true;
      try {
        this.record({ kind: 'security-alert', type: 'audit-storage-exhausted', detail: `audit trail uses ${this.usage} bytes of its ${max}-byte budget (audit.maxBytes); no record is dropped` });
      } finally {
        this.inBudgetAlert = false;
      }
    } else if (this.usage < max) {
      this.lastExceededAt = -Infinity;
    }
  }

  private alarm(a: AuditAlarm): void {
    try {
      this.o.onAlarm?.(a);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'audit alarm callback failed');
    }
  }

  private schedule(): void {
    if (this.timer || this.retryTimer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, Math.min(this.o.flushDelayMs ?? 50, 100));
  }

  /** Write and fsync everything queued so far (also the head). Resolves when done; never rejects. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.chain = this.chain.then(() => this.writePending());
    return this.chain;
  }

  private async writePending(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    let done = 0;
    try {
      while (done < batch.length) {
        const file = batch[done]!.file;
        let end = done;
        while (end < batch.length && batch[end]!.file === file) end++;
        await this.appendSynced(file, batch.slice(done, end).map((p) => p.line).join(''));
        done = end;
      }
      const last = batch[batch.length - 1]!;
      await this.writeHead({ ...this.head, seq: last.seq, hmac: last.hmac });
    } catch (err) {
      // Put back what is not durable, ahead of anything recorded meanwhile, and retry later.
      this.pending = [...batch.slice(done), ...this.pending];
      this.stats.writeFailures++;
      const error = (err as Error).message;
      this.o.log.error({ err: error, queued: this.pending.length, dir: this.o.dir }, 'audit trail write failed; records stay queued and are retried');
      this.alarm({ kind: 'write-failed', error, failures: this.stats.writeFailures + this.stats.recordFailures });
      if (!this.closed && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.flush();
        }, 1000);
        this.retryTimer.unref();
      }
      return;
    }
    for (const fn of this.durableListeners) {
      try {
        fn(this.head.seq);
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'audit durable listener failed');
      }
    }
  }

  /** Append bytes to a day file and fdatasync it; on failure the file is cut back to its last good size. */
  private async appendSynced(file: string, text: string): Promise<void> {
    if (this.fhName !== file || !this.fh) {
      await this.fh?.close().catch(() => {});
      this.fh = undefined;
      const full = path.join(this.o.dir, file);
      const fh = await open(full, 'a', 0o640);
      this.fhSize = (await fh.stat()).size;
      this.fh = fh;
      this.fhName = file;
      if (this.fhSize === 0) syncDirSync(this.o.dir);
    }
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.fhSize + off);
        off += bytesWritten;
      }
      await this.fh.datasync();
      this.fhSize += buf.length;
    } catch (err) {
      await this.fh.truncate(this.fhSize).catch(() => {});
      throw err;
    }
  }

  private async writeHead(h: Head): Promise<void> {
    await writeDurable(path.join(this.o.dir, HEAD_FILE), headText(this.key, h), { mode: 0o640 });
    this.head = h;
  }

  /**
   * Retention: day files older than `retentionDays` (UTC days before today) are deleted, oldest
   * first, never today's, and never one holding records the syslog forwarder has not delivered.
   * Before a file goes, the head's base moves to its last record (so verify knows the chain now
   * starts there), and after, the deletion is itself recorded (110101 Audit Log Used, action D).
   */
  retentionPass(): Promise<void> {
    this.chain = this.chain.then(async () => {
      try {
        await this.deleteExpired();
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'audit retention pass failed');
      }
    });
    return this.chain;
  }

  private async deleteExpired(): Promise<void> {
    if (this.closed) return;
    const today = Date.UTC(this.now().getUTCFullYear(), this.now().getUTCMonth(), this.now().getUTCDate());
    const limit = today - this.o.retentionDays * 86_400_000;
    const files = await listFiles(this.o.dir);
    for (const f of files.slice(0, -1)) {
      const day = fileDay(f)!;
      if (day >= limit || f === this.fhName) break;
      const full = path.join(this.o.dir, f);
      const { lines } = await readLines(full);
      let last: { seq: number; hmac: string } | undefined;
      for (let k = lines.length - 1; k >= 0 && !last; k--) {
        const r = parseRecord(lines[k]!.text);
        if (r) last = { seq: r.seq, hmac: r.hmac };
      }
      if (last && this.o.deliveredSeq && this.o.deliveredSeq() < last.seq) {
        this.o.log.warn({ file: f, lastSeq: last.seq, deliveredSeq: this.o.deliveredSeq() }, 'audit file past retention kept: not yet delivered to syslog');
        break;
      }
      const size = (await stat(full)).size;
      if (last) await this.writeHead({ ...this.head, baseSeq: last.seq, baseHmac: last.hmac });
      await unlink(full);
      syncDirSync(this.o.dir);
      this.usage -= size;
      this.stats.retentionDeletedFiles++;
      this.o.log.info({ file: f, lastSeq: last?.seq, retentionDays: this.o.retentionDays }, 'audit file deleted after its retention period');
      this.record({ kind: 'audit-log-deleted', file: f, logUri: this.uri, reason: `retention: older than ${this.o.retentionDays} days (audit.retentionDays)` });
    }
    if (this.usage < 0.8 * this.o.maxBytes) this.budgetWarned = false;
  }

  /** Events left by `pacs-edge audit verify` while the gateway held the lock. */
  private async drainInbox(): Promise<void> {
    if (this.closed) return;
    const dir = path.join(this.o.dir, INBOX_DIR);
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const full = path.join(dir, n);
      try {
        const o = JSON.parse(await readFile(full, 'utf8')) as { kind?: unknown; by?: unknown; outcome?: unknown; type?: unknown; detail?: unknown; failure?: unknown; studyUid?: unknown; count?: unknown; reason?: unknown };
        const str = (x: unknown) => (typeof x === 'string' && x.length > 0 && x.length <= 512 ? x : undefined);
        const uid = (x: unknown) => (typeof x === 'string' && /^[0-9.]{0,64}$/.test(x) ? x : undefined);
        const count = Number.isInteger(o.count) && (o.count as number) >= 0 ? (o.count as number) : undefined;
        if ((o.kind === 'purged' || o.kind === 'instances-requeued') && str(o.by) && uid(o.studyUid) !== undefined && count !== undefined && str(o.reason)) {
          // An operator's change to the queue, made by a command while the trail was held by another.
          this.record({ kind: o.kind, by: str(o.by)!, studyUid: uid(o.studyUid)!, count, reason: str(o.reason)! });
        } else if (o.kind === 'audit-log-read' && str(o.by)) {
          this.record({ kind: 'audit-log-read', by: str(o.by)!, logUri: this.uri, outcome: str(o.outcome) });
        } else if (o.kind === 'security-alert' && typeof o.type === 'string' && o.type in SECURITY_ALERT_TYPES && str(o.detail)) {
          this.record({ kind: 'security-alert', type: o.type as SecurityAlertType, detail: str(o.detail)!, failure: o.failure === true });
        } else {
          this.o.log.warn({ file: n }, 'audit inbox: ignored an entry that is not an event a command may hand in');
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.o.log.warn({ file: n, err: (err as Error).message }, 'audit inbox: unreadable entry removed');
      }
      await unlink(full).catch(() => {});
    }
  }

  /** Flush everything, close the file, release the lock. Records after this are refused (logged). */
  async stop(): Promise<void> {
    if (this.closed) return;
    for (const i of this.intervals) clearInterval(i);
    await this.drainInbox();
    await this.flush();
    if (this.pending.length > 0) {
      // The disk refused the last writes: one more try, then report what is lost.
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      await this.flush();
      if (this.pending.length > 0) this.o.log.error({ lost: this.pending.length }, 'audit records could not be written before stop');
    }
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
    await releaseLock(this.o.dir);
  }
}

/** One writer per audit directory: `audit.lock` holds its pid; a lock whose process is gone is taken over. */
export async function acquireLock(dir: string): Promise<void> {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o640 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) && mayHoldTrail(pid)) {
      throw new PacsEdgeError('AUDIT_LOCKED', `the audit trail in ${dir} is open in process ${pid}`, { details: { pid } });
    }
    await unlink(file).catch(() => {});
  }
  throw new PacsEdgeError('AUDIT_LOCKED', `could not take the audit lock in ${dir}`);
}

async function releaseLock(dir: string): Promise<void> {
  const file = path.join(dir, LOCK_FILE);
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (pid === process.pid) await unlink(file).catch(() => {});
}

/**
 * Whether the process with this pid can be the lock's holder: a Node process (gateway, command or
 * test). After a power loss the lock file survives, and at the next boot its pid may well belong
 * to some other daemon: a lock that could never be taken again would keep the gateway from ever
 * starting. Where /proc cannot tell, the pid is taken at its word.
 */
function mayHoldTrail(pid: number): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return true;
  }
  const argv0 = cmdline.split('\0')[0] ?? '';
  return /node|pacs-edge/i.test(path.basename(argv0)) || cmdline.includes('pacs-edge');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
