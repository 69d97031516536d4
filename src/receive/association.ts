import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { GatewayConfig } from '../config/types.js';
import { CommandField, decodeCommand, encodeResponse } from '../dicom/command.js';
import { VERIFICATION_SOP_CLASS } from '../dicom/sop-classes.js';
import { category, describe, hex4, Status } from '../dicom/status.js';
import { transferSyntax } from '../dicom/transfer-syntaxes.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/uids.js';
import { DicomParseError } from '../errors.js';
import { crashpoint } from '../util/crashpoint.js';
import type { Logger } from '../log.js';
import type { Spool } from '../spool/spool.js';
import { type AcceptedContext, type CommitPeer, negotiate, normalizeAddress } from './negotiation.js';
import { ACTION_REQUEST_COMMITMENT, STORAGE_COMMITMENT_INSTANCE, STORAGE_COMMITMENT_PUSH_MODEL } from '../dicom/storage-commitment.js';
import { Tag } from '../dicom/tags.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import {
  Abort,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodePData,
  encodeReleaseRp,
  PduType,
  Reject,
} from '../dicom/pdu.js';
import { type PduHandler, PduReader } from '../dicom/pdu-reader.js';
import type { RejectedAssociation } from './stats.js';
import type { AuditEvents } from '../audit/index.js';
import { type StoreOutcome, StoreReception, toOutcome } from './store-reception.js';
import type { ReceiveStats } from './stats.js';

/** Largest command set accepted (they are a few hundred bytes in practice). */
const MAX_COMMAND_BYTES = 64 * 1024;
/** Non-P-DATA PDUs (an A-ASSOCIATE-RQ with many contexts is the largest). */
const MAX_CONTROL_PDU = 1024 * 1024;
/** Largest data set held in memory (Storage Commitment requests and reports; C-STOREs stream to disk). */
const MAX_BUFFERED_DATASET = 16 * 1024 * 1024;

/**
 * Storage Commitment on the receive side: a modality's N-ACTION (we are its SCP) and a
 * destination's N-EVENT-REPORT on a new association (we are its SCU). Both answer with a status.
 * @see PS3.4 Annex J.3
 */
export interface CommitmentServices {
  /** `secure`: the request came over DICOM TLS (the report then goes over TLS too). */
  onAction(req: { callingAeTitle: string; remoteAddress: string; explicitVr: boolean; dataset: Buffer; secure: boolean }): Promise<StoreOutcome>;
  onEventReport(req: { callingAeTitle: string; explicitVr: boolean; dataset: Buffer; eventTypeId: number | undefined }): Promise<StoreOutcome>;
  /** Destinations that may associate to report (forward[].commit). */
  peers: readonly CommitPeer[];
}

type Phase = 'awaiting-rq' | 'established' | 'released' | 'closed';

/**
 * One association, as the acceptor: the PS3.8 state machine cut down to what an SCP needs.
 *
 * Sta2 (awaiting A-ASSOCIATE-RQ, ARTIM running) → Sta6 (data transfer, idle timer) → release
 * (A-RELEASE-RP sent once every pending response is out, then ARTIM until the peer closes).
 * Anything the standard calls an unrecognised or unexpected PDU gets an A-ABORT with that
 * reason and a log line; the server keeps serving other associations.
 *
 * @see PS3.8 §9.2 (state machine, Table 9-10), §9.3 (PDUs)
 */
export class Association implements PduHandler {
  private phase: Phase = 'awaiting-rq';
  private readonly reader: PduReader;
  private contexts = new Map<number, AcceptedContext>();
  private peerMaxPdu = 0;
  private callingAe = '';
  private timer: NodeJS.Timeout | undefined;
  /** Responses go out in request order. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private pausedBy = new Set<string>();

  // Message being assembled
  private pdvContext = 0;
  private pdvControl = 0;
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  private reception: { ctx: number; store?: StoreReception; buffer?: { parts: Buffer[]; bytes: number }; done: (override?: StoreOutcome) => void } | undefined;

  private readonly counts = { stored: 0, failed: 0, bytes: 0, echoes: 0 };
  /** Stored objects by "study|SOP class", for one audit message each (PS3.15 A.5.3.5). */
  private readonly storedByStudy = new Map<string, number>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly socket: Socket,
    private readonly deps: {
      id: number;
      config: GatewayConfig['receive'];
      spool: Spool;
      log: Logger;
      stats: ReceiveStats;
      /** False when the server is at receive.maxAssociations: the request gets a transient reject. */
      admitted: boolean;
      commitment?: CommitmentServices | undefined;
      /** The audit trail: what this association stored, per study and SOP class, when it ends. */
      audit?: AuditEvents | undefined;
      accessionKey?: Buffer | undefined;
    },
  ) {
    this.reader = new PduReader(this, { maxPDataLength: Math.max(deps.config.maxPduLength, 1024 * 1024) * 2, maxControlPduLength: MAX_CONTROL_PDU });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.deps.log.warn({ assoc: deps.id, err: (err as NodeJS.ErrnoException).code ?? err.message }, 'socket error'));
    socket.on('close', () => this.onClose());
    this.arm(deps.config.artimTimeoutSeconds, 'no A-ASSOCIATE-RQ within ARTIM timeout');
  }

  private get log(): Logger {
    return this.deps.log;
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    const before = this.progress;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    // The idle timer restarts when a whole PDU (or PDV) has arrived, not on every byte: a peer
    // trickling a data set a byte at a time, or stalled half-way through a PDU, would otherwise
    // hold its association (and a receive.maxAssociations slot) for ever. A PDU is at most
    // receive.maxPduLength, so any real link completes one well within the idle timeout.
    if (this.progress !== before && this.phase === 'established' && this.inFlight === 0 && this.pausedBy.size === 0) {
      this.arm(this.deps.config.idleTimeoutSeconds, 'idle timeout');
    }
  }

  /** Whole PDUs and PDVs received so far: what counts as activity for the idle timer. */
  private progress = 0;
  /** True from the A-ASSOCIATE-AC on: the association is counted in stats until it closes, however it ends. */
  private counted = false;

  // ---- PduHandler -------------------------------------------------------------------------

  onPdu(type: number, body: Buffer): void {
    this.progress++;
    if (type === PduType.AssociateRq && this.phase === 'awaiting-rq') return this.onAssociateRq(body);
    if (type === PduType.ReleaseRq && this.phase === 'established') return this.onReleaseRq();
    if (type === PduType.Abort) {
      this.log.warn({ assoc: this.deps.id, source: body[2], reason: body[3] }, 'peer aborted the association');
      return this.destroy();
    }
    throw new DicomParseError('PDU_UNEXPECTED', `unexpected PDU type 0x${type.toString(16)} in state ${this.phase}`);
  }

  onPdvStart(contextId: number, control: number): void {
    if (this.phase !== 'established') throw new DicomParseError('PDU_UNEXPECTED', `P-DATA-TF in state ${this.phase}`);
    if (!this.contexts.has(contextId)) throw new DicomParseError('PDV_MALFORMED', `PDV on presentation context ${contextId}, which was not accepted`);
    // PS3.8 Annex E.2: bits 2-7 of the message control header are always 0. A peer that sets
    // them does not speak this protocol; reading its PDV with a guess could store garbage.
    if ((control & 0xfc) !== 0) throw new DicomParseError('PDV_MALFORMED', `message control header 0x${control.toString(16)} has reserved bits set`);
    const isCommand = (control & 0x01) === 1;
    if (isCommand && this.reception) throw new DicomParseError('PDV_MALFORMED', 'command fragment received while a data set was expected');
    if (!isCommand && !this.reception) throw new DicomParseError('PDV_MALFORMED', 'data set fragment received without a command');
    if (!isCommand && this.reception && this.reception.ctx !== contextId) {
      throw new DicomParseError('PDV_MALFORMED', 'data set fragment on a different presentation context than its command');
    }
    this.pdvContext = contextId;
    this.pdvControl = control;
  }

  onPdvData(data: Buffer): void {
    if ((this.pdvControl & 0x01) === 1) {
      this.commandBytes += data.length;
      if (this.commandBytes > MAX_COMMAND_BYTES) throw new DicomParseError('COMMAND_TOO_LONG', 'command set exceeds 64 KiB');
      this.commandParts.push(Buffer.from(data)); // small; copy so the socket chunk can be freed
    } else if (this.reception?.store) {
      this.reception.store.write(data);
      crashpoint('mid-data');
    } else if (this.reception?.buffer) {
      const b = this.reception.buffer;
      b.bytes += data.length;
      if (b.bytes > MAX_BUFFERED_DATASET) throw new DicomParseError('DATASET_TOO_LARGE', `Storage Commitment data set exceeds ${MAX_BUFFERED_DATASET} bytes`);
      b.parts.push(Buffer.from(data));
    }
  }

  onPdvEnd(): void {
    this.progress++;
    const last = (this.pdvControl & 0x02) === 2;
    if (!last) return;
    if ((this.pdvControl & 0x01) === 1) {
      const buf = Buffer.concat(this.commandParts, this.commandBytes);
      this.commandParts = [];
      this.commandBytes = 0;
      this.onCommand(this.pdvContext, buf);
    } else if (this.reception) {
      const r = this.reception;
      this.reception = undefined;
      this.inFlight++;
      this.disarm();
      r.done();
    }
  }

  // ---- association establishment and release ------------------------------------------------

  private onAssociateRq(body: Buffer): void {
    const rq = decodeAssociateRq(body);
    const remote = normalizeAddress(this.socket.remoteAddress ?? '?');
    const base = { assoc: this.deps.id, remote, callingAe: rq.callingAeTitle, calledAe: rq.calledAeTitle };
    const decision = negotiate(rq, this.deps.config, remote, this.deps.commitment?.peers ?? []);
    if (decision.kind === 'reject') {
      this.log.warn({ ...base, result: decision.result, source: decision.source, reason: decision.reason }, `association rejected: ${decision.why}`);
      return this.rejectAndClose(decision.result, decision.source, decision.reason, { callingAeTitle: rq.callingAeTitle, calledAeTitle: rq.calledAeTitle, address: remote, why: decision.why });
    }
    if (!this.deps.admitted) {
      this.log.warn({ ...base, maxAssociations: this.deps.config.maxAssociations }, 'association rejected (transient): receive.maxAssociations reached');
      return this.rejectAndClose(Reject.Result.Transient, Reject.Source.ServiceProviderPresentation, Reject.PresentationReason.LocalLimitExceeded, {
        callingAeTitle: rq.callingAeTitle,
        calledAeTitle: rq.calledAeTitle,
        address: remote,
        why: 'receive.maxAssociations reached',
        transient: true,
      });
    }
    this.contexts = decision.accepted;
    this.peerMaxPdu = rq.maxPduLength;
    this.callingAe = rq.callingAeTitle;
    this.socket.write(
      encodeAssociateAc({
        rq,
        contexts: decision.decisions,
        maxPduLength: this.deps.config.maxPduLength,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        roles: decision.roles,
      }),
    );
    this.phase = 'established';
    this.deps.stats.associationOpened();
    this.counted = true;
    this.arm(this.deps.config.idleTimeoutSeconds, 'idle timeout');
    this.log.info(
      { ...base, proposed: rq.contexts.length, accepted: decision.accepted.size, peerMaxPdu: rq.maxPduLength, implementation: rq.implementationVersionName || rq.implementationClassUid },
      'association accepted',
    );
  }

  private rejectAndClose(result: number, source: number, reason: number, who: RejectedAssociation): void {
    this.deps.stats.associationRejected(who);
    this.phase = 'released';
    this.socket.end(encodeAssociateRj(result, source, reason));
    this.arm(this.deps.config.artimTimeoutSeconds, 'peer did not close after A-ASSOCIATE-RJ');
  }

  private onReleaseRq(): void {
    this.phase = 'released';
    void this.tail.then(() => {
      if (this.socket.destroyed) return;
      // Some SCUs close before reading the A-RELEASE-RP; ending our side after it is harmless.
      this.socket.end(encodeReleaseRp());
      this.arm(this.deps.config.artimTimeoutSeconds, 'peer did not close after A-RELEASE-RP');
    });
  }

  // ---- DIMSE --------------------------------------------------------------------------------

  private onCommand(ctxId: number, buf: Buffer): void {
    const cmd = decodeCommand(buf);
    const field = cmd.commandField;
    const messageId = cmd.messageId ?? 0;
    const ctx = this.contexts.get(ctxId)!;
    if (field === CommandField.CEchoRq) {
      this.counts.echoes++;
      this.inFlight++;
      this.respond(ctxId, Promise.resolve({ status: Status.Success.code }), CommandField.CEchoRsp, messageId, cmd.affectedSopClassUid);
      return;
    }
    if (field === CommandField.CCancelRq) return; // nothing of ours is cancellable
    if ((field === CommandField.NActionRq || field === CommandField.NEventReportRq) && ctx.abstractSyntax === STORAGE_COMMITMENT_PUSH_MODEL && this.deps.commitment) {
      return this.onCommitment(ctxId, ctx, cmd, field, messageId);
    }
    if (field !== CommandField.CStoreRq) {
      this.log.warn({ assoc: this.deps.id, commandField: `0x${hex4(field ?? 0)}` }, 'unsupported DIMSE command');
      const rsp = ((field ?? 0) | 0x8000) & 0xffff;
      const unsupported = { status: Status.UnrecognizedOperation.code, comment: 'operation not supported by this SCP' };
      if (cmd.hasDataSet) this.expectDataSet(ctxId, undefined, unsupported, (o) => this.respond(ctxId, o, rsp, messageId, cmd.affectedSopClassUid));
      else {
        this.inFlight++;
        this.respond(ctxId, Promise.resolve(unsupported), rsp, messageId, cmd.affectedSopClassUid);
      }
      return;
    }

    const sopClassUid = cmd.affectedSopClassUid ?? '';
    const sopInstanceUid = cmd.affectedSopInstanceUid ?? '';
    const respond = (o: Promise<StoreOutcome>) => this.respond(ctxId, o, CommandField.CStoreRsp, messageId, sopClassUid, sopInstanceUid);
    let refusal: StoreOutcome | undefined;
    if (!cmd.hasDataSet) refusal = { status: Status.MissingAttribute.code, comment: 'C-STORE-RQ without a data set' };
    else if (!sopInstanceUid || !sopClassUid) refusal = { status: Status.MissingAttribute.code, comment: 'C-STORE-RQ without Affected SOP Class/Instance UID' };
    // Message ID and Priority are mandatory too (PS3.7 Table 9.3-1); a command set that lies
    // about its length or has a US element of another size is not read with a guess.
    else if (cmd.messageId === undefined || !cmd.has(Tag.Priority)) refusal = { status: Status.MissingAttribute.code, comment: 'C-STORE-RQ without Message ID or Priority' };
    else if (cmd.malformed) refusal = { status: Status.MistypedArgument.code, comment: cmd.malformed.slice(0, 64) };
    else if (sopClassUid !== ctx.abstractSyntax) refusal = { status: Status.SopClassNotSupported.code, comment: 'SOP Class differs from the presentation context' };
    else if (sopClassUid === VERIFICATION_SOP_CLASS) refusal = { status: Status.SopClassNotSupported.code, comment: 'Verification is not a storage SOP Class' };
    if (refusal) {
      if (cmd.hasDataSet) this.expectDataSet(ctxId, undefined, refusal, respond);
      else {
        this.inFlight++;
        respond(Promise.resolve(refusal));
      }
      return;
    }
    const ts = transferSyntax(ctx.transferSyntax)!;
    const store = new StoreReception(this.deps.spool, {
      sopClassUid,
      sopInstanceUid,
      ts,
      callingAeTitle: this.callingAe,
      maxBytes: this.deps.config.maxObjectBytes,
      accessionKey: this.deps.accessionKey,
      backpressure: (pause) => this.pause('spool', pause),
    });
    this.expectDataSet(ctxId, store, { status: Status.ProcessingFailure.code }, respond);
  }

  /**
   * Storage Commitment: an N-ACTION-RQ from a modality (Request Storage Commitment) or an
   * N-EVENT-REPORT-RQ from a destination (the result of our request). The small data set is
   * held in memory, then handed to the commitment services; their status is the answer.
   * @see PS3.4 §J.3.2 (N-ACTION), §J.3.3 (N-EVENT-REPORT)
   */
  private onCommitment(ctxId: number, ctx: AcceptedContext, cmd: ReturnType<typeof decodeCommand>, field: number, messageId: number): void {
    const services = this.deps.commitment!;
    const action = field === CommandField.NActionRq;
    const rspField = action ? CommandField.NActionRsp : CommandField.NEventReportRsp;
    const typeId = cmd.us(action ? Tag.ActionTypeId : Tag.EventTypeId);
    const instance = action ? cmd.str(Tag.RequestedSopInstanceUid) : cmd.str(Tag.AffectedSopInstanceUid);
    const explicitVr = ctx.transferSyntax === TS.ExplicitVRLittleEndian;
    const respond = (o: Promise<StoreOutcome>) =>
      this.respond(ctxId, o, rspField, messageId, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, action ? { actionTypeId: typeId } : { eventTypeId: typeId });
    let refusal: StoreOutcome | undefined;
    if (instance !== STORAGE_COMMITMENT_INSTANCE) refusal = { status: Status.NoSuchObjectInstance.code, comment: 'not the Storage Commitment well-known SOP Instance' };
    else if (action && typeId !== ACTION_REQUEST_COMMITMENT) refusal = { status: Status.NoSuchActionType.code, comment: 'Action Type ID must be 1 (Request Storage Commitment)' };
    else if (!cmd.hasDataSet) refusal = { status: Status.MissingAttribute.code, comment: 'no data set' };
    if (refusal) {
      if (cmd.hasDataSet) this.expectDataSet(ctxId, undefined, refusal, respond);
      else {
        this.inFlight++;
        respond(Promise.resolve(refusal));
      }
      return;
    }
    const remoteAddress = normalizeAddress(this.socket.remoteAddress ?? '?');
    let finish!: (o: Promise<StoreOutcome>) => void;
    const result = new Promise<StoreOutcome>((resolve) => {
      finish = resolve;
    });
    const buffer = { parts: [] as Buffer[], bytes: 0 };
    this.reception = {
      ctx: ctxId,
      buffer,
      done: (override) => {
        if (override) return finish(Promise.resolve(override));
        const dataset = Buffer.concat(buffer.parts, buffer.bytes);
        finish(
          action
            ? services.onAction({ callingAeTitle: this.callingAe, remoteAddress, explicitVr, dataset, secure: this.socket instanceof TLSSocket })
            : services.onEventReport({ callingAeTitle: this.callingAe, explicitVr, dataset, eventTypeId: typeId }),
        );
      },
    };
    respond(result);
  }

  /**
   * The command announced a data set: route its fragments to `store`, or read and drop them
   * when the answer (`refusal`) is already decided. The response is queued now, so responses
   * keep request order, and resolves when the last fragment has been handled.
   */
  private expectDataSet(ctx: number, store: StoreReception | undefined, refusal: StoreOutcome, respond: (o: Promise<StoreOutcome>) => void): void {
    let finish!: (o: Promise<StoreOutcome>) => void;
    const result = new Promise<StoreOutcome>((resolve) => {
      finish = resolve;
    });
    this.reception = {
      ctx,
      ...(store ? { store } : {}),
      done: (override) => finish(override ? Promise.resolve(override) : store ? store.end() : Promise.resolve(refusal)),
    };
    respond(result);
  }

  /** Queue a response after all earlier ones. Never throws: an exception becomes 0x0110. */
  private respond(
    ctxId: number,
    outcome: Promise<StoreOutcome>,
    commandField: number,
    messageId: number,
    sopClassUid?: string,
    sopInstanceUid?: string,
    typeIds: { actionTypeId?: number | undefined; eventTypeId?: number | undefined } = {},
  ): void {
    const started = Date.now();
    const safe = outcome.catch((err: unknown) => toOutcome(err));
    this.tail = this.tail.then(async () => {
      const o = await safe;
      if (commandField === CommandField.CStoreRsp) this.account(o, sopInstanceUid ?? '', Date.now() - started);
      this.inFlight = Math.max(0, this.inFlight - 1);
      if (this.socket.destroyed || this.phase === 'closed') return;
      const rsp = encodeResponse({
        commandField,
        messageIdBeingRespondedTo: messageId,
        status: o.status,
        affectedSopClassUid: sopClassUid,
        affectedSopInstanceUid: sopInstanceUid,
        errorComment: o.status === Status.Success.code ? undefined : o.comment,
        ...typeIds,
      });
      crashpoint('before-response');
      for (const pdu of encodePData(ctxId, true, rsp, this.peerMaxPdu)) this.socket.write(pdu);
      crashpoint('after-response');
      if (this.inFlight === 0 && this.phase === 'established') this.arm(this.deps.config.idleTimeoutSeconds, 'idle timeout');
    }).catch((err: unknown) => {
      // A failure here must not poison the chain (later responses would never be sent): abort
      // this association, loudly, and keep the chain usable.
      this.log.error({ assoc: this.deps.id, err: (err as Error)?.message }, 'internal error while answering; association aborted');
      if (!this.socket.destroyed) this.socket.end(encodeAbort(Abort.Source.ServiceProvider, Abort.Reason.NotSpecified));
      this.phase = 'closed';
    });
  }

  private account(o: StoreOutcome, sopInstanceUid: string, ms: number): void {
    const fields = { assoc: this.deps.id, callingAe: this.callingAe, sopInstanceUid, status: `0x${hex4(o.status)}`, ms };
    if (category(o.status) === 'success') {
      this.counts.stored++;
      this.counts.bytes += o.record?.size ?? 0;
      if (this.deps.audit && o.record) {
        const k = `${o.record.studyInstanceUid ?? ''}|${o.record.sopClassUid}`;
        this.storedByStudy.set(k, (this.storedByStudy.get(k) ?? 0) + 1);
      }
      this.deps.stats.stored(o.record?.size ?? 0, this.callingAe);
      this.log.debug({ ...fields, id: o.record?.id, size: o.record?.size }, 'stored');
    } else {
      this.counts.failed++;
      this.deps.stats.failed(o.status);
      const err = o.error as { code?: string; message?: string } | undefined;
      this.log.warn({ ...fields, reason: o.comment, error: err?.code, detail: err?.message }, `C-STORE refused: ${describe(o.status).name}`);
    }
  }

  // ---- flow control, timers, teardown ---------------------------------------------------------

  private pause(reason: string, on: boolean): void {
    if (on) this.pausedBy.add(reason);
    else this.pausedBy.delete(reason);
    if (this.pausedBy.size > 0) {
      // We are the slow side: the peer's silence is not its fault.
      this.socket.pause();
      this.disarm();
    } else if (!this.socket.destroyed) {
      this.socket.resume();
      if (this.phase === 'established' && this.inFlight === 0) this.arm(this.deps.config.idleTimeoutSeconds, 'idle timeout');
    }
  }

  private arm(seconds: number, why: string): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.log.warn({ assoc: this.deps.id, callingAe: this.callingAe || undefined, phase: this.phase, seconds }, `association closed: ${why}`);
      if (this.phase === 'established') this.socket.write(encodeAbort(Abort.Source.ServiceProvider, Abort.Reason.NotSpecified));
      this.destroy();
    }, seconds * 1000);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private protocolError(err: unknown): void {
    const e = err instanceof DicomParseError ? err : new DicomParseError('PDU_MALFORMED', String((err as Error)?.message ?? err));
    const reason =
      e.code === 'PDU_UNRECOGNIZED' ? Abort.Reason.UnrecognizedPdu : e.code === 'PDU_UNEXPECTED' ? Abort.Reason.UnexpectedPdu : Abort.Reason.InvalidPduParameterValue;
    this.log.warn({ assoc: this.deps.id, remote: normalizeAddress(this.socket.remoteAddress ?? '?'), callingAe: this.callingAe || undefined, code: e.code }, `protocol error, association aborted: ${e.message}`);
    if (!this.socket.destroyed) this.socket.end(encodeAbort(Abort.Source.ServiceProvider, reason));
    this.phase = 'closed';
    void this.abortReception();
    this.arm(2, 'peer did not close after A-ABORT');
  }

  private async abortReception(): Promise<void> {
    const r = this.reception;
    this.reception = undefined;
    if (!r) return;
    await r.store?.abort();
    r.done({ status: Status.ProcessingFailure.code, comment: 'association ended before the data set was complete' });
  }

  private destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    this.disarm();
    const partial = this.reception?.store?.bytes;
    this.phase = 'closed';
    if (this.reception) {
      void this.abortReception().then(() =>
        this.log.warn({ assoc: this.deps.id, callingAe: this.callingAe, bytes: partial }, 'association ended in the middle of a data set; partial object discarded'),
      );
    }
    // Not by phase: a protocol error sets 'closed' before the socket closes, and the
    // association must still leave activeAssociations.
    const address = normalizeAddress(this.socket.remoteAddress ?? '?');
    for (const [k, count] of this.storedByStudy) {
      const [studyUid = '', sopClassUid = ''] = k.split('|');
      this.deps.audit?.instancesReceived({ callingAe: this.callingAe, address, studyUid, sopClassUid, count });
    }
    this.storedByStudy.clear();
    if (this.counted) {
      this.counted = false;
      this.deps.stats.associationClosed();
      this.log.info({ assoc: this.deps.id, callingAe: this.callingAe, ...this.counts, seconds: (Date.now() - this.startedAt) / 1000 }, 'association closed');
    }
    this.deps.stats.connectionClosed();
  }
}
