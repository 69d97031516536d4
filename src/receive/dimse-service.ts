import type { GatewayConfig } from '../config/types.js';
import { type Command, CommandField, decodeCommand, encodeResponse } from '../dicom/command.js';
import { VERIFICATION_SOP_CLASS } from '../dicom/sop-classes.js';
import { category, describe, hex4, Status } from '../dicom/status.js';
import { ACTION_REQUEST_COMMITMENT, STORAGE_COMMITMENT_INSTANCE, STORAGE_COMMITMENT_PUSH_MODEL } from '../dicom/storage-commitment.js';
import { Tag } from '../dicom/tags.js';
import { transferSyntax, TS } from '../dicom/transfer-syntaxes.js';
import type { MessageSink } from '../dicom/ul/pdv.js';
import { DicomParseError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Spool } from '../spool/spool.js';
import { crashpoint } from '../util/crashpoint.js';
import type { AcceptedContext, CommitPeer } from './negotiation.js';
import type { ReceiveStats } from './stats.js';
import { type StoreOutcome, StoreReception, toOutcome } from './store-reception.js';

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

/** What the service needs of the association it runs on. */
export interface DimseLink {
  /** Send a whole command set; false when the association can no longer carry it. */
  send(contextId: number, isCommand: boolean, data: Buffer): boolean;
  /** A response is being prepared (+1) or is out (−1): the peer is not idle meanwhile. */
  busy(delta: 1 | -1): void;
  /** Stop reading from the peer while `reason` holds (backpressure). */
  hold(reason: string, on: boolean): void;
  /** Abort the association (an internal failure while answering). */
  abort(): void;
}

export interface DimseServiceOptions {
  readonly id: number;
  readonly config: GatewayConfig['receive'];
  readonly spool: Spool;
  readonly log: Logger;
  readonly stats: ReceiveStats;
  readonly commitment?: CommitmentServices | undefined;
  readonly accessionKey?: Buffer | undefined;
  readonly patientRef?: ((patientId: string | undefined) => string | undefined) | undefined;
  /** Stored objects are counted per study, SOP class and patient participant for the audit trail. */
  readonly auditing: boolean;
  readonly contexts: ReadonlyMap<number, AcceptedContext>;
  readonly callingAe: string;
  readonly remoteAddress: string;
  readonly secure: boolean;
}

/** The data set announced by the last command: where its fragments go, and what to do at its end. */
interface Reception {
  ctx: number;
  store?: StoreReception;
  buffer?: { parts: Buffer[]; bytes: number };
  done: (override?: StoreOutcome) => void;
}

/**
 * The DIMSE services the gateway offers as an SCP, on one established association: Verification
 * (C-ECHO), Storage (C-STORE, data sets streamed to the spool) and the Storage Commitment Push
 * Model (N-ACTION from modalities, N-EVENT-REPORT from destinations). Every request gets a
 * response with a specific status, in request order; an exception while handling one becomes
 * 0x0110 Processing Failure, never a dead association. A message that breaks the protocol
 * throws {@link DicomParseError}: the upper layer aborts the association.
 *
 * @see PS3.7 §9.1 (C-ECHO, C-STORE), §10.1 (N-ACTION, N-EVENT-REPORT), PS3.4 Annexes A, B, J
 */
export class DimseService implements MessageSink {
  /** Responses go out in request order. */
  private tail: Promise<void> = Promise.resolve();
  private reception: Reception | undefined;
  readonly counts = { stored: 0, failed: 0, bytes: 0, echoes: 0 };
  /** Stored objects by "study|SOP class", for one audit message each (PS3.15 A.5.3.5). */
  readonly storedByStudy = new Map<string, number>();

  constructor(
    private readonly link: DimseLink,
    private readonly o: DimseServiceOptions,
  ) {}

  /** Resolves once every response due so far has been sent (or could not be). */
  drained(): Promise<void> {
    return this.tail;
  }

  /** Bytes of the data set being received, if one is half received. */
  get partialBytes(): number | undefined {
    return this.reception ? (this.reception.store?.bytes ?? 0) : undefined;
  }

  // ---- MessageSink ---------------------------------------------------------------------------

  onCommand(ctxId: number, buf: Buffer): void {
    const ctx = this.o.contexts.get(ctxId);
    if (!ctx) throw new DicomParseError('PDV_MALFORMED', `PDV on presentation context ${ctxId}, which was not accepted`);
    if (this.reception) throw new DicomParseError('PDV_MALFORMED', 'command fragment received while a data set was expected');
    const cmd = decodeCommand(buf);
    const field = cmd.commandField;
    const messageId = cmd.messageId ?? 0;
    if (field === CommandField.CEchoRq) {
      this.counts.echoes++;
      this.answerNow(ctxId, { status: Status.Success.code }, CommandField.CEchoRsp, messageId, cmd.affectedSopClassUid);
      return;
    }
    if (field === CommandField.CCancelRq) return; // nothing of ours is cancellable
    if ((field === CommandField.NActionRq || field === CommandField.NEventReportRq) && ctx.abstractSyntax === STORAGE_COMMITMENT_PUSH_MODEL && this.o.commitment) {
      return this.onCommitment(ctxId, ctx, cmd, field);
    }
    if (field !== CommandField.CStoreRq) {
      this.o.log.warn({ assoc: this.o.id, commandField: `0x${hex4(field ?? 0)}` }, 'unsupported DIMSE command');
      const rsp = ((field ?? 0) | 0x8000) & 0xffff;
      const unsupported = { status: Status.UnrecognizedOperation.code, comment: 'operation not supported by this SCP' };
      if (cmd.hasDataSet) this.expectDataSet(ctxId, undefined, unsupported, (o) => this.respond(ctxId, o, rsp, messageId, cmd.affectedSopClassUid));
      else this.answerNow(ctxId, unsupported, rsp, messageId, cmd.affectedSopClassUid);
      return;
    }
    this.onStore(ctxId, ctx, cmd, messageId);
  }

  onData(ctxId: number, data: Buffer): void {
    const r = this.reception;
    if (!r) throw new DicomParseError('PDV_MALFORMED', 'data set fragment received without a command');
    if (r.ctx !== ctxId) throw new DicomParseError('PDV_MALFORMED', 'data set fragment on a different presentation context than its command');
    if (r.store) {
      r.store.write(data);
      crashpoint('mid-data');
    } else if (r.buffer) {
      r.buffer.bytes += data.length;
      if (r.buffer.bytes > MAX_BUFFERED_DATASET) throw new DicomParseError('DATASET_TOO_LARGE', `Storage Commitment data set exceeds ${MAX_BUFFERED_DATASET} bytes`);
      r.buffer.parts.push(Buffer.from(data));
    }
  }

  onDataEnd(ctxId: number): void {
    const r = this.reception;
    if (!r) throw new DicomParseError('PDV_MALFORMED', 'data set fragment received without a command');
    if (r.ctx !== ctxId) throw new DicomParseError('PDV_MALFORMED', 'data set fragment on a different presentation context than its command');
    this.reception = undefined;
    this.link.busy(1);
    r.done();
  }

  /** The association ended with a data set half received: discard it, fail its response. */
  async abortReception(): Promise<void> {
    const r = this.reception;
    this.reception = undefined;
    if (!r) return;
    await r.store?.abort();
    r.done({ status: Status.ProcessingFailure.code, comment: 'association ended before the data set was complete' });
  }

  // ---- the services ---------------------------------------------------------------------------

  /** @see PS3.7 §9.1.1, §9.3.1 (C-STORE-RQ: mandatory fields) */
  private onStore(ctxId: number, ctx: AcceptedContext, cmd: Command, messageId: number): void {
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
      else this.answerNow(ctxId, refusal, CommandField.CStoreRsp, messageId, sopClassUid, sopInstanceUid);
      return;
    }
    const store = new StoreReception(this.o.spool, {
      sopClassUid,
      sopInstanceUid,
      ts: transferSyntax(ctx.transferSyntax)!,
      callingAeTitle: this.o.callingAe,
      maxBytes: this.o.config.maxObjectBytes,
      accessionKey: this.o.accessionKey,
      patientRef: this.o.patientRef,
      backpressure: (pause) => this.link.hold('spool', pause),
    });
    this.expectDataSet(ctxId, store, { status: Status.ProcessingFailure.code }, respond);
  }

  /**
   * Storage Commitment: an N-ACTION-RQ from a modality (Request Storage Commitment) or an
   * N-EVENT-REPORT-RQ from a destination (the result of our request). The small data set is
   * held in memory, then handed to the commitment services; their status is the answer.
   * @see PS3.4 §J.3.2 (N-ACTION), §J.3.3 (N-EVENT-REPORT)
   */
  private onCommitment(ctxId: number, ctx: AcceptedContext, cmd: Command, field: number): void {
    const services = this.o.commitment!;
    const messageId = cmd.messageId ?? 0;
    const action = field === CommandField.NActionRq;
    const rspField = action ? CommandField.NActionRsp : CommandField.NEventReportRsp;
    const typeId = cmd.us(action ? Tag.ActionTypeId : Tag.EventTypeId);
    const instance = action ? cmd.str(Tag.RequestedSopInstanceUid) : cmd.str(Tag.AffectedSopInstanceUid);
    const explicitVr = ctx.transferSyntax === TS.ExplicitVRLittleEndian;
    const typeIds = action ? { actionTypeId: typeId } : { eventTypeId: typeId };
    const respond = (o: Promise<StoreOutcome>) => this.respond(ctxId, o, rspField, messageId, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, typeIds);
    let refusal: StoreOutcome | undefined;
    if (instance !== STORAGE_COMMITMENT_INSTANCE) refusal = { status: Status.NoSuchObjectInstance.code, comment: 'not the Storage Commitment well-known SOP Instance' };
    else if (action && typeId !== ACTION_REQUEST_COMMITMENT) refusal = { status: Status.NoSuchActionType.code, comment: 'Action Type ID must be 1 (Request Storage Commitment)' };
    else if (!cmd.hasDataSet) refusal = { status: Status.MissingAttribute.code, comment: 'no data set' };
    if (refusal) {
      if (cmd.hasDataSet) this.expectDataSet(ctxId, undefined, refusal, respond);
      else this.answerNow(ctxId, refusal, rspField, messageId, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, typeIds);
      return;
    }
    const { result, finish } = deferred();
    const buffer = { parts: [] as Buffer[], bytes: 0 };
    this.reception = {
      ctx: ctxId,
      buffer,
      done: (override) => {
        if (override) return finish(Promise.resolve(override));
        const dataset = Buffer.concat(buffer.parts, buffer.bytes);
        const { callingAe: callingAeTitle, remoteAddress, secure } = this.o;
        finish(action ? services.onAction({ callingAeTitle, remoteAddress, explicitVr, dataset, secure }) : services.onEventReport({ callingAeTitle, explicitVr, dataset, eventTypeId: typeId }));
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
    const { result, finish } = deferred();
    this.reception = {
      ctx,
      ...(store ? { store } : {}),
      done: (override) => finish(override ? Promise.resolve(override) : store ? store.end() : Promise.resolve(refusal)),
    };
    respond(result);
  }

  // ---- responses ------------------------------------------------------------------------------

  /** A request without a data set, answered without waiting for anything. */
  private answerNow(ctxId: number, o: StoreOutcome, commandField: number, messageId: number, sopClassUid?: string, sopInstanceUid?: string, typeIds: TypeIds = {}): void {
    this.link.busy(1);
    this.respond(ctxId, Promise.resolve(o), commandField, messageId, sopClassUid, sopInstanceUid, typeIds);
  }

  /** Queue a response after all earlier ones. Never throws: an exception becomes 0x0110. */
  private respond(ctxId: number, outcome: Promise<StoreOutcome>, commandField: number, messageId: number, sopClassUid?: string, sopInstanceUid?: string, typeIds: TypeIds = {}): void {
    const started = Date.now();
    const safe = outcome.catch((err: unknown) => toOutcome(err));
    this.tail = this.tail
      .then(async () => {
        const o = await safe;
        if (commandField === CommandField.CStoreRsp) this.account(o, sopInstanceUid ?? '', Date.now() - started);
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
        if (this.link.send(ctxId, true, rsp)) crashpoint('after-response');
        this.link.busy(-1);
      })
      .catch((err: unknown) => {
        // A failure here must not poison the chain (later responses would never be sent): abort
        // this association, loudly, and keep the chain usable.
        this.o.log.error({ assoc: this.o.id, err: (err as Error)?.message }, 'internal error while answering; association aborted');
        this.link.busy(-1);
        this.link.abort();
      });
  }

  private account(o: StoreOutcome, sopInstanceUid: string, ms: number): void {
    const fields = { assoc: this.o.id, callingAe: this.o.callingAe, sopInstanceUid, status: `0x${hex4(o.status)}`, ms };
    if (category(o.status) === 'success') {
      this.counts.stored++;
      this.counts.bytes += o.record?.size ?? 0;
      if (this.o.auditing && o.record) {
        // JSON, not a separator: a Patient ID in clear may hold any character.
        const k = JSON.stringify([o.record.studyInstanceUid ?? '', o.record.sopClassUid, o.record.patientRef ?? '']);
        this.storedByStudy.set(k, (this.storedByStudy.get(k) ?? 0) + 1);
      }
      this.o.stats.stored(o.record?.size ?? 0, this.o.callingAe);
      this.o.log.debug({ ...fields, id: o.record?.id, size: o.record?.size }, 'stored');
    } else {
      this.counts.failed++;
      this.o.stats.failed(o.status);
      const err = o.error as { code?: string; message?: string } | undefined;
      this.o.log.warn({ ...fields, reason: o.comment, error: err?.code, detail: err?.message }, `C-STORE refused: ${describe(o.status).name}`);
    }
  }
}

type TypeIds = { actionTypeId?: number | undefined; eventTypeId?: number | undefined };

/** A promise of an outcome, and the function that settles it with another promise. */
function deferred(): { result: Promise<StoreOutcome>; finish: (o: Promise<StoreOutcome>) => void } {
  let finish!: (o: Promise<StoreOutcome>) => void;
  const result = new Promise<StoreOutcome>((resolve) => {
    finish = resolve;
  });
  return { result, finish };
}
