import { AssociationError, Code } from '../errors.js';
import type { CodecPool } from '../compress/pool.js';
import type { Compression } from '../compress/transcode.js';
import type { ForwardConfig } from '../config/types.js';
import { VERIFICATION_SOP_CLASS } from '../dicom/sop-classes.js';
import { hex4 } from '../dicom/status.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import type { Logger } from '../log.js';
import type { Claim, ObjectReader, Spool } from '../spool/spool.js';
import { Backoff } from './backoff.js';
import { Prefetch } from './prefetch.js';
import { AcceptedSyntaxes, sendsAsStored } from './accepted-syntaxes.js';
import { AckBatch, key, type WorkerState } from './worker-state.js';
import { type CompressionStats, discard, MAX_PAIRS, ObjectSender } from './object-sender.js';
import { outcomeOfError, type Outcome } from './outcome.js';
import { type CommitStats, type CommitmentRegistry, CommitTracker } from './commitment.js';
import { ScuAssociation } from './scu.js';
import { TransferAudit } from './transfer-audit.js';
import type { ForwardSettings } from './settings.js';
import type { AuditEvents } from '../audit/index.js';
import { tlsClientOptions } from '../security/tls.js';
import type { ConnectionOptions } from 'node:tls';

export interface DestinationStatus {
  name: string;
  aeTitle: string;
  address: string;
  state: 'up' | 'backoff' | 'down';
  backoffUntil?: string;
  downSince?: string;
  lastError?: string;
  lastSuccessAt: string | null;
  sent: number;
  sentBytes: number;
  warnings: number;
  deadLettered: number;
  retries: number;
  /** Objects per second over the last minute. */
  rate: number;
  /** Paused by an operator (MQTT `pause-forward`): nothing is sent until resumed. */
  paused: boolean;
  compression: CompressionStats;
  /** With `forward[].commit`: what Storage Commitment holds and has settled. */
  commitment?: CommitStats;
}

export type { CompressionStats };

/** `forward[].prefetchBytes` when the configuration leaves it out. */
export const DEFAULT_PREFETCH_BYTES = 32 * 1024 * 1024;

/**
 * Drains one destination's queue: `associations` workers, each with its own association that
 * it reuses for many objects. Transient trouble trips the destination's backoff (the workers
 * wait, the objects stay first in line); permanent refusals dead-letter the one object.
 * Destinations never share anything, so one that is down cannot slow another.
 */
export class DestinationForwarder {
  private readonly backoff: Backoff;
  private running = false;
  private paused = false;
  private workers: Promise<void>[] = [];
  private wake: (() => void)[] = [];
  private readonly counts = { sent: 0, sentBytes: 0, warnings: 0, deadLettered: 0, retries: 0 };
  private lastSuccessAt: number | undefined;
  private readonly recent: number[] = [];
  private readonly active = new Set<ScuAssociation>();
  private readonly sender: ObjectSender;
  private readonly commits: CommitTracker | undefined;
  private readonly transfers: TransferAudit;
  /** What the destination accepted on its last association (for compression at rest). */
  private readonly accepted = new AcceptedSyntaxes();
  /** Read once at start: a certificate change needs a restart (as for every configuration change). */
  private readonly tls: ConnectionOptions | undefined;

  constructor(
    private readonly dest: ForwardConfig,
    private readonly deps: {
      spool: Spool;
      log: Logger;
      settings: ForwardSettings;
      callingAeTitle: string;
      /** Codec workers; without them objects go only in their stored syntax. */
      codecs?: { pool: CodecPool; verify: boolean; maxObjectBytes: number } | undefined;
      /** Alarms for the health reporting (set once it has started). */
      alerts?: { corrupt: (a: { destination: string; id: string; sopInstanceUid: string; reason: string }) => void } | undefined;
      /** Where Storage Commitment transactions are registered (needed when `commit` is set). */
      commitments?: CommitmentRegistry | undefined;
      commitTimeoutMs?: number | undefined;
      /** The audit trail: transfers to this destination, per batch, study and SOP class. */
      audit?: AuditEvents | undefined;
      commitBatch?: number | undefined;
    },
  ) {
    this.backoff = new Backoff({ baseMs: deps.settings.retryBaseMs, maxMs: deps.settings.retryMaxMs });
    this.tls = dest.tls ? tlsClientOptions({ ...dest.tls, host: dest.host }) : undefined;
    this.transfers = new TransferAudit(dest, deps.audit);
    this.sender = new ObjectSender({
      destination: dest.name,
      compression: (dest.compression as Compression | undefined) ?? 'none',
      spool: deps.spool,
      log: deps.log.child({ destination: dest.name }),
      codecs: deps.codecs,
    });
    if (dest.commit && deps.commitments) {
      this.commits = new CommitTracker(dest, {
        spool: deps.spool,
        log: deps.log,
        settings: deps.settings,
        tls: this.tls,
        commit: { batch: deps.commitBatch ?? 500, timeoutMs: deps.commitTimeoutMs ?? 3_600_000, sameAssociationWaitMs: 3000, lingerMs: 1000 },
        callingAeTitle: dest.callingAeTitle ?? deps.callingAeTitle,
        registry: deps.commitments,
        // Failed commitments put objects back in the queue: wake the workers.
        onCommitted: () => this.notify(),
      });
    }
  }

  get name(): string {
    return this.dest.name;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let i = 0; i < this.dest.associations; i++) this.workers.push(this.worker(i + 1));
  }

  /**
   * Stop after the objects in flight; associations are released. A destination that does not
   * answer within `graceMs` has its associations aborted (the objects stay queued).
   */
  async stop(graceMs = 5000): Promise<void> {
    this.running = false;
    this.notify();
    const t = setTimeout(() => {
      for (const a of this.active) a.abort();
    }, graceMs);
    await Promise.all(this.workers);
    clearTimeout(t);
    this.workers = [];
    await this.commits?.stop();
  }

  /** Stop handing out new objects (the ones being sent finish); objects keep their places. */
  pause(): void {
    this.paused = true;
    this.notify();
  }

  resume(): void {
    this.paused = false;
    this.notify();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** C-ECHO to the destination on an association of its own: the status and the round trip. */
  async echo(): Promise<{ status: number; ms: number }> {
    const t = performance.now();
    const a = await ScuAssociation.open({
      host: this.dest.host,
      port: this.dest.port,
      callingAeTitle: this.dest.callingAeTitle ?? this.deps.callingAeTitle,
      calledAeTitle: this.dest.aeTitle,
      tls: this.tls,
      contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian] }],
      maxPduLength: this.deps.settings.maxPduLength,
      connectTimeoutMs: this.deps.settings.connectTimeoutMs,
      acseTimeoutMs: this.deps.settings.acseTimeoutMs,
      dimseTimeoutMs: this.deps.settings.dimseTimeoutMs,
    });
    try {
      if (a.contextFor(VERIFICATION_SOP_CLASS, TS.ExplicitVRLittleEndian) === undefined && a.contextFor(VERIFICATION_SOP_CLASS, TS.ImplicitVRLittleEndian) === undefined) {
        throw new AssociationError(Code.CONTEXT_REJECTED, 'destination does not accept the Verification SOP Class', { retryable: true });
      }
      const status = await a.echo(1);
      return { status, ms: Math.round(performance.now() - t) };
    } finally {
      await a.release().catch(() => a.abort());
    }
  }

  /** Would an object compressed at rest in `atRest` go to this destination as stored? (accepted-syntaxes.ts) */
  takesAtRest(sopClassUid: string, received: string, atRest: string): boolean {
    return sendsAsStored({ sopClassUid, received, atRest, compression: (this.dest.compression as Compression | undefined) ?? 'none', accepted: this.accepted });
  }

  /** New work may be waiting. */
  notify(): void {
    for (const w of this.wake.splice(0)) w();
  }

  status(): DestinationStatus {
    const now = Date.now();
    while (this.recent.length && now - this.recent[0]! > 60_000) this.recent.shift();
    const b = this.backoff.state();
    const base = {
      name: this.dest.name,
      aeTitle: this.dest.aeTitle,
      address: `${this.dest.host}:${this.dest.port}`,
      lastSuccessAt: this.lastSuccessAt ? new Date(this.lastSuccessAt).toISOString() : null,
      ...this.counts,
      rate: Math.round((this.recent.length / 60) * 10) / 10,
      paused: this.paused,
      compression: this.sender.stats(),
      ...(this.commits ? { commitment: this.commits.stats() } : {}),
    };
    if (b.state === 'up') return { ...base, state: 'up' };
    return { ...base, state: b.state, backoffUntil: new Date(b.until).toISOString(), downSince: new Date(b.since).toISOString(), lastError: b.lastError };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake.push(done);
    });
  }

  /**
   * One worker: never throws. Anything unexpected (the spool's own I/O failing, say) is logged,
   * counted as a failure of the destination and retried after the backoff: a forwarder must not
   * take the process down, and must not give up.
   */
  private async worker(n: number): Promise<void> {
    const log = this.deps.log.child({ destination: this.dest.name, worker: n });
    const state: WorkerState = { assoc: undefined, proposed: [], idleSince: Date.now(), claims: [] };
    while (this.running) {
      try {
        await this.work(log, state);
      } catch (err) {
        const reason = `internal error: ${(err as Error)?.message ?? String(err)}`;
        const delay = this.backoff.failure(reason);
        log.error({ err: (err as Error)?.message, code: (err as { code?: string })?.code, retryInMs: delay }, 'forwarder error, will retry');
        state.assoc?.abort();
        state.assoc = undefined;
        // Whatever this pass held goes back to the queue (a delivered one is sent again: harmless).
        await this.release(state.claims.splice(0)).catch(() => undefined);
      }
    }
    await state.assoc?.release();
  }

  private async work(log: Logger, state: WorkerState): Promise<void> {
    let { assoc, proposed, idleSince } = state;
    try {
      while (this.running) {
        if (this.paused) {
          // Paused by an operator: no new work; an open association is released.
          if (assoc) await assoc.release();
          assoc = undefined;
          await this.sleep(60_000);
          continue;
        }
        const wait = this.backoff.waitMs();
        if (wait > 0) {
          if (assoc) {
            assoc.abort();
            assoc = undefined;
          }
          await this.sleep(wait);
          continue;
        }
        const claims = await this.deps.spool.claim(this.dest.name, this.deps.settings.batch);
        state.claims = claims;
        if (claims.length === 0) {
          if (assoc && Date.now() - idleSince > this.deps.settings.idleReleaseMs) {
            await assoc.release();
            assoc = undefined;
            log.debug('association released after idle time');
          }
          await this.sleep(Math.min(1000, this.deps.settings.idleReleaseMs));
          continue;
        }
        try {
          const needed = [...new Set(claims.map((c) => key(c)))];
          if (!assoc?.isOpen || needed.some((k) => !proposed.includes(k))) {
            // Hold no claims while connecting: a destination that takes one association at a
            // time would otherwise strand them with a worker that waits for its turn.
            await this.release(claims);
            if (assoc) await assoc.release();
            assoc = undefined;
            // Keep what the last association carried too, so a mixed queue does not reconnect per object.
            proposed = [...new Set([...needed, ...proposed])].slice(0, MAX_PAIRS);
            try {
              assoc = await ScuAssociation.open({
                host: this.dest.host,
                port: this.dest.port,
                callingAeTitle: this.dest.callingAeTitle ?? this.deps.callingAeTitle,
                calledAeTitle: this.dest.aeTitle,
                tls: this.tls,
                contexts: this.sender.contextsFor(proposed),
                maxPduLength: this.deps.settings.maxPduLength,
                connectTimeoutMs: this.deps.settings.connectTimeoutMs,
                acseTimeoutMs: this.deps.settings.acseTimeoutMs,
                dimseTimeoutMs: this.deps.settings.dimseTimeoutMs,
              });
              const opened = assoc;
              this.accepted.note(this.sender.contextsFor(proposed), (sop, ts) => opened.contextFor(sop, ts) !== undefined);
              for (const a of this.active) if (!a.isOpen) this.active.delete(a);
              this.active.add(assoc);
              log.debug({ contexts: proposed.length }, 'association open');
            } catch (err) {
              await this.unreachable(outcomeOfError(err), log);
            }
            continue; // claim again, now with an association
          }
          this.transfers.begin(claims);
          const acks = new AckBatch(this.deps.spool, this.dest.name);
          // While one object is on the wire, the next ones are read, decrypted, checked and
          // converted on the worker threads, within this worker's share of the memory budget.
          const a = assoc;
          const ahead = new Prefetch(claims, {
            start: (c, streamed) => this.sender.prepare(a, c, () => this.open(c, streamed)),
            budgetBytes: Math.floor((this.dest.prefetchBytes ?? DEFAULT_PREFETCH_BYTES) / this.dest.associations),
            skip: (c) => !proposed.includes(key(c)),
            drop: (p) => discard(p),
          });
          try {
            for (let i = 0; i < claims.length; i++) {
              const c = claims[i]!;
              if (!this.running || !assoc.isOpen) {
                await this.release(claims.slice(i));
                break;
              }
              if (!proposed.includes(key(c))) {
                // More distinct SOP class/syntax pairs than one association can carry: later.
                await this.release([c]);
                continue;
              }
              const o = await this.sender.sendPrepared(assoc, c, await ahead.take(i));
              ahead.done(i);
              const stop = await this.settle(c, o, log, acks);
              if (stop) {
                await this.release(claims.slice(i + 1));
                if (!assoc.isOpen) assoc = undefined;
                break;
              }
            }
          } finally {
            // Prepared ahead and not sent: dropped (their claims were given back above).
            ahead.dropFrom(0);
            // The delivered ones, in one index write (before the batch's transfer audit).
            await acks.flush();
          }
        } finally {
          idleSince = Date.now();
          this.transfers.flush();
        }
      }
    } finally {
      Object.assign(state, { assoc, proposed, idleSince });
    }
  }

  /**
   * Start reading a claimed object; errors surface when it is awaited. Read whole, decrypted and
   * checked on a worker thread (prefetch); an object bigger than the budget is streamed, the SCU
   * verifying its SHA-256 as it reads (nothing of it completes at the destination unless it matches).
   */
  private open(c: Claim, streamed: boolean): Promise<ObjectReader> {
    const p = this.deps.spool.read(c.record.id, { verify: streamed ? 'caller' : 'memory' });
    p.catch(() => undefined);
    return p;
  }

  /** Apply an outcome to one claim. Returns true when the rest of the batch must wait (retry). */
  private async settle(c: Claim, o: Outcome, log: Logger, acks: AckBatch): Promise<boolean> {
    const { id, sopInstanceUid, size } = c.record;
    if (o.kind === 'delivered') {
      // With Storage Commitment the object stays (claimed) until the destination commits it.
      if (this.commits) this.commits.add(c);
      else acks.add(id);
      this.transfers.note(c);
      this.backoff.success();
      this.counts.sent++;
      this.counts.sentBytes += o.bytes ?? size;
      this.lastSuccessAt = Date.now();
      this.recent.push(this.lastSuccessAt);
      if (o.warning) {
        this.counts.warnings++;
        log.warn({ sopInstanceUid, status: `0x${hex4(o.status)}` }, 'destination stored the object with a warning');
      } else log.debug({ sopInstanceUid, id }, 'forwarded');
      return false;
    }
    if (o.kind === 'dead-letter') {
      await this.deps.spool.deadLetter(this.dest.name, id, o.reason, o.status, o.peerComment);
      this.counts.deadLettered++;
      this.transfers.note(c, o.corrupt ? 'spooled copy corrupt' : 'refused by the destination');
      if (o.corrupt) {
        // Not the destination's doing: the spool's copy is damaged (disk, card). Raise the alarm.
        log.error({ sopInstanceUid, id, reason: o.reason }, 'spooled object is corrupt: dead-lettered, nothing of it was completed at the destination');
        this.deps.alerts?.corrupt({ destination: this.dest.name, id, sopInstanceUid, reason: o.reason });
        return false;
      }
      log.error({ sopInstanceUid, id, status: o.status === undefined ? undefined : `0x${hex4(o.status)}`, reason: o.reason }, 'object dead-lettered: the destination refused it permanently');
      return false;
    }
    // Transient. An object the destination keeps refusing with a status must not block the queue forever.
    if (o.status !== undefined && c.attempts + 1 >= this.deps.settings.maxAttempts) {
      const reason = `gave up after ${c.attempts + 1} attempts: ${o.reason}`;
      await this.deps.spool.deadLetter(this.dest.name, id, reason, o.status, o.peerComment);
      this.counts.deadLettered++;
      log.error({ sopInstanceUid, id, reason }, 'object dead-lettered: transient refusals did not stop');
      return false;
    }
    // Only a refusal by status counts against the object; a lost connection or a timeout is the
    // destination's trouble, not the object's.
    if (o.status !== undefined) await this.deps.spool.nack(this.dest.name, id, o.reason);
    else await this.deps.spool.unclaim(this.dest.name, id);
    this.counts.retries++;
    const delay = this.backoff.failure(o.reason);
    log.warn({ sopInstanceUid, id, reason: o.reason, retryInMs: delay }, 'delivery failed, will retry');
    return true;
  }

  /**
   * The association could not be opened; the destination backs off either way, and its status
   * shows why. Transient: the objects wait. Permanent (A-ASSOCIATE-RJ permanent — typically AE
   * titles that do not match): the destination will refuse them every time, so the batch this
   * worker now holds is dead-lettered with the reason, one batch per backoff period — the
   * operator fixes the configuration and runs `pacs-edge dead-letter retry`.
   */
  private async unreachable(o: Outcome, log: Logger): Promise<void> {
    this.counts.retries++;
    const reason = o.kind === 'delivered' ? 'unknown' : o.reason;
    const delay = this.backoff.failure(reason);
    if (o.kind === 'dead-letter') {
      log.error({ reason, retryInMs: delay }, 'destination refuses the association permanently: check the AE titles of forward[] and of the destination');
      const acks = new AckBatch(this.deps.spool, this.dest.name);
      for (const c of await this.deps.spool.claim(this.dest.name, this.deps.settings.batch)) await this.settle(c, o, log, acks);
      return;
    }
    log.warn({ reason, retryInMs: delay }, 'destination unreachable, will retry');
  }

  /** Give claims back untouched (they keep their place at the head of the queue). */
  private async release(claims: Claim[]): Promise<void> {
    for (const c of claims) await this.deps.spool.unclaim(this.dest.name, c.record.id);
  }
}
