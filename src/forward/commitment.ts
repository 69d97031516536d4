import { Code, DicomParseError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { CommandField, encodeResponse } from '../dicom/command.js';
import { category, describe, hex4, Status } from '../dicom/status.js';
import {
  ACTION_REQUEST_COMMITMENT,
  type CommitmentResult,
  decodeCommitment,
  encodeCommitmentRequest,
  newTransactionUid,
  STORAGE_COMMITMENT_INSTANCE,
  STORAGE_COMMITMENT_PUSH_MODEL,
} from '../dicom/storage-commitment.js';
import { Tag } from '../dicom/tags.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import type { ForwardConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Claim, Spool } from '../spool/spool.js';
import { Backoff } from './backoff.js';
import { Requestor } from '../dicom/ul/requestor.js';
import type { ForwardSettings } from './settings.js';

/**
 * Storage Commitment towards a destination (the gateway as SCU of the Push Model).
 *
 * An object the destination stored is not yet done: its claim is held here, and it is named in
 * an N-ACTION (Request Storage Commitment) with the others of its batch. Only an N-EVENT-REPORT
 * that lists it as committed lets it leave the spool. A report that lists it as failed sends it
 * again (and, after `maxAttempts`, dead-letters it); a transaction with no report within
 * `commitTimeoutSeconds` is sent and asked about again. The report may come on the N-ACTION's
 * own association (it is waited for briefly) or later on a new one, to the receive SCP, which
 * hands it to the {@link CommitmentRegistry}.
 *
 * Transactions live in memory: after a restart the claims are gone, the objects are still queued
 * and are sent and asked about again (a PACS deduplicates by SOP Instance UID). Nothing leaves
 * the spool without a report, so nothing is lost.
 *
 * @see PS3.4 Annex J.3 (Storage Commitment Push Model), IHE RAD TF-2 RAD-10
 */
export interface CommitSettings {
  /** Objects named in one N-ACTION. */
  batch: number;
  /** A transaction without a report after this long is retried (objects re-sent). */
  timeoutMs: number;
  /** How long the N-ACTION's association waits for a report on it before it is released. */
  sameAssociationWaitMs: number;
  /** A batch is requested when full or when its first object has waited this long. */
  lingerMs: number;
}

export interface CommitStats {
  /** Objects the destination stored, waiting to be named in a request. */
  waiting: number;
  /** Objects named in a request, waiting for its report. */
  requested: number;
  transactions: number;
  committed: number;
  failed: number;
  timeouts: number;
}

interface Transaction {
  uid: string;
  claims: Map<string, Claim>; // by SOP Instance UID
  requestedAt: number;
}

/** Every open transaction of every destination, for reports that arrive on a new association. */
export class CommitmentRegistry {
  private readonly byUid = new Map<string, CommitTracker>();

  register(uid: string, t: CommitTracker): void {
    this.byUid.set(uid, t);
  }

  unregister(uid: string): void {
    this.byUid.delete(uid);
  }

  /**
   * An N-EVENT-REPORT data set from a destination, on whatever association it came: read it and
   * settle its transaction. 'unreadable' when it cannot be read (the caller answers with a
   * failure status); a report on a transaction no longer open is logged and otherwise ignored.
   */
  async receive(dataset: Buffer | undefined, explicitVr: boolean, log: Logger): Promise<'settled' | 'unreadable'> {
    let result: CommitmentResult;
    try {
      if (!dataset) throw new DicomParseError(Code.DATASET_MALFORMED, 'N-EVENT-REPORT without a data set');
      result = decodeCommitment(dataset, { explicitVr });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'unreadable storage commitment report');
      return 'unreadable';
    }
    if (!(await this.report(result))) log.info({ transactionUid: result.transactionUid }, 'storage commitment report for a transaction no longer open: ignored');
    return 'settled';
  }

  /** A report from a destination; false when no open transaction has this UID (already settled, or before a restart). */
  async report(result: CommitmentResult): Promise<boolean> {
    const t = this.byUid.get(result.transactionUid);
    if (!t) return false;
    await t.settle(result);
    return true;
  }
}

export class CommitTracker {
  private waiting: Claim[] = [];
  private readonly open = new Map<string, Transaction>();
  private readonly counts = { committed: 0, failed: 0, timeouts: 0 };
  private timer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private requesting: Promise<void> = Promise.resolve();
  private readonly backoff: Backoff;
  private stopped = false;

  constructor(
    private readonly dest: ForwardConfig,
    private readonly deps: {
      spool: Spool;
      log: Logger;
      settings: ForwardSettings;
      commit: CommitSettings;
      callingAeTitle: string;
      registry: CommitmentRegistry;
      /** The destination's TLS client options, when it is reached over TLS. */
      tls?: import('node:tls').ConnectionOptions | undefined;
      /** Objects committed (they have left the destination's queue). */
      onCommitted?: (n: number) => void;
    },
  ) {
    this.backoff = new Backoff({ baseMs: deps.settings.retryBaseMs, maxMs: deps.settings.retryMaxMs });
    this.sweeper = setInterval(() => void this.expire(), Math.min(10_000, Math.max(250, deps.commit.timeoutMs / 4)));
    this.sweeper.unref();
  }

  /** The destination stored this object: hold its claim until the destination commits it. */
  add(c: Claim): void {
    this.waiting.push(c);
    if (this.waiting.length >= this.deps.commit.batch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.deps.commit.lingerMs);
  }

  stats(): CommitStats {
    let requested = 0;
    for (const t of this.open.values()) requested += t.claims.size;
    return { waiting: this.waiting.length, requested, transactions: this.open.size, ...this.counts };
  }

  /** Stop asking; every held claim goes back to the queue untouched (sent and asked about again later). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.sweeper);
    await this.requesting.catch(() => undefined);
    const held = [...this.waiting, ...[...this.open.values()].flatMap((t) => [...t.claims.values()])];
    this.waiting = [];
    for (const t of this.open.values()) this.deps.registry.unregister(t.uid);
    this.open.clear();
    for (const c of held) await this.deps.spool.unclaim(this.dest.name, c.record.id).catch(() => undefined);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.waiting.length === 0) return;
    const claims = this.waiting.splice(0, this.deps.commit.batch);
    const t: Transaction = { uid: newTransactionUid(randomBytes), claims: new Map(claims.map((c) => [c.record.sopInstanceUid, c])), requestedAt: 0 };
    this.open.set(t.uid, t);
    this.deps.registry.register(t.uid, this);
    // One request at a time per destination, in order; a failed one is retried with backoff.
    this.requesting = this.requesting.then(() => this.requestUntilAccepted(t));
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.flush(), 0);
  }

  private async requestUntilAccepted(t: Transaction): Promise<void> {
    const log = this.deps.log.child({ destination: this.dest.name, transactionUid: t.uid });
    while (!this.stopped && this.open.has(t.uid)) {
      const wait = this.backoff.waitMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.stopped) return;
      try {
        await this.request(t, log);
        this.backoff.success();
        return;
      } catch (err) {
        const delay = this.backoff.failure((err as Error).message);
        log.warn({ err: (err as Error).message, retryInMs: delay }, 'storage commitment request failed, will retry');
      }
    }
  }

  /**
   * One N-ACTION on an association of its own; then a short wait for the report on it.
   * @throws on any transient trouble (the caller retries the same transaction)
   */
  private async request(t: Transaction, log: Logger): Promise<'requested' | 'refused'> {
    const s = this.deps.settings;
    const a = await Requestor.open({
      host: this.dest.host,
      port: this.dest.port,
      callingAeTitle: this.dest.callingAeTitle ?? this.deps.callingAeTitle,
      calledAeTitle: this.dest.aeTitle,
      tls: this.deps.tls,
      contexts: [{ id: 1, abstractSyntax: STORAGE_COMMITMENT_PUSH_MODEL, transferSyntaxes: [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian] }],
      maxPduLength: s.maxPduLength,
      connectTimeoutMs: s.connectTimeoutMs,
      acseTimeoutMs: s.acseTimeoutMs,
      dimseTimeoutMs: s.dimseTimeoutMs,
    });
    try {
      const ts = a.transferSyntaxOf(1);
      if (!ts) {
        await this.refused(t, 'the destination does not accept the Storage Commitment Push Model SOP Class', log);
        return 'refused';
      }
      const explicitVr = ts === TS.ExplicitVRLittleEndian;
      const refs = [...t.claims.values()].map((c) => ({ sopClassUid: c.record.sopClassUid, sopInstanceUid: c.record.sopInstanceUid }));
      const rsp = await a.request(
        1,
        { commandField: CommandField.NActionRq, sopClassUid: STORAGE_COMMITMENT_PUSH_MODEL, sopInstanceUid: STORAGE_COMMITMENT_INSTANCE, typeId: ACTION_REQUEST_COMMITMENT },
        encodeCommitmentRequest({ transactionUid: t.uid, refs }, { explicitVr }),
        'N-ACTION-RSP',
      );
      if (category(rsp.status) === 'failure') {
        // The Error Comment may name a patient: sealed into the dead letters, never in the log.
        await this.refused(t, `N-ACTION refused with 0x${hex4(rsp.status)} (${describe(rsp.status).name})`, log, rsp.errorComment);
        return 'refused';
      }
      t.requestedAt = Date.now();
      log.info({ objects: refs.length }, 'storage commitment requested');
      // Some archives report at once on the same association; most (Orthanc, IHE Image Managers) on a new one.
      const deadline = Date.now() + this.deps.commit.sameAssociationWaitMs;
      while (this.open.has(t.uid) && a.isOpen) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        const rq = await a.nextRequest(left);
        if (!rq) break;
        await this.answerReport(a, rq.contextId, rq.command.commandField, rq.command.messageId ?? 0, rq.command.us(Tag.EventTypeId), rq.dataset, explicitVr, log);
      }
      return 'requested';
    } finally {
      await a.release().catch(() => a.abort());
    }
  }

  /** An N-EVENT-REPORT-RQ on the N-ACTION's association: settle it and answer. */
  private async answerReport(a: Requestor, ctx: number, field: number | undefined, messageId: number, eventType: number | undefined, dataset: Buffer | undefined, explicitVr: boolean, log: Logger): Promise<void> {
    if (field !== CommandField.NEventReportRq) {
      const rspField = ((field ?? 0) | 0x8000) & 0xffff;
      await a.respond(ctx, encodeResponse({ commandField: rspField, messageIdBeingRespondedTo: messageId, status: Status.UnrecognizedOperation.code }));
      return;
    }
    const status = (await this.deps.registry.receive(dataset, explicitVr, log)) === 'settled' ? Status.Success.code : Status.ProcessingFailure.code;
    await a.respond(
      ctx,
      encodeResponse({
        commandField: CommandField.NEventReportRsp,
        messageIdBeingRespondedTo: messageId,
        status,
        affectedSopClassUid: STORAGE_COMMITMENT_PUSH_MODEL,
        affectedSopInstanceUid: STORAGE_COMMITMENT_INSTANCE,
        eventTypeId: eventType,
      }),
    );
  }

  /** The destination cannot commit at all (SOP class not supported, N-ACTION refused): dead-letter, with the reason. */
  private async refused(t: Transaction, reason: string, log: Logger, peerComment?: string): Promise<void> {
    log.error({ objects: t.claims.size, reason }, 'storage commitment refused: objects dead-lettered (check forward[].commit and the destination)');
    this.close(t);
    for (const c of t.claims.values()) await this.deps.spool.deadLetter(this.dest.name, c.record.id, `storage commitment refused: ${reason}`, undefined, peerComment);
    this.counts.failed += t.claims.size;
  }

  /** Apply a report to the transaction it names. */
  async settle(result: CommitmentResult): Promise<void> {
    const t = this.open.get(result.transactionUid);
    if (!t) return;
    this.close(t);
    const log = this.deps.log.child({ destination: this.dest.name, transactionUid: t.uid });
    let committed = 0;
    for (const r of result.committed) {
      const c = t.claims.get(r.sopInstanceUid);
      if (!c) continue;
      t.claims.delete(r.sopInstanceUid);
      await this.deps.spool.ack(this.dest.name, c.record.id);
      committed++;
    }
    const failures: Record<string, number> = {};
    for (const f of result.failed) {
      const c = t.claims.get(f.sopInstanceUid);
      if (!c) continue;
      t.claims.delete(f.sopInstanceUid);
      const reason = `storage commitment failed: 0x${hex4(f.reason)} (${describe(f.reason).name})`;
      failures[`0x${hex4(f.reason)}`] = (failures[`0x${hex4(f.reason)}`] ?? 0) + 1;
      await this.retryOrGiveUp(c, reason);
    }
    // Named in the request but in neither list: not committed; PS3.4 J.3.3 lets no instance go unanswered.
    for (const c of t.claims.values()) await this.retryOrGiveUp(c, 'storage commitment report did not mention the object');
    const unanswered = t.claims.size;
    this.counts.committed += committed;
    this.counts.failed += result.failed.length + unanswered;
    if (committed) this.deps.onCommitted?.(committed);
    const fields = { committed, failed: result.failed.length, unanswered, failures, seconds: t.requestedAt ? (Date.now() - t.requestedAt) / 1000 : undefined };
    if (result.failed.length || unanswered) log.warn(fields, 'storage commitment: some objects not committed; they are sent again');
    else log.info(fields, 'storage commitment: all committed');
  }

  /** Send again (the attempt counts), or dead-letter after forwarding.maxAttempts. */
  private async retryOrGiveUp(c: Claim, reason: string): Promise<void> {
    if (c.attempts + 1 >= this.deps.settings.maxAttempts) {
      await this.deps.spool.deadLetter(this.dest.name, c.record.id, `gave up after ${c.attempts + 1} attempts: ${reason}`);
      this.deps.log.error({ destination: this.dest.name, sopInstanceUid: c.record.sopInstanceUid, id: c.record.id, reason }, 'object dead-lettered: the destination did not commit it');
      return;
    }
    await this.deps.spool.nack(this.dest.name, c.record.id, reason);
  }

  /** Transactions past commitTimeoutSeconds: their objects are sent and asked about again. */
  private async expire(): Promise<void> {
    const now = Date.now();
    for (const t of [...this.open.values()]) {
      if (!t.requestedAt || now - t.requestedAt < this.deps.commit.timeoutMs) continue;
      this.close(t);
      this.counts.timeouts++;
      this.deps.log.warn({ destination: this.dest.name, transactionUid: t.uid, objects: t.claims.size }, 'no storage commitment report in time: objects are sent and asked about again');
      for (const c of t.claims.values()) await this.retryOrGiveUp(c, 'no storage commitment report in time');
    }
  }

  private close(t: Transaction): void {
    this.open.delete(t.uid);
    this.deps.registry.unregister(t.uid);
  }
}
