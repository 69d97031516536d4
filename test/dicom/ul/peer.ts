import net from 'node:net';
import { once } from 'node:events';
import {
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodeAssociateRq,
  encodeReleaseRp,
  encodeReleaseRq,
  PduType,
} from '../../../src/dicom/pdu.js';
import type { Action, Event, State } from '../../../src/dicom/ul/fsm.js';
import { encodePData } from '../../../src/dicom/ul/pdv.js';
import { type AbortInfo, UpperLayer, type UpperLayerUser } from '../../../src/dicom/ul/provider.js';

/**
 * A scripted fake peer for the upper-layer state machine tests: one side of a loopback TCP
 * connection, driven byte by byte by the test, with the provider under test on the other side.
 * The peer writes whole PDUs (or garbage) and records every PDU the provider sends, and when it
 * sees the connection close.
 */

const VERIFICATION = '1.2.840.10008.1.1';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const ARTIM_S = 0.3;

export const RQ = encodeAssociateRq({
  calledAeTitle: 'SCP',
  callingAeTitle: 'SCU',
  contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] }],
  maxPduLength: 16384,
  implementationClassUid: '1.2.3.4',
  implementationVersionName: 'TEST',
});
export const AC = encodeAssociateAc({
  rq: decodeAssociateRq(RQ.subarray(6)),
  contexts: [{ id: 1, result: 0, transferSyntax: EXPLICIT_LE }],
  maxPduLength: 16384,
  implementationClassUid: '1.2.3.4',
  implementationVersionName: 'TEST',
});
export const RJ = encodeAssociateRj(1, 1, 1);
/** A command's bytes are opaque to the upper layer: any bytes do. */
export const COMMAND = Buffer.from('a command set');

/** The bytes the peer sends for each event that is a PDU (or the lack of one). */
export const PEER_BYTES: Partial<Record<Event, Buffer>> = {
  Evt3: AC,
  Evt4: RJ,
  Evt6: RQ,
  Evt10: Buffer.concat(encodePData(1, true, COMMAND, 0)),
  Evt12: encodeReleaseRq(),
  Evt13: encodeReleaseRp(),
  Evt16: encodeAbort(0, 0),
  // PDU type 0x0A does not exist (PS3.8 §9.3.1): unrecognised.
  Evt19: Buffer.from([0x0a, 0, 0, 0, 0, 4, 0, 0, 0, 0]),
};

export interface Received {
  type: number;
  body: Buffer;
}

export interface Transition {
  from: State;
  event: Event;
  action: Action;
  to: State;
}

/** The provider under test, the peer's socket, and everything each side saw. */
export class Harness {
  readonly transitions: Transition[] = [];
  readonly indications: string[] = [];
  readonly aborts: AbortInfo[] = [];
  readonly received: Received[] = [];
  peerClosed = false;
  ul!: UpperLayer;
  peer!: net.Socket;
  private rx = Buffer.alloc(0);
  private server: net.Server | undefined;

  constructor(readonly role: 'acceptor' | 'requestor') {}

  /** Called for each indication; tests replace it to answer from inside one. */
  user: UpperLayerUser = {};

  private makeUl(): UpperLayer {
    const note = (name: string) => () => this.indications.push(name);
    return new UpperLayer(
      { role: this.role, artimSeconds: ARTIM_S, maxPDataLength: 1 << 20, maxControlPduLength: 1 << 20, maxCommandBytes: 1024, onTransition: (t) => this.transitions.push(t) },
      {
        onAssociateRequest: (rq) => {
          this.indications.push('A-ASSOCIATE indication');
          this.user.onAssociateRequest?.(rq);
        },
        onAssociateAccept: note('A-ASSOCIATE confirmation (accept)'),
        onAssociateReject: note('A-ASSOCIATE confirmation (reject)'),
        onCommand: (ctx, cmd) => this.indications.push(`P-DATA indication: command on ${ctx}: ${cmd.toString()}`),
        onData: () => this.indications.push('P-DATA indication: data'),
        onDataEnd: () => undefined,
        onReleaseRequest: () => {
          this.indications.push('A-RELEASE indication');
          this.user.onReleaseRequest?.();
        },
        onReleaseConfirm: note('A-RELEASE confirmation'),
        onAbort: (info) => {
          this.aborts.push(info);
          this.indications.push(`abort indication: ${info.kind}`);
        },
        onClosed: note('closed'),
      },
    );
  }

  private watch(peer: net.Socket): void {
    this.peer = peer;
    peer.on('data', (chunk: Buffer) => {
      this.rx = Buffer.concat([this.rx, chunk]);
      while (this.rx.length >= 6 && this.rx.length >= 6 + this.rx.readUInt32BE(2)) {
        const n = 6 + this.rx.readUInt32BE(2);
        this.received.push({ type: this.rx[0]!, body: this.rx.subarray(6, n) });
        this.rx = this.rx.subarray(n);
      }
    });
    peer.on('error', () => undefined);
    // The peer keeps its side open when the provider closes its own (it may still want to
    // send, as a misbehaving peer would): the provider's close shows as the end of the stream.
    for (const ev of ['end', 'close']) {
      peer.on(ev, () => {
        this.peerClosed = true;
      });
    }
  }

  /** Acceptor: a connection arrives (Evt5); the provider is then in Sta2. */
  async accept(): Promise<void> {
    this.ul = this.makeUl();
    const server = net.createServer();
    this.server = server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const [socket] = (await once(server, 'connection')) as [net.Socket];
    await once(client, 'connect').catch(() => undefined);
    this.watch(client);
    this.ul.attach(socket);
  }

  /**
   * Requestor: ask for an association (Evt1). The provider is in Sta4 until the connection
   * opens; `listen: false` connects to a port nobody listens on.
   */
  async request(opts: { listen: boolean } = { listen: true }): Promise<void> {
    this.ul = this.makeUl();
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.watch(s));
    this.server = server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    if (!opts.listen) await new Promise((r) => server.close(r));
    this.ul.request(RQ, () => net.connect(port, '127.0.0.1'), 'connect');
  }

  /** Send raw bytes as the peer. */
  send(bytes: Buffer): void {
    this.peer.write(bytes);
  }

  /** Wait until `check` holds (bounded: a state machine test never hangs). */
  async until(check: () => boolean, what: string, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; transitions: ${JSON.stringify(this.transitions)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async untilState(state: State): Promise<void> {
    await this.until(() => this.ul.state === state, `state ${state}`);
  }

  /** The transition that `event` caused, once it has happened. */
  async transitionFor(event: Event, from: State): Promise<Transition> {
    await this.until(() => this.transitions.some((t) => t.event === event && t.from === from), `${event} in ${from}`);
    return this.transitions.find((t) => t.event === event && t.from === from)!;
  }

  /** PDUs of `type` the peer has received so far. */
  pdus(type: number): Received[] {
    return this.received.filter((p) => p.type === type);
  }

  async close(): Promise<void> {
    this.ul?.close();
    this.peer?.destroy();
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
  }
}

export { PduType };
