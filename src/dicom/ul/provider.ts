import type { Socket } from 'node:net';
import { DicomParseError } from '../../errors.js';
import {
  Abort,
  type AssociateAc,
  type AssociateRq,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeAssociateRq,
  encodeAbort,
  encodeReleaseRp,
  encodeReleaseRq,
  PduType,
} from '../pdu.js';
import { type PduHandler, PduReader } from '../pdu-reader.js';
import { ACTIONS, type Action, type Event, PEER_EVENTS, type State, transition } from './fsm.js';
import { encodePData, encodePDataHeader, PdvAssembler } from './pdv.js';
import { type AbortInfo, abortReason, outOfPlace, PrimitiveNotAllowed, type UpperLayerOptions, type UpperLayerUser } from './primitives.js';

export type { AbortInfo, UpperLayerOptions, UpperLayerUser } from './primitives.js';
export { PrimitiveNotAllowed } from './primitives.js';
import { Timer } from './timer.js';

/** The PDU types that are events of their own; P-DATA-TF (Evt10) is streamed. */
const PDU_EVENT: Readonly<Record<number, Event>> = {
  [PduType.AssociateRq]: 'Evt6',
  [PduType.AssociateAc]: 'Evt3',
  [PduType.AssociateRj]: 'Evt4',
  [PduType.ReleaseRq]: 'Evt12',
  [PduType.ReleaseRp]: 'Evt13',
  [PduType.Abort]: 'Evt16',
};


/** What an event carries into its action. */
interface Input {
  /** The side effect of a local primitive (AE-1, AE-7, AE-8, DT-1, AR-1, AR-4, AR-7, AR-9). */
  local?: () => void;
  rq?: AssociateRq;
  ac?: AssociateAc;
  rj?: { result: number; source: number; reason: number };
  /** A-ABORT PDU body (Evt16). */
  abortBody?: Buffer;
  /** Evt19: what was wrong; Evt15: the local failure, if any. */
  error?: Error;
}

/**
 * The DICOM Upper Layer service provider for one association: the PS3.8 state machine
 * ({@link transition}) driving one socket. It frames PDUs, carries out the table's actions,
 * runs the ARTIM timer, and hands DIMSE messages up through a {@link PdvAssembler}.
 *
 * Everything that arrives from the peer is an event looked up in the table, so a PDU out of
 * place gets the A-ABORT the standard prescribes, in every state; every primitive the local user
 * issues is checked against the table too. A PDU that does not decode is Evt19.
 *
 * @see PS3.8 §9.2 (state machine), §9.3 (PDUs), §9.1.5 (ARTIM)
 */
export class UpperLayer implements PduHandler {
  private current: State = 'Sta1';
  private readonly reader: PduReader;
  private readonly assembler: PdvAssembler;
  private readonly artim = new Timer(() => this.fire('Evt18'));
  private socket: Socket | undefined;
  /** P-DATA-TF content is handed up only in DT-2 and AR-6; otherwise (AA-6, AA-8) it is skipped. */
  private deliverPData = false;
  /** After an unreadable byte stream nothing more is read: PDU framing cannot be trusted. */
  private reading = true;
  private closedReported = false;
  private socketError: Error | undefined;
  /** The A-ASSOCIATE-RQ to send once connected (requestor, AE-2). */
  private pendingRq: Buffer | undefined;

  constructor(
    private readonly opts: UpperLayerOptions,
    private readonly user: UpperLayerUser,
  ) {
    this.reader = new PduReader(this, { maxPDataLength: opts.maxPDataLength, maxControlPduLength: opts.maxControlPduLength });
    this.assembler = new PdvAssembler(
      {
        onCommand: (ctx, cmd) => user.onCommand?.(ctx, cmd),
        onData: (ctx, data) => user.onData?.(ctx, data),
        onDataEnd: (ctx) => user.onDataEnd?.(ctx),
      },
      opts.maxCommandBytes,
    );
  }

  get state(): State {
    return this.current;
  }

  /** True while P-DATA may be sent: Sta6, and Sta8 (responses still due after the peer asked to release). */
  get canSend(): boolean {
    return this.current === 'Sta6' || this.current === 'Sta8';
  }

  /** True while a command or data set is half received (some of its fragments, not the last). */
  get midMessage(): boolean {
    return !this.assembler.idle;
  }

  // ---- transport -------------------------------------------------------------------------

  /** Evt5, acceptor: a transport connection arrived (AE-5 starts ARTIM). */
  attach(socket: Socket): void {
    this.bind(socket);
    this.fire('Evt5');
  }

  /**
   * Evt1, requestor: connect with `open` (AE-1), then send `associateRq` once `connectEvent`
   * fires (Evt2, AE-2): 'connect' for TCP, 'secureConnect' for TLS (after the handshake).
   */
  request(associateRq: Buffer, open: () => Socket, connectEvent: 'connect' | 'secureConnect'): void {
    this.pendingRq = associateRq;
    this.fire('Evt1', {
      local: () => {
        const socket = open();
        this.bind(socket);
        socket.once(connectEvent, () => this.fire('Evt2'));
      },
    });
  }

  private bind(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('close', () => this.onSocketClose());
  }

  private onSocketData(chunk: Buffer): void {
    if (!this.reading) return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.failed(err);
    }
  }

  private onSocketClose(): void {
    this.artim.stop();
    // Sta1 here means we closed it ourselves (AE-4, AR-3, AA-2, AA-3): the close is expected.
    if (this.current !== 'Sta1') this.fire('Evt17');
    if (!this.closedReported) {
      this.closedReported = true;
      this.user.onClosed?.();
    }
  }

  /** An exception while handling the peer's bytes: the peer's fault (Evt19) or ours (Evt15). */
  private failed(err: unknown): void {
    if (!this.reading || this.current === 'Sta1') {
      // Bytes after the end (more PDUs in the chunk that carried an A-ABORT): nothing to answer.
      this.reading = false;
      this.close();
      return;
    }
    this.reading = false;
    if (err instanceof DicomParseError) this.fire('Evt19', { error: err });
    else if (transition(this.current, 'Evt15')) this.fire('Evt15', { error: err instanceof Error ? err : new Error(String(err)) });
    else this.close();
  }

  // ---- PduHandler: what the reader found in the byte stream ---------------------------------

  onPdu(type: number, body: Buffer): void {
    if (!this.reading) return;
    const event = PDU_EVENT[type]!;
    // Decoding is part of receiving: a PDU that does not decode is an invalid PDU (Evt19).
    let input: Input;
    try {
      input =
        event === 'Evt6' ? { rq: decodeAssociateRq(body) } : event === 'Evt3' ? { ac: decodeAssociateAc(body) } : event === 'Evt4' ? { rj: decodeAssociateRj(body) } : event === 'Evt16' ? { abortBody: body } : {};
    } catch (err) {
      throw err instanceof DicomParseError ? err : new DicomParseError('PDU_MALFORMED', String((err as Error)?.message ?? err));
    }
    this.fire(event, input);
    this.user.onActivity?.();
  }

  onPData(): void {
    this.deliverPData = false;
    if (!this.reading) return;
    this.fire('Evt10');
  }

  onPdvStart(contextId: number, control: number): void {
    if (this.deliverPData) this.assembler.start(contextId, control);
  }

  onPdvData(data: Buffer): void {
    if (this.deliverPData) this.assembler.data(data);
  }

  onPdvEnd(): void {
    if (this.deliverPData) this.assembler.end();
    this.user.onActivity?.();
  }

  // ---- local primitives ------------------------------------------------------------------

  /** Evt7: accept the association with this A-ASSOCIATE-AC (AE-7). */
  accept(associateAc: Buffer): void {
    this.fire('Evt7', { local: () => this.write(associateAc) });
  }

  /** Evt8: reject it with this A-ASSOCIATE-RJ (AE-8). */
  reject(associateRj: Buffer): void {
    this.fire('Evt8', { local: () => this.write(associateRj) });
  }

  /** Evt9: a whole command or data set as P-DATA-TF PDUs (DT-1, AR-7). */
  send(contextId: number, isCommand: boolean, data: Buffer, peerMaxPduLength: number): void {
    this.fire('Evt9', {
      local: () => {
        for (const pdu of encodePData(contextId, isCommand, data, peerMaxPduLength)) this.write(pdu);
      },
    });
  }

  /**
   * Evt9 for one PDV of a streamed data set; `done` is called once the bytes are with the kernel,
   * so the caller may reuse `data` and sending keeps pace with the network.
   *
   * The hot path of forwarding (one call per PDV): the table is consulted as for every event, but
   * DT-1 and AR-7 leave the state as it is, so no event input is built. Header and value go out
   * in one write (corked).
   * @throws PrimitiveNotAllowed when the state allows no P-DATA
   */
  sendPdv(contextId: number, control: number, data: Buffer, done: (err?: Error | null) => void): void {
    const from = this.current;
    const action = transition(from, 'Evt9');
    if (action === undefined) throw new PrimitiveNotAllowed('Evt9', from);
    const s = this.socket!;
    s.cork();
    s.write(encodePDataHeader(contextId, control, data.length));
    s.write(data, done);
    s.uncork();
    this.opts.onTransition?.({ from, event: 'Evt9', action, to: from });
  }

  /** Evt11: ask to release (AR-1). */
  releaseRequest(): void {
    this.fire('Evt11', { local: () => this.write(encodeReleaseRq()) });
  }

  /** Evt14: agree to the peer's release (AR-4, AR-9). */
  releaseResponse(): void {
    this.fire('Evt14', { local: () => this.write(encodeReleaseRp()) });
  }

  /**
   * Evt15: abort (AA-1, or AA-2 while connecting). Where the table has no A-ABORT request (Sta1,
   * Sta2, Sta13: there is no association to abort) the connection is simply closed.
   */
  abort(): void {
    if (transition(this.current, 'Evt15')) this.fire('Evt15');
    else this.close();
  }

  /**
   * A-ABORT, then close the connection once the A-ABORT is with the kernel, without waiting for
   * the peer to close it (ARTIM): for a requestor whose peer has stopped answering, which would
   * not close it either.
   */
  abortAndClose(): void {
    this.abort();
    const s = this.socket;
    if (!s || s.destroyed) return;
    this.reading = false;
    this.artim.stop();
    s.end(() => s.destroy());
  }

  /** Drop the transport connection, whatever the state (shutdown, or a peer that will not close). */
  close(): void {
    this.reading = false;
    this.artim.stop();
    this.socket?.destroy();
  }

  /** Stop or resume reading from the peer (backpressure). */
  pauseReading(paused: boolean): void {
    if (!this.socket || this.socket.destroyed) return;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }

  // ---- the machine -----------------------------------------------------------------------

  /**
   * Look `event` up in the table, carry out its action, move to the next state, then issue the
   * action's indication to the user (after the move, so a primitive issued from inside the
   * indication, like accept() from onAssociateRequest, sees the new state).
   */
  private fire(event: Event, input: Input = {}): void {
    const from = this.current;
    const action = transition(from, event);
    if (action === undefined) {
      // A PDU, close or timer after the connection is gone (Sta1) or before it exists (Sta4).
      if (PEER_EVENTS.includes(event) || event === 'Evt18') return;
      throw new PrimitiveNotAllowed(event, from);
    }
    const { to, indicate } = this.perform(action, event, from, input);
    this.current = to;
    this.opts.onTransition?.({ from, event, action, to });
    if (!indicate) return;
    try {
      indicate();
    } catch (err) {
      this.failed(err);
    }
  }

  private perform(action: Action, event: Event, from: State, input: Input): { to: State; indicate?: () => void } {
    const next = ACTIONS[action].next[0] as State;
    switch (action) {
      case 'AE-1':
      case 'AE-7':
      case 'DT-1':
      case 'AR-1':
      case 'AR-7':
      case 'AR-9':
        input.local!();
        return { to: next };
      case 'AE-2':
        this.write(this.pendingRq!);
        this.pendingRq = undefined;
        return { to: next };
      case 'AE-3':
        return { to: next, indicate: () => this.user.onAssociateAccept?.(input.ac!) };
      case 'AE-4':
        this.close();
        return { to: next, indicate: () => this.user.onAssociateReject?.(input.rj!) };
      case 'AE-5':
        this.artim.start(this.opts.artimSeconds);
        return { to: next };
      case 'AE-6':
        // Every request that decodes is acceptable to this provider: what it asks for (protocol
        // version, application context, AE titles, contexts) is for the user to judge.
        this.artim.stop();
        return { to: 'Sta3', indicate: () => this.user.onAssociateRequest?.(input.rq!) };
      case 'AE-8':
      case 'AR-4':
        input.local!();
        this.artim.start(this.opts.artimSeconds);
        return { to: next };
      case 'DT-2':
      case 'AR-6':
        this.deliverPData = true;
        return { to: next };
      case 'AR-2':
        return { to: next, indicate: () => this.user.onReleaseRequest?.() };
      case 'AR-3':
        this.close();
        return { to: next, indicate: () => this.user.onReleaseConfirm?.() };
      case 'AR-5':
      case 'AA-5':
        this.artim.stop();
        return { to: next };
      case 'AR-8':
        return { to: this.opts.role === 'requestor' ? 'Sta9' : 'Sta10', indicate: () => this.user.onReleaseRequest?.() };
      case 'AR-10':
        return { to: next, indicate: () => this.user.onReleaseConfirm?.() };
      case 'AA-1': {
        this.reading = event === 'Evt15' && this.reading;
        this.sendAbort(Abort.Source.ServiceUser, Abort.Reason.NotSpecified);
        this.artim.start(this.opts.abortArtimSeconds ?? this.opts.artimSeconds);
        const info: AbortInfo =
          event === 'Evt15'
            ? { kind: 'local', source: Abort.Source.ServiceUser, reason: Abort.Reason.NotSpecified, ...(input.error ? { error: input.error } : {}) }
            : { kind: 'protocol', source: Abort.Source.ServiceUser, reason: Abort.Reason.NotSpecified, error: input.error ?? outOfPlace(event, from) };
        return { to: next, indicate: () => this.user.onAbort?.(info) };
      }
      case 'AA-2':
        this.close();
        return { to: next };
      case 'AA-3': {
        this.close();
        const b = input.abortBody;
        const info: AbortInfo = b && b.length >= 4 ? { kind: 'peer', source: b[2]!, reason: b[3]! } : { kind: 'peer' };
        return { to: next, indicate: () => this.user.onAbort?.(info) };
      }
      case 'AA-4': {
        const info: AbortInfo = { kind: 'transport', ...(this.socketError ? { error: this.socketError } : {}) };
        return { to: next, indicate: () => this.user.onAbort?.(info) };
      }
      case 'AA-6':
        return { to: next };
      case 'AA-7':
        this.sendAbort(Abort.Source.ServiceProvider, abortReason(event, input.error));
        return { to: next };
      case 'AA-8': {
        this.reading = false;
        const reason = abortReason(event, input.error);
        this.sendAbort(Abort.Source.ServiceProvider, reason);
        this.artim.start(this.opts.abortArtimSeconds ?? this.opts.artimSeconds);
        const info: AbortInfo = { kind: 'protocol', source: Abort.Source.ServiceProvider, reason, error: input.error ?? outOfPlace(event, from) };
        return { to: next, indicate: () => this.user.onAbort?.(info) };
      }
    }
  }

  /**
   * Our side of the connection stays open after an A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT: the
   * peer closes it (or ARTIM does), and in Sta13 we may still have to send an A-ABORT (AA-7).
   */
  private write(pdu: Buffer): void {
    const s = this.socket;
    if (!s || s.destroyed || s.writableEnded) return;
    s.write(pdu);
  }

  private sendAbort(source: number, reason: number): void {
    this.write(encodeAbort(source, reason));
  }
}
