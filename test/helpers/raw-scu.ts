import net from 'node:net';
import { decodeCommand, encodeCommand } from '../../src/dicom/command.js';
import { Tag } from '../../src/dicom/tags.js';
import { encodeAssociateRq, PduType } from '../../src/dicom/pdu.js';
import { encodePData } from '../../src/dicom/ul/pdv.js';

/**
 * A deliberately minimal SCU over a raw socket, for the faults no real modality makes on
 * purpose: a data set cut short mid-stream, garbage on the port, an association that goes
 * silent, a burst of associations beyond the limit. Everything a real peer can do is tested
 * with DCMTK instead.
 */
/** An A-ASSOCIATE-RQ as a modality would send it (defaults: called PACS_EDGE, calling RAWSCU). */
export function associateRq(opts: {
  calledAe?: string;
  callingAe?: string;
  contexts: { id: number; abstractSyntax: string; transferSyntaxes: string[] }[];
  maxPdu?: number;
}): Buffer {
  return encodeAssociateRq({
    calledAeTitle: opts.calledAe ?? 'PACS_EDGE',
    callingAeTitle: opts.callingAe ?? 'RAWSCU',
    contexts: opts.contexts,
    maxPduLength: opts.maxPdu ?? 16384,
    implementationClassUid: '1.2.3.4',
    implementationVersionName: 'RAWSCU',
  });
}

export interface Pdu {
  type: number;
  body: Buffer;
}

/** A connected raw socket with a PDU-level reader. */
export class RawScu {
  private buf = Buffer.alloc(0);
  private readonly pdus: Pdu[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 6) {
        const len = this.buf.readUInt32BE(2);
        if (this.buf.length < 6 + len) break;
        this.pdus.push({ type: this.buf[0]!, body: this.buf.subarray(6, 6 + len) });
        this.buf = this.buf.subarray(6 + len);
      }
      this.wake();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: another loopback source (127.0.0.2 …), to look like a second machine. */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawScu> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) }, () => resolve(new RawScu(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next PDU, or undefined if the peer closed first. */
  async next(timeoutMs = 10_000): Promise<Pdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.pdus.length === 0 && !this.closed) {
      if (Date.now() > deadline) throw new Error('timed out waiting for a PDU');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.pdus.shift();
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** Send a C-STORE-RQ command and the given data set bytes (possibly cut short). */
  sendStore(opts: { contextId: number; sopClassUid: string; sopInstanceUid: string; dataset: Buffer; messageId?: number; last?: boolean }): void {
    const cmd = encodeCommand([
      { tag: Tag.AffectedSopClassUid, vr: 'UI', value: opts.sopClassUid },
      { tag: Tag.CommandField, vr: 'US', value: 0x0001 },
      { tag: Tag.MessageId, vr: 'US', value: opts.messageId ?? 1 },
      { tag: Tag.Priority, vr: 'US', value: 0 },
      { tag: Tag.CommandDataSetType, vr: 'US', value: 0 },
      { tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: opts.sopInstanceUid },
    ]);
    for (const p of encodePData(opts.contextId, true, cmd, 16384)) this.write(p);
    const frags = encodePData(opts.contextId, false, opts.dataset, 16384);
    if (opts.last === false) {
      // Strip the "last fragment" bit so the SCP keeps waiting for more.
      const lastPdu = frags[frags.length - 1]!;
      lastPdu[11] = lastPdu[11]! & ~0x02;
    }
    for (const p of frags) this.write(p);
  }

  /** Wait for a DIMSE response and return its status. */
  async response(timeoutMs = 10_000): Promise<{ status: number; comment?: string } | undefined> {
    const parts: Buffer[] = [];
    for (;;) {
      const p = await this.next(timeoutMs);
      if (!p) return undefined;
      if (p.type !== PduType.PData) throw new Error(`expected P-DATA, got PDU type ${p.type}`);
      let off = 0;
      let last = false;
      while (off < p.body.length) {
        const len = p.body.readUInt32BE(off);
        const mch = p.body[off + 5]!;
        parts.push(p.body.subarray(off + 6, off + 4 + len));
        last = (mch & 0x02) === 2;
        off += 4 + len;
      }
      if (last) break;
    }
    const cmd = decodeCommand(Buffer.concat(parts));
    return { status: cmd.us(Tag.Status)!, ...(cmd.str(Tag.ErrorComment) ? { comment: cmd.str(Tag.ErrorComment)! } : {}) };
  }

  close(): void {
    this.socket.destroy();
  }
}
