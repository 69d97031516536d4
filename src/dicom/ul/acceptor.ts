import type { Socket } from 'node:net';
import { type AssociateRq, type ContextDecision, encodeAssociateAc, encodeAssociateRj, type RoleSelection } from '../pdu.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../uids.js';
import type { State } from './fsm.js';
import type { MessageSink } from './pdv.js';
import { type AbortInfo, UpperLayer } from './provider.js';
import { Timer } from './timer.js';

/** Largest command set accepted (they are a few hundred bytes in practice). */
const MAX_COMMAND_BYTES = 64 * 1024;
/** How long the peer has to close after our A-ABORT before we close (it holds a receive slot meanwhile). */
const ABORT_LINGER_SECONDS = 2;
/** Non-P-DATA PDUs (an A-ASSOCIATE-RQ with many contexts is the largest). */
const MAX_CONTROL_PDU = 1024 * 1024;

export interface AcceptorOptions {
  /** ARTIM: awaiting the A-ASSOCIATE-RQ, and awaiting the close after RJ, RP or A-ABORT. */
  readonly artimSeconds: number;
  /** An established association with nothing arriving and nothing pending is aborted after this. */
  readonly idleSeconds: number;
  /** Our maximum P-DATA-TF length, advertised in the A-ASSOCIATE-AC. */
  readonly maxPduLength: number;
}

/** The user's answer to an A-ASSOCIATE-RQ. */
export type AssociateAnswer =
  | { readonly accept: { readonly contexts: readonly ContextDecision[]; readonly roles?: ReadonlyMap<string, RoleSelection> | undefined } }
  | { readonly reject: { readonly result: number; readonly source: number; readonly reason: number } };

/** The service on top of an acceptor: receive/ is one. */
export interface AcceptorUser extends MessageSink {
  /** Judge the request; the acceptor sends the A-ASSOCIATE-AC or -RJ. */
  onAssociateRequest(rq: AssociateRq): AssociateAnswer;
  /**
   * The peer asked to release. Resolve once every response due has been sent: the acceptor
   * then sends the A-RELEASE-RP (P-DATA may still go out until then, PS3.8 Sta8).
   */
  onReleaseRequest(): Promise<void>;
  onAbort(info: AbortInfo): void;
  /** The peer asked to release with a message half sent: the association is aborted. */
  onReleaseMidMessage?(): void;
  /** Idle timeout (with what state it hit), just before the abort. */
  onIdle(seconds: number, state: State): void;
  /** ARTIM expired (no A-ASSOCIATE-RQ; or the peer did not close), just before the close. */
  onArtim?(state: State): void;
  onClosed(): void;
}

/**
 * An association as the acceptor (SCP side): the upper layer in its acceptor role, the AC/RJ
 * encoding, an idle timer, and flow control.
 *
 * The idle timer runs only in Sta6 with nothing pending (no response being prepared, reading
 * not paused by us): a peer is idle only when it is its turn to speak. It restarts when a whole
 * PDU or PDV arrives, not on every byte, so a peer that trickles a data set a byte at a time, or
 * stalls half-way through a PDU, cannot hold its association (and a receive slot) for ever.
 *
 * @see PS3.8 §9.2 (state machine), §9.3.3 (A-ASSOCIATE-AC), §9.3.4 (A-ASSOCIATE-RJ)
 */
export class Acceptor {
  private readonly ul: UpperLayer;
  private readonly idle = new Timer(() => this.onIdleTimeout());
  private readonly holds = new Set<string>();
  private pending = 0;
  private peerMaxPdu = 0;

  constructor(
    socket: Socket,
    private readonly opts: AcceptorOptions,
    private readonly user: AcceptorUser,
  ) {
    this.ul = new UpperLayer(
      {
        role: 'acceptor',
        artimSeconds: opts.artimSeconds,
        abortArtimSeconds: Math.min(ABORT_LINGER_SECONDS, opts.artimSeconds),
        // Room for a peer that ignores our maximum by a little; beyond that it is an attack.
        maxPDataLength: Math.max(opts.maxPduLength, 1024 * 1024) * 2,
        maxControlPduLength: MAX_CONTROL_PDU,
        maxCommandBytes: MAX_COMMAND_BYTES,
        onTransition: (t) => {
          if (t.event === 'Evt18') user.onArtim?.(t.from);
        },
      },
      {
        onAssociateRequest: (rq) => this.onAssociateRequest(rq),
        onCommand: (ctx, cmd) => user.onCommand(ctx, cmd),
        onData: (ctx, data) => user.onData(ctx, data),
        onDataEnd: (ctx) => user.onDataEnd(ctx),
        onActivity: () => this.rearm(),
        onReleaseRequest: () => this.onReleaseRequest(),
        onAbort: (info) => {
          this.idle.stop();
          user.onAbort(info);
        },
        onClosed: () => {
          this.idle.stop();
          user.onClosed();
        },
      },
    );
    this.ul.attach(socket);
  }

  get state(): State {
    return this.ul.state;
  }

  /** A whole command or data set to the peer (responses; fragmented to the peer's maximum). */
  send(contextId: number, isCommand: boolean, data: Buffer): boolean {
    if (!this.ul.canSend) return false;
    this.ul.send(contextId, isCommand, data, this.peerMaxPdu);
    return true;
  }

  /** One more (or one fewer) response being prepared: the peer is not idle while we are busy. */
  busy(delta: 1 | -1): void {
    this.pending = Math.max(0, this.pending + delta);
    this.rearm();
  }

  /** Stop reading from the peer while `reason` holds (backpressure): its silence is then ours. */
  hold(reason: string, on: boolean): void {
    if (on) this.holds.add(reason);
    else this.holds.delete(reason);
    this.ul.pauseReading(this.holds.size > 0);
    this.rearm();
  }

  /** Abort (internal failure on our side); the connection closes after the peer or ARTIM. */
  abort(): void {
    this.ul.abort();
  }

  private onAssociateRequest(rq: AssociateRq): void {
    const answer = this.user.onAssociateRequest(rq);
    if ('reject' in answer) {
      const { result, source, reason } = answer.reject;
      this.ul.reject(encodeAssociateRj(result, source, reason));
      return;
    }
    this.peerMaxPdu = rq.maxPduLength;
    this.ul.accept(
      encodeAssociateAc({
        rq,
        contexts: answer.accept.contexts,
        maxPduLength: this.opts.maxPduLength,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        roles: answer.accept.roles,
      }),
    );
    this.rearm();
  }

  private onReleaseRequest(): void {
    this.idle.stop();
    if (this.ul.midMessage) {
      // PS3.7 §9.1 / PS3.8 §7.2: a release asks to end an association with nothing outstanding;
      // in the middle of a message the rest can never come (P-DATA is not allowed in Sta8),
      // so waiting for the responses would wait for ever.
      this.user.onReleaseMidMessage?.();
      this.ul.abort();
      return;
    }
    this.user.onReleaseRequest().then(
      () => {
        // The connection may have gone while the last responses were prepared.
        if (this.ul.state === 'Sta8' || this.ul.state === 'Sta12') this.ul.releaseResponse();
      },
      () => this.ul.abort(),
    );
  }

  private rearm(): void {
    if (this.ul.state === 'Sta6' && this.pending === 0 && this.holds.size === 0) this.idle.start(this.opts.idleSeconds);
    else this.idle.stop();
  }

  private onIdleTimeout(): void {
    this.user.onIdle(this.opts.idleSeconds, this.ul.state);
    this.ul.abort();
  }
}
