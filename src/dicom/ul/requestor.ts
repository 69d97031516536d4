import net from 'node:net';
import tls from 'node:tls';
import { AssociationError, DicomParseError } from '../../errors.js';
import { type Command, CommandField, DATA_SET_PRESENT, decodeCommand, encodeCommand, NO_DATA_SET } from '../command.js';
import { type AssociateAc, ContextResult, encodeAssociateRq, type ProposedContext, type RoleSelection } from '../pdu.js';
import { VERIFICATION_SOP_CLASS } from '../sop-classes.js';
import { Tag } from '../tags.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../uids.js';
import { maxFragment, pdvControl } from './pdv.js';
import { type AbortInfo, UpperLayer } from './provider.js';

export interface RequestorOptions {
  host: string;
  port: number;
  callingAeTitle: string;
  calledAeTitle: string;
  contexts: readonly ProposedContext[];
  /** Our maximum P-DATA-TF length. */
  maxPduLength: number;
  connectTimeoutMs: number;
  /** Deadline for the A-ASSOCIATE-AC/RJ and the A-RELEASE-RP (and ARTIM after an abort). */
  acseTimeoutMs: number;
  /** Deadline for each response, and for the peer to read each PDV we send. */
  dimseTimeoutMs: number;
  /** SCP/SCU role selections to propose (PS3.7 D.3.3.4). */
  roles?: ReadonlyMap<string, RoleSelection> | undefined;
  /** DICOM over TLS (src/security/tls.ts tlsClientOptions); plain TCP without. */
  tls?: tls.ConnectionOptions | undefined;
}

/** A DIMSE request the peer sent us (e.g. N-EVENT-REPORT-RQ on a Storage Commitment association). */
export interface IncomingRequest {
  contextId: number;
  command: Command;
  dataset: Buffer | undefined;
}

/** Largest data set accepted from the peer (N-EVENT-REPORT results; responses carry none). */
const MAX_INCOMING_DATASET = 16 * 1024 * 1024;
/** Largest command set accepted from the peer. */
const MAX_COMMAND_BYTES = 64 * 1024;
/** Data PDVs are at most this long whatever the peer allows: memory per association stays bounded. */
const MAX_SEND_FRAGMENT = 1024 * 1024;

type Message = { kind: 'command' | 'dataset'; contextId: number; buf: Buffer } | { kind: 'end'; info?: AbortInfo | undefined };

/** Connection errors that are the network's, not the TLS handshake's. */
const NETWORK_ERRNO = /^E(CONNREFUSED|HOSTUNREACH|NETUNREACH|TIMEDOUT|CONNRESET)$/;

/**
 * An association as the requestor (SCU side): the upper layer in its requestor role, with a
 * deadline on every wait, whole DIMSE messages queued as they arrive, and the DIMSE requests the
 * gateway makes (C-ECHO, N-ACTION, N-EVENT-REPORT). `forward/` builds its streaming C-STORE on
 * top ({@link sendPdv}).
 *
 * Every failure is an {@link AssociationError} with a stable code, and leaves the association
 * aborted or closed: a peer that stops answering can never leave the caller waiting for ever.
 *
 * @see PS3.8 §7.1 (A-ASSOCIATE), §7.2 (A-RELEASE), §9.2 (state machine)
 */
export class Requestor {
  protected readonly ul: UpperLayer;
  private readonly inbox: Message[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private connected = false;
  private data: Buffer[] = [];
  private dataBytes = 0;
  private accepted = new Map<number, { abstractSyntax: string; transferSyntax: string }>();
  private peerMaxPdu = 0;
  private messageId = 0;
  /** Settles the establishment: the AC, or why there is none. */
  private established: { resolve: (ac: AssociateAc) => void; reject: (err: Error) => void } | undefined;

  constructor(protected readonly opts: RequestorOptions) {
    this.ul = new UpperLayer(
      {
        role: 'requestor',
        artimSeconds: opts.acseTimeoutMs / 1000,
        maxPDataLength: Math.max(opts.maxPduLength, 64 * 1024 * 1024),
        maxControlPduLength: 1024 * 1024,
        maxCommandBytes: MAX_COMMAND_BYTES,
      },
      {
        onAssociateAccept: (ac) => this.established?.resolve(ac),
        onAssociateReject: (rj) => {
          const transient = rj.result === 2;
          this.established?.reject(
            new AssociationError('ASSOCIATION_REJECTED', `association rejected (${transient ? 'transient' : 'permanent'}, source ${rj.source}, reason ${rj.reason})`, {
              retryable: transient,
              details: { result: rj.result, source: rj.source, reason: rj.reason },
            }),
          );
        },
        onCommand: (contextId, buf) => this.push({ kind: 'command', contextId, buf }),
        onData: (_ctx, chunk) => {
          // Only requests the peer sends us (N-EVENT-REPORT) carry data sets; they are small.
          this.dataBytes += chunk.length;
          if (this.dataBytes > MAX_INCOMING_DATASET) throw new DicomParseError('DATASET_TOO_LARGE', `peer data set exceeds ${MAX_INCOMING_DATASET} bytes`);
          this.data.push(Buffer.from(chunk));
        },
        onDataEnd: (contextId) => {
          this.push({ kind: 'dataset', contextId, buf: Buffer.concat(this.data, this.dataBytes) });
          this.data = [];
          this.dataBytes = 0;
        },
        // The acceptor asks to release (unusual, but allowed): agree; the association is over.
        onReleaseRequest: () => this.ul.releaseResponse(),
        onReleaseConfirm: () => this.end(),
        onAbort: (info) => this.end(info),
        onClosed: () => this.end(),
      },
    );
  }

  /** Connect and negotiate. @throws AssociationError (connect failure, rejection, timeout) */
  static async open<T extends Requestor>(this: new (opts: RequestorOptions) => T, opts: RequestorOptions): Promise<T> {
    const a = new this(opts);
    await a.establish();
    return a;
  }

  get isOpen(): boolean {
    return this.ul.state === 'Sta6';
  }

  /** The accepted context for this SOP class in exactly this transfer syntax, if any. */
  contextFor(abstractSyntax: string, transferSyntax: string): number | undefined {
    for (const [id, c] of this.accepted) if (c.abstractSyntax === abstractSyntax && c.transferSyntax === transferSyntax) return id;
    return undefined;
  }

  /** The transfer syntax accepted on a context. */
  transferSyntaxOf(ctxId: number): string | undefined {
    return this.accepted.get(ctxId)?.transferSyntax;
  }

  /** The next Message ID (PS3.7 §9.1: unique among the requests outstanding; 1–65535). */
  protected nextMessageId(): number {
    return (this.messageId = (this.messageId % 0xffff) + 1);
  }

  /** Largest data PDV value to send: the peer's maximum, bounded so memory stays bounded. */
  protected get dataFragment(): number {
    return Math.max(1024, Math.min(maxFragment(this.peerMaxPdu, 256 * 1024), MAX_SEND_FRAGMENT - 6));
  }

  // ---- sending ---------------------------------------------------------------------------

  /**
   * One PDV in its own P-DATA-TF; resolves once the bytes are with the kernel. A peer that does
   * not read for the DIMSE timeout loses the association.
   */
  protected sendPdv(ctxId: number, isCommand: boolean, data: Buffer, last: boolean): Promise<void> {
    if (!this.isOpen) return Promise.reject(new AssociationError('CONNECTION_LOST', 'association closed while sending', { retryable: true }));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.ul.close();
        reject(new AssociationError('SEND_TIMEOUT', `peer did not read for ${this.opts.dimseTimeoutMs} ms`, { retryable: true }));
      }, this.opts.dimseTimeoutMs);
      const failed = (err: Error) => {
        clearTimeout(t);
        reject(new AssociationError('CONNECTION_LOST', `connection lost while sending: ${err.message}`, { retryable: true, cause: err }));
      };
      try {
        this.ul.sendPdv(ctxId, pdvControl(isCommand, last), data, (err) => {
          if (err) return failed(err);
          clearTimeout(t);
          resolve();
        });
      } catch (err) {
        failed(err as Error);
      }
    });
  }

  /** A whole command or (small) data set, fragmented to the peer's maximum. */
  protected async sendMessage(ctxId: number, isCommand: boolean, data: Buffer): Promise<void> {
    const size = this.dataFragment;
    let off = 0;
    do {
      const piece = data.subarray(off, off + size);
      off += piece.length;
      await this.sendPdv(ctxId, isCommand, piece, off >= data.length);
    } while (off < data.length);
  }

  // ---- DIMSE requests --------------------------------------------------------------------

  /**
   * C-ECHO on an accepted Verification context; resolves with the response status.
   * @see PS3.7 §9.1.5 (C-ECHO), PS3.4 Annex A (Verification Service Class)
   */
  async echo(ctxId: number): Promise<number> {
    const messageId = this.nextMessageId();
    await this.sendMessage(
      ctxId,
      true,
      encodeCommand([
        { tag: Tag.AffectedSopClassUid, vr: 'UI', value: VERIFICATION_SOP_CLASS },
        { tag: Tag.CommandField, vr: 'US', value: CommandField.CEchoRq },
        { tag: Tag.MessageId, vr: 'US', value: messageId },
        { tag: Tag.CommandDataSetType, vr: 'US', value: NO_DATA_SET },
      ]),
    );
    const rsp = await this.response(CommandField.CEchoRsp, messageId, 'C-ECHO-RSP');
    return rsp.us(Tag.Status) ?? -1;
  }

  /**
   * Send one N-ACTION or N-EVENT-REPORT request (command, then its data set if any) and wait for
   * its response (Storage Commitment, both directions).
   * @see PS3.7 §10.1.4 (N-ACTION), §10.1.1 (N-EVENT-REPORT)
   */
  async request(
    ctxId: number,
    fields: { commandField: number; sopClassUid: string; sopInstanceUid: string; typeId: number },
    dataset: Buffer | undefined,
    what: string,
  ): Promise<{ status: number; errorComment: string | undefined }> {
    const messageId = this.nextMessageId();
    const nAction = fields.commandField === CommandField.NActionRq;
    const cmd = encodeCommand([
      { tag: nAction ? Tag.RequestedSopClassUid : Tag.AffectedSopClassUid, vr: 'UI', value: fields.sopClassUid },
      { tag: Tag.CommandField, vr: 'US', value: fields.commandField },
      { tag: Tag.MessageId, vr: 'US', value: messageId },
      { tag: Tag.CommandDataSetType, vr: 'US', value: dataset ? DATA_SET_PRESENT : NO_DATA_SET },
      { tag: nAction ? Tag.RequestedSopInstanceUid : Tag.AffectedSopInstanceUid, vr: 'UI', value: fields.sopInstanceUid },
      { tag: nAction ? Tag.ActionTypeId : Tag.EventTypeId, vr: 'US', value: fields.typeId },
    ]);
    await this.sendMessage(ctxId, true, cmd);
    if (dataset) await this.sendMessage(ctxId, false, dataset);
    const rsp = await this.response((fields.commandField | 0x8000) & 0xffff, messageId, what);
    return { status: rsp.us(Tag.Status) ?? -1, errorComment: rsp.str(Tag.ErrorComment) };
  }

  /**
   * Wait up to `timeoutMs` for a request from the peer (an N-EVENT-REPORT-RQ after our N-ACTION).
   * Resolves undefined when none comes in time or the association ends; the association stays open.
   */
  async nextRequest(timeoutMs: number): Promise<IncomingRequest | undefined> {
    const m = await this.next(timeoutMs, 'a request', { keepOpen: true });
    if (m === undefined || m.kind !== 'command') return undefined;
    const command = this.decode(m.buf, 'request from peer');
    let dataset: Buffer | undefined;
    if (command.hasDataSet) {
      const d = await this.next(this.opts.dimseTimeoutMs, 'the data set of a request');
      if (d.kind !== 'dataset') throw new AssociationError('NO_RESPONSE', 'peer request without its data set', { retryable: true });
      dataset = d.buf;
    }
    return { contextId: m.contextId, command, dataset };
  }

  /** Answer a request the peer sent (a response command set, no data set). */
  async respond(ctxId: number, rsp: Buffer): Promise<void> {
    if (this.isOpen) await this.sendMessage(ctxId, true, rsp);
  }

  /**
   * The response to our request `messageId`: a command set with the right Command Field and
   * Message ID Being Responded To. Anything else aborts the association.
   * @throws AssociationError
   */
  protected async response(commandField: number, messageId: number, what: string): Promise<Command> {
    const m = await this.next(this.opts.dimseTimeoutMs, what);
    if (m.kind !== 'command') {
      this.abort();
      throw new AssociationError('DIMSE_UNEXPECTED', `peer sent a data set where ${what} was due`, { retryable: true });
    }
    const rsp = this.decode(m.buf, what);
    if (rsp.commandField !== commandField || rsp.us(Tag.MessageIdBeingRespondedTo) !== messageId) {
      this.abort();
      throw new AssociationError('DIMSE_UNEXPECTED', `peer answered with command 0x${(rsp.commandField ?? 0).toString(16)} / message ${rsp.us(Tag.MessageIdBeingRespondedTo)} where ${what} was due`, {
        retryable: true,
      });
    }
    if (rsp.us(Tag.Status) === undefined) {
      this.abort();
      throw new AssociationError('DIMSE_NO_STATUS', `${what} without a status`, { retryable: true });
    }
    return rsp;
  }

  private decode(buf: Buffer, what: string): Command {
    try {
      return decodeCommand(buf);
    } catch (err) {
      this.abort();
      throw new AssociationError('PROTOCOL_ERROR', `unreadable ${what}: ${(err as Error).message}`, { retryable: true, cause: err });
    }
  }

  // ---- release and abort -----------------------------------------------------------------

  /** Orderly release (A-RELEASE); on any failure or timeout the connection is closed. */
  async release(): Promise<void> {
    if (!this.isOpen) {
      this.ul.close();
      return;
    }
    try {
      this.ul.releaseRequest();
      while (!this.ended) await this.next(this.opts.acseTimeoutMs, 'A-RELEASE-RP');
    } catch {
      /* released or not, we are done with it */
    } finally {
      this.ul.close();
    }
  }

  /**
   * A-ABORT: the peer learns that what it received of the current request is void; the
   * connection closes as soon as the A-ABORT is sent (the peer may be the reason we abort).
   */
  abort(): void {
    this.ul.abortAndClose();
  }

  // ---- establishment ---------------------------------------------------------------------

  private async establish(): Promise<void> {
    const o = this.opts;
    const rq = encodeAssociateRq({
      calledAeTitle: o.calledAeTitle,
      callingAeTitle: o.callingAeTitle,
      contexts: o.contexts,
      maxPduLength: o.maxPduLength,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME,
      roles: o.roles,
    });
    const ac = await new Promise<AssociateAc>((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.established = undefined;
        this.ul.abort();
        this.ul.close();
        reject(err);
      };
      let timer = setTimeout(() => fail(new AssociationError('CONNECT_TIMEOUT', `no ${o.tls ? 'TLS ' : ''}connection to ${o.host}:${o.port} within ${o.connectTimeoutMs} ms`, { retryable: true })), o.connectTimeoutMs);
      this.established = {
        resolve: (a) => {
          clearTimeout(timer);
          this.established = undefined;
          resolve(a);
        },
        reject: fail,
      };
      const event = o.tls ? 'secureConnect' : 'connect';
      this.ul.request(
        rq,
        () => {
          const s = o.tls ? tls.connect({ ...o.tls, host: o.host, port: o.port }) : net.connect({ host: o.host, port: o.port, noDelay: true });
          // TLS: usable only once the handshake (and the server's certificate check) succeeded.
          s.once(event, () => {
            this.connected = true;
            clearTimeout(timer);
            timer = setTimeout(() => fail(new AssociationError('DIMSE_TIMEOUT', `no A-ASSOCIATE-AC within ${o.acseTimeoutMs} ms`, { retryable: true })), o.acseTimeoutMs);
          });
          return s;
        },
        event,
      );
    });
    this.peerMaxPdu = ac.maxPduLength;
    for (const pc of o.contexts) {
      const r = ac.contexts.get(pc.id);
      if (r && r.result === ContextResult.Acceptance && pc.transferSyntaxes.includes(r.transferSyntax)) {
        this.accepted.set(pc.id, { abstractSyntax: pc.abstractSyntax, transferSyntax: r.transferSyntax });
      }
    }
  }

  /** Why the association (or its establishment) ended, as the error a waiting caller gets. */
  private endError(info: AbortInfo | undefined, what: string): AssociationError {
    const o = this.opts;
    if (!this.connected) {
      const err = info?.error as NodeJS.ErrnoException | undefined;
      const tlsFault = !!o.tls && !NETWORK_ERRNO.test(err?.code ?? '');
      return new AssociationError(tlsFault ? 'TLS_FAILED' : 'CONNECT_FAILED', `cannot connect to ${o.host}:${o.port}${tlsFault ? ' over TLS' : ''}: ${err?.code ?? err?.message ?? 'connection closed'}`, {
        retryable: true,
        cause: err,
      });
    }
    if (info?.kind === 'peer') return new AssociationError('ASSOCIATION_ABORTED', `peer aborted the association while we waited for ${what}`, { retryable: true, details: { source: info.source, reason: info.reason } });
    // An answer we cannot read is the destination's fault, and may be passing: retry.
    if (info?.kind === 'protocol') return new AssociationError('PROTOCOL_ERROR', `peer sent something unreadable: ${info.error?.message ?? 'protocol error'}`, { retryable: true, cause: info.error });
    return new AssociationError('NO_RESPONSE', `association ended without ${what}`, { retryable: true, cause: info?.error });
  }

  // ---- the inbox -------------------------------------------------------------------------

  private end(info?: AbortInfo): void {
    if (this.established) {
      this.established.reject(this.endError(info, 'A-ASSOCIATE-AC'));
      return;
    }
    if (this.ended) return;
    this.ended = true;
    this.push({ kind: 'end', info });
  }

  private push(m: Message): void {
    this.inbox.push(m);
    this.waiter?.();
  }

  /** The next message; the end of the association or a timeout (which aborts it) throws. */
  private async next(timeoutMs: number, what: string): Promise<Message & { kind: 'command' | 'dataset' }>;
  private async next(timeoutMs: number, what: string, opts: { keepOpen: true }): Promise<(Message & { kind: 'command' | 'dataset' }) | undefined>;
  private async next(timeoutMs: number, what: string, opts?: { keepOpen: true }): Promise<(Message & { kind: 'command' | 'dataset' }) | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        if (opts?.keepOpen) return undefined;
        this.abort();
        throw new AssociationError('DIMSE_TIMEOUT', `no ${what} within ${timeoutMs} ms`, { retryable: true });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const m = this.inbox[0]!;
    if (m.kind === 'end') {
      if (opts?.keepOpen) return undefined;
      throw this.endError(m.info, what); // stays in the inbox: every later wait ends the same way
    }
    this.inbox.shift();
    return m;
  }
}
