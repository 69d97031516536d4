import net from 'node:net';
import { decodeCommand, encodeCommand } from '../../src/dicom/command.js';
import { Tag } from '../../src/dicom/tags.js';
import { encodePData, PduType } from '../../src/receive/pdu.js';

/**
 * A deliberately minimal SCU over a raw socket, for the faults no real modality makes on
 * purpose: a data set cut short mid-stream, garbage on the port, an association that goes
 * silent, a burst of associations beyond the limit. Everything a real peer can do is tested
 * with DCMTK instead.
 */
export function associateRq(opts: {
  calledAe?: string;
  callingAe?: string;
  contexts: { id: number; abstractSyntax: string; transferSyntaxes: string[] }[];
  maxPdu?: number;
}): Buffer {
  const ae = (s: string) => Buffer.from(s.padEnd(16, ' '), 'latin1');
  const item = (type: number, value: Buffer) => {
    const h = Buffer.alloc(4);
    h[0] = type;
    h.writeUInt16BE(value.length, 2);
    return Buffer.concat([h, value]);
  };
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  ae(opts.calledAe ?? 'PACS_EDGE').copy(fixed, 4);
  ae(opts.callingAe ?? 'RAWSCU').copy(fixed, 20);
  const items = [item(0x10, Buffer.from('1.2.840.10008.3.1.1.1'))];
  for (const c of opts.contexts) {
    items.push(
      item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), item(0x30, Buffer.from(c.abstractSyntax)), ...c.transferSyntaxes.map((t) => item(0x40, Buffer.from(t)))])),
    );
  }
  const max = Buffer.alloc(4);
  max.writeUInt32BE(opts.maxPdu ?? 16384, 0);
  items.push(item(0x50, Buffer.concat([item(0x51, max), item(0x52, Buffer.from('1.2.3.4')), item(0x55, Buffer.from('RAWSCU'))])));
  const body = Buffer.concat([fixed, ...items]);
  const head = Buffer.alloc(6);
  head[0] = PduType.AssociateRq;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
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

  static connect(port: number, host = '127.0.0.1'): Promise<RawScu> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(new RawScu(s)));
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
