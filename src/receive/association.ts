import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { AuditEvents } from '../audit/index.js';
import type { GatewayConfig } from '../config/types.js';
import { Reject, type AssociateRq } from '../dicom/pdu.js';
import { Acceptor, type AssociateAnswer } from '../dicom/ul/acceptor.js';
import type { State } from '../dicom/ul/fsm.js';
import type { AbortInfo } from '../dicom/ul/provider.js';
import type { Logger } from '../log.js';
import type { Spool } from '../spool/spool.js';
import { type CommitmentServices, DimseService } from './dimse-service.js';
import { peerText } from '../util/peer-text.js';
import { negotiate, normalizeAddress } from './negotiation.js';
import type { ReceiveStats, RejectedAssociation } from './stats.js';

export type { CommitmentServices } from './dimse-service.js';

export interface AssociationOptions {
  readonly id: number;
  readonly config: GatewayConfig['receive'];
  readonly spool: Spool;
  readonly log: Logger;
  readonly stats: ReceiveStats;
  /** Asked when the A-ASSOCIATE-RQ arrives: false at receive.maxAssociations (the request gets a transient reject). */
  readonly admit: () => boolean;
  /** Asked first when the A-ASSOCIATE-RQ arrives: why new associations are refused now (the audit trail cannot write), or undefined. */
  readonly refusing?: (() => string | undefined) | undefined;
  /** The peer sent its A-ASSOCIATE-RQ: the connection no longer counts as silent. */
  readonly spoke?: (() => void) | undefined;
  /** ARTIM expired before any A-ASSOCIATE-RQ: a refused attempt of the address (blocking). */
  readonly silentTooLong?: (() => void) | undefined;
  readonly commitment?: CommitmentServices | undefined;
  /** The audit trail: what this association stored, per study and SOP class, when it ends. */
  readonly audit?: AuditEvents | undefined;
  readonly accessionKey?: Buffer | undefined;
  readonly patientRef?: ((patientId: string | undefined) => string | undefined) | undefined;
}

/**
 * The A-ASSOCIATE-RJ while the audit trail cannot write (PS3.8 §9.3.4, Table 9-21): result 2
 * rejected-transient (it ends without a restart or a change at the caller), source 1 DICOM UL
 * service-user (the refusal is this application's decision, not a protocol or presentation-layer
 * condition), reason 1 no-reason-given (no listed user reason fits; "temporary-congestion" and
 * "local-limit-exceeded" belong to source 3 and would send the operator looking at the load).
 */
const AUDIT_FAILURE_REJECT = { result: Reject.Result.Transient, source: Reject.Source.ServiceUser, reason: Reject.UserReason.NoReasonGiven };

/**
 * One inbound association: the upper layer's {@link Acceptor} (PS3.8 state machine, ARTIM and
 * idle timers) with the gateway's policy on top: who may associate and with what
 * ({@link negotiate}), the DIMSE services once established ({@link DimseService}), and what an
 * association leaves behind: log lines, receive statistics and, per study, an audit message.
 *
 * @see PS3.8 §9.2, PS3.15 Annex A.5.3.5 (DICOM Instances Transferred)
 */
export class Association {
  private readonly acceptor: Acceptor;
  private readonly remote: string;
  private callingAe = '';
  private service: DimseService | undefined;
  /**
   * True from the A-ASSOCIATE-AC until the association ends, however it ends: it holds one of
   * receive.maxAssociations meanwhile. An aborted association (Sta13: it "no longer exists")
   * gives its slot back at once, while its connection waits briefly for the peer to close.
   */
  private counted = false;
  /** True from the A-ASSOCIATE-AC on: the close logs what the association did. */
  private accepted = false;
  private readonly startedAt = Date.now();

  constructor(
    private readonly socket: Socket,
    private readonly o: AssociationOptions,
  ) {
    this.remote = normalizeAddress(socket.remoteAddress ?? '?');
    const c = o.config;
    this.acceptor = new Acceptor(
      socket,
      { artimSeconds: c.artimTimeoutSeconds, idleSeconds: c.idleTimeoutSeconds, maxPduLength: c.maxPduLength },
      {
        onAssociateRequest: (rq) => this.onAssociateRequest(rq),
        onCommand: (ctx, cmd) => this.established().onCommand(ctx, cmd),
        onData: (ctx, data) => this.established().onData(ctx, data),
        onDataEnd: (ctx) => this.established().onDataEnd(ctx),
        onReleaseRequest: () => this.service?.drained() ?? Promise.resolve(),
        onReleaseMidMessage: () =>
          this.log.warn({ assoc: this.o.id, remote: this.remote, callingAe: this.callingAe || undefined }, 'protocol error, association aborted: A-RELEASE-RQ in the middle of a message'),
        onAbort: (info) => this.onAbort(info),
        onIdle: (seconds, state) => this.closedBecause('idle timeout', { seconds, state }),
        onArtim: (state) => {
          this.closedBecause(state === 'Sta2' ? 'no A-ASSOCIATE-RQ within ARTIM timeout' : 'peer did not close the connection within ARTIM timeout', {
            seconds: c.artimTimeoutSeconds,
            state,
          });
          if (state === 'Sta2') o.silentTooLong?.();
        },
        onClosed: () => this.onClosed(),
      },
    );
  }

  private get log(): Logger {
    return this.o.log;
  }

  /** The service, once the association is established; P-DATA cannot arrive before (the state machine aborts). */
  private established(): DimseService {
    return this.service!;
  }

  private onAssociateRequest(rq: AssociateRq): AssociateAnswer {
    this.o.spoke?.();
    const base = { assoc: this.o.id, remote: this.remote, callingAe: rq.callingAeTitle, calledAe: rq.calledAeTitle };
    // What a refusal tells statistics, the audit trail and MQTT about the peer: bounded, printable.
    const who = { callingAeTitle: peerText(rq.callingAeTitle, 16), calledAeTitle: peerText(rq.calledAeTitle, 16), address: peerText(this.remote) };
    const refusing = this.o.refusing?.();
    if (refusing !== undefined) {
      // Judged before the request itself: while nothing can be audited, no peer (allowed or not)
      // gets an association whose facts would go unrecorded (audit.onFailure: refuse).
      this.log.warn({ ...base, reason: refusing }, 'association rejected (transient): the audit trail cannot be written (audit.onFailure: refuse)');
      return this.reject(AUDIT_FAILURE_REJECT, { ...who, code: 'audit-failure', why: `audit trail cannot be written: ${refusing}`, transient: true });
    }
    const decision = negotiate(rq, this.o.config, this.remote, this.o.commitment?.peers ?? []);
    if (decision.kind === 'reject') {
      this.log.warn({ ...base, result: decision.result, source: decision.source, reason: decision.reason, code: decision.code }, `association rejected: ${decision.why}`);
      return this.reject(decision, { ...who, code: decision.code, why: decision.why });
    }
    if (!this.o.admit()) {
      this.log.warn({ ...base, maxAssociations: this.o.config.maxAssociations }, 'association rejected (transient): receive.maxAssociations reached');
      const busy = { result: Reject.Result.Transient, source: Reject.Source.ServiceProviderPresentation, reason: Reject.PresentationReason.LocalLimitExceeded };
      return this.reject(busy, { ...who, code: 'max-associations', why: 'receive.maxAssociations reached', transient: true });
    }
    this.callingAe = rq.callingAeTitle;
    this.service = new DimseService(this.acceptor, {
      id: this.o.id,
      config: this.o.config,
      spool: this.o.spool,
      log: this.o.log,
      stats: this.o.stats,
      commitment: this.o.commitment,
      accessionKey: this.o.accessionKey,
      patientRef: this.o.patientRef,
      auditing: this.o.audit !== undefined,
      contexts: decision.accepted,
      callingAe: rq.callingAeTitle,
      remoteAddress: this.remote,
      secure: this.socket instanceof TLSSocket,
    });
    this.o.stats.associationOpened();
    this.counted = true;
    this.accepted = true;
    this.log.info(
      { ...base, proposed: rq.contexts.length, accepted: decision.accepted.size, peerMaxPdu: rq.maxPduLength, implementation: rq.implementationVersionName || rq.implementationClassUid },
      'association accepted',
    );
    return { accept: { contexts: decision.decisions, roles: decision.roles } };
  }

  private reject(rj: { result: number; source: number; reason: number }, who: RejectedAssociation): AssociateAnswer {
    this.o.stats.associationRejected(who);
    return { reject: { result: rj.result, source: rj.source, reason: rj.reason } };
  }

  private onAbort(info: AbortInfo): void {
    const who = { assoc: this.o.id, remote: this.remote, callingAe: this.callingAe || undefined };
    if (info.kind === 'peer') this.log.warn({ ...who, source: info.source, reason: info.reason }, 'peer aborted the association');
    else if (info.kind === 'protocol') {
      const code = (info.error as { code?: string } | undefined)?.code;
      this.log.warn({ ...who, code, source: info.source, reason: info.reason }, `protocol error, association aborted: ${info.error?.message ?? 'unexpected PDU'}`);
    } else if (info.error) this.log.warn({ ...who, err: (info.error as NodeJS.ErrnoException).code ?? info.error.message }, 'socket error');
    this.discardPartial();
    this.freeSlot();
  }

  private freeSlot(): void {
    if (!this.counted) return;
    this.counted = false;
    this.o.stats.associationClosed();
  }

  /** A data set half received when the association ends is not stored: its response fails. */
  private discardPartial(): void {
    const partial = this.service?.partialBytes;
    if (partial === undefined) return;
    void this.service!.abortReception().then(() =>
      this.log.warn({ assoc: this.o.id, callingAe: this.callingAe, bytes: partial }, 'association ended in the middle of a data set; partial object discarded'),
    );
  }

  private closedBecause(why: string, fields: { seconds: number; state: State }): void {
    this.log.warn({ assoc: this.o.id, callingAe: this.callingAe || undefined, state: fields.state, seconds: fields.seconds }, `association closed: ${why}`);
  }

  private onClosed(): void {
    this.discardPartial();
    const s = this.service;
    if (s) {
      for (const [k, count] of s.storedByStudy) {
        const [studyUid = '', sopClassUid = '', patient] = JSON.parse(k) as string[];
        this.o.audit?.instancesReceived({ callingAe: this.callingAe, address: this.remote, studyUid, sopClassUid, count, ...(patient ? { patient } : {}) });
      }
      s.storedByStudy.clear();
    }
    this.freeSlot();
    if (this.accepted) {
      this.accepted = false;
      this.log.info({ assoc: this.o.id, callingAe: this.callingAe, ...s?.counts, seconds: (Date.now() - this.startedAt) / 1000 }, 'association closed');
    }
    this.o.stats.connectionClosed();
  }
}
