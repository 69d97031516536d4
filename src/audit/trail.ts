import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceKey } from '../security/device-key.js';
import { writeDurable } from '../util/durable-write.js';
import { fileNameFor, formatRecord, GENESIS, HEAD_FILE, headText, INBOX_DIR, recordHmac, type Head } from './chain.js';
import type { AuditAlarm } from './alarms.js';
import { AuditBudget } from './budget.js';
import { AuditFailureWatch } from './failure-watch.js';
import { drainInbox } from './inbox.js';
import { acquireLock, releaseLock } from './lock.js';
import { ANCHOR_PURPOSE, writeAnchor } from './anchor.js';
import { DayFileAppender } from './day-file.js';
import { buildAuditMessage, type AuditEvent, type AuditSource } from './messages.js';
import { recoverChain } from './recover.js';
import { deleteExpired } from './retention.js';

export type { AuditAlarm } from './alarms.js';

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
  /**
   * The anchor file outside the audit directory (anchor.ts, `<spool.dir>/audit.anchor`): checked
   * at open, rewritten after every flush. Absent: no anchor (unit tests, tools).
   */
  anchorFile?: string | undefined;
  /**
   * Run the retention rule (hourly and at open). Only the running gateway does (openAudit): a
   * command on a stopped gateway has no syslog cursor to respect and must not delete days.
   */
  retention?: boolean | undefined;
  /** Clock, for tests. */
  now?: (() => Date) | undefined;
}

/** A chained record waiting to be appended to its day file. */
type Pending = { seq: number; file: string; line: string; hmac: string };

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
 *   the file fdatasync'ed, then `head.json` (last seq + hmac, authenticated) is replaced durably
 *   (src/util/durable-write.ts). `stop()` flushes everything.
 * - One writer per directory (`audit.lock` with the owner's pid, lock.ts). The `audit verify`
 *   CLI, when the gateway holds the lock, drops its "Audit Log Used" event in `inbox/`, which
 *   the trail records (inbox.ts).
 * - Retention and budget: retention.ts (run by {@link AuditTrail.retentionPass}) and budget.ts.
 */
export class AuditTrail {
  private seq = 0;
  private prev = GENESIS;
  private head: Head;
  private pending: Pending[] = [];
  /** Records synced to a day file that the head does not cover yet (a full disk refused the head): the next flush writes it even with nothing queued, or the trail would stay failing for ever. */
  private unheaded: { seq: number; hmac: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private inboxPass: Promise<void> = Promise.resolve();
  private readonly dayFile: DayFileAppender;
  private usage = 0;
  private closed = false;
  private intervals: NodeJS.Timeout[] = [];
  private durableListeners: ((seq: number) => void)[] = [];
  private readonly key: Buffer;
  private readonly anchorKey: Buffer;
  private readonly budget: AuditBudget;
  private readonly now: () => Date;
  /** Whether records can be written now (status, and the refusal of new associations). */
  readonly failure: AuditFailureWatch;
  /** Counters, for status and metrics. */
  readonly stats = { records: 0, writeFailures: 0, recordFailures: 0, retentionDeletedFiles: 0 };
  /** What the anchor check at open found (each also recorded as a Security Alert). */
  anchorProblems: readonly string[] = [];

  private constructor(private readonly o: AuditTrailOptions) {
    this.key = o.key.derive('audit-chain');
    this.anchorKey = o.key.derive(ANCHOR_PURPOSE);
    this.now = o.now ?? (() => new Date());
    this.dayFile = new DayFileAppender(o.dir);
    this.head = { seq: 0, hmac: GENESIS, baseSeq: 0, baseHmac: GENESIS };
    this.failure = new AuditFailureWatch({ dir: o.dir, log: o.log, alarm: (a) => this.alarm(a), record: (e) => this.record(e), queued: () => this.pending.length, now: this.now });
    this.budget = new AuditBudget({ maxBytes: o.maxBytes, repeatMs: o.budgetRepeatMs, now: this.now, log: o.log, alarm: (a) => this.alarm(a), record: (e) => this.record(e) });
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
      // The anchor vouches for where the chain stands from the start of the run, before any
      // record of it (what the check in recover() found is queued as a Security Alert).
      await t.writeAnchor();
    } catch (err) {
      await releaseLock(o.dir);
      throw err;
    }
    t.intervals.push(setInterval(() => void t.drainInbox(), INBOX_INTERVAL_MS).unref());
    void t.drainInbox();
    if (o.retention) {
      t.intervals.push(setInterval(() => void t.retentionPass(), RETENTION_INTERVAL_MS).unref());
      void t.retentionPass();
    }
    t.failure.start();
    return t;
  }

  /** Find where the chain stands (recover.ts); each problem found becomes a Security Alert. */
  private async recover(): Promise<void> {
    const r = await recoverChain({ dir: this.o.dir, log: this.o.log, key: this.key, anchorKey: this.anchorKey, anchorFile: this.o.anchorFile });
    this.seq = r.seq;
    this.prev = r.prev;
    this.head = r.head;
    this.usage += r.usage;
    this.anchorProblems = r.anchorProblems;
    for (const detail of r.problems) {
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
      this.budget.check(this.usage);
      return seq;
    } catch (err) {
      this.stats.recordFailures++;
      const error = (err as Error).message;
      this.o.log.error({ err: error, kind: event.kind }, 'audit record could not be written');
      this.alarm({ kind: 'write-failed', error, failures: this.stats.recordFailures + this.stats.writeFailures });
      return undefined;
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
    if (this.pending.length === 0 && !this.unheaded) return;
    const batch = this.pending;
    this.pending = [];
    let done = 0;
    try {
      while (done < batch.length) {
        const file = batch[done]!.file;
        let end = done;
        while (end < batch.length && batch[end]!.file === file) end++;
        await this.dayFile.append(file, batch.slice(done, end).map((p) => p.line).join(''));
        done = end;
        this.unheaded = { seq: batch[end - 1]!.seq, hmac: batch[end - 1]!.hmac };
      }
      await this.writeHead({ ...this.head, ...this.unheaded! }).then(() => (this.unheaded = undefined));
      await this.writeAnchor();
    } catch (err) {
      // Put back what is not durable, ahead of anything recorded meanwhile, and retry later.
      this.pending = [...batch.slice(done), ...this.pending];
      this.stats.writeFailures++;
      const error = (err as Error).message;
      // Said once per outage (the retries every second stay at debug): the failure watch's
      // AUDIT FAILURE line and alarm stand for the whole period.
      const retrying = this.failure.failing;
      this.o.log[retrying ? 'debug' : 'error']({ err: error, queued: this.pending.length, dir: this.o.dir }, 'audit trail write failed; records stay queued and are retried');
      if (!retrying) this.alarm({ kind: 'write-failed', error, failures: this.stats.writeFailures + this.stats.recordFailures });
      this.failure.writeFailed(`${(err as NodeJS.ErrnoException).code ?? 'error'}: ${error}`);
      if (!this.closed && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.flush();
        }, 1000);
        this.retryTimer.unref();
      }
      return;
    }
    this.failure.writeOk();
    for (const fn of this.durableListeners) {
      try {
        fn(this.head.seq);
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'audit durable listener failed');
      }
    }
  }

  /**
   * The anchor follows the head (never ahead of it: files, head, anchor, each durable). A failed
   * anchor write does not undo the records (they are durable): it is logged and alarmed, and the
   * next flush writes it again.
   */
  private async writeAnchor(): Promise<void> {
    if (!this.o.anchorFile) return;
    try {
      await writeAnchor(this.o.anchorFile, this.anchorKey, { seq: this.head.seq, hmac: this.head.hmac, at: this.now().toISOString() });
    } catch (err) {
      const error = (err as Error).message;
      this.o.log.error({ err: error, anchor: this.o.anchorFile }, 'audit anchor could not be written');
      this.alarm({ kind: 'write-failed', error, failures: this.stats.writeFailures + this.stats.recordFailures });
    }
  }

  private async writeHead(h: Head): Promise<void> {
    await writeDurable(path.join(this.o.dir, HEAD_FILE), headText(this.key, h), { mode: 0o640 });
    this.head = h;
  }

  /**
   * One retention pass (retention.ts: day files past `retentionDays` go, oldest first), queued
   * behind the writes so the head it moves is never written concurrently. Never rejects.
   */
  retentionPass(): Promise<void> {
    this.chain = this.chain.then(() => this.deleteExpired().catch((err: unknown) => this.o.log.error({ err: (err as Error).message }, 'audit retention pass failed')));
    return this.chain;
  }

  private async deleteExpired(): Promise<void> {
    if (this.closed) return;
    await deleteExpired({
      dir: this.o.dir,
      retentionDays: this.o.retentionDays,
      today: this.now(),
      deliveredSeq: this.o.deliveredSeq,
      log: this.o.log,
      openFile: this.dayFile.openFile,
      moveBase: (seq, hmac) => this.writeHead({ ...this.head, baseSeq: seq, baseHmac: hmac }),
      deleted: (file, bytes) => {
        this.usage -= bytes;
        this.stats.retentionDeletedFiles++;
        this.record({ kind: 'audit-log-deleted', file, logUri: this.uri, reason: `retention: older than ${this.o.retentionDays} days (audit.retentionDays)` });
      },
    });
    this.budget.fell(this.usage);
  }

  /** Events left by `pacs-edge audit verify` while the gateway held the lock (inbox.ts). */
  private drainInbox(): Promise<void> {
    // One pass at a time: two overlapping passes (the one at open and the one at stop) would
    // both read an event before either removes it, and record it twice.
    this.inboxPass = this.inboxPass.then(async () => {
      if (this.closed) return;
      await drainInbox(path.join(this.o.dir, INBOX_DIR), { record: (e) => this.record(e), logUri: this.uri, log: this.o.log }).catch((err: unknown) =>
        this.o.log.warn({ err: (err as Error).message }, 'audit inbox pass failed'),
      );
    });
    return this.inboxPass;
  }

  /** Flush everything, close the file, release the lock. Records after this are refused (logged). */
  async stop(): Promise<void> {
    if (this.closed) return;
    for (const i of this.intervals) clearInterval(i);
    this.failure.stop();
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
    await this.dayFile.close();
    await releaseLock(this.o.dir);
  }
}
