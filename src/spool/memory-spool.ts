import { createHash } from 'node:crypto';
import { PacsEdgeError, SpoolFullError } from '../errors.js';
import { QueueState } from './queues.js';
import { formatId } from './record-codec.js';
import { type Claim, type DeadLetter, HANDED_OVER_KEEP_MS, type ObjectReader, type ObjectWriter, type RecoveryReport, type Spool, type SpoolRecord, type SpoolStats } from './spool.js';

/**
 * A volatile spool for unit tests of the stages around it (and as the reference behaviour of
 * the interface). It passes the same conformance suite as {@link LevelSpool}, except the
 * persistence cases. Never used by the gateway itself: it is not durable.
 */
export class MemorySpool implements Spool {
  private readonly objects = new Map<string, { record: SpoolRecord; bytes: Buffer }>();
  private readonly byUid = new Map<string, string>();
  private readonly dead = new Map<string, DeadLetter>();
  private readonly handed = new Map<string, number>();
  private readonly queues: QueueState;
  private readonly listeners: ((destination: string) => void)[] = [];
  private nextId = 1;
  private bytes = 0;

  constructor(private readonly opts: { destinations: readonly string[]; maxBytes?: number }) {
    this.queues = new QueueState(opts.destinations);
  }

  async open(): Promise<RecoveryReport> {
    return { recovered: 0, recoveredBytes: 0, discardedPartials: 0, discardedBytes: 0, lost: [], unreadable: [], danglingQueueEntries: 0 };
  }

  async close(): Promise<void> {}

  async begin(header: Buffer): Promise<ObjectWriter> {
    if (this.opts.maxBytes && this.bytes >= this.opts.maxBytes) throw new SpoolFullError('memory spool is full');
    const id = formatId(this.nextId++);
    const parts: Buffer[] = [header];
    let size = header.length;
    let done = false;
    return {
      write: (chunk) => {
        if (!done) {
          parts.push(chunk);
          size += chunk.length;
        }
        return true;
      },
      onDrain: () => undefined,
      get bytes() {
        return size;
      },
      abort: async () => {
        done = true;
      },
      commit: async (info) => {
        done = true;
        const bytes = Buffer.concat(parts);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const prevId = this.byUid.get(info.sopInstanceUid);
        const prev = prevId ? this.objects.get(prevId) : undefined;
        if (prev && prev.record.sha256 === sha256) return prev.record;
        const record: SpoolRecord = { id, ...info, size: bytes.length, sha256, receivedAt: Date.now(), pending: [...this.opts.destinations] };
        this.objects.set(id, { record, bytes });
        this.byUid.set(info.sopInstanceUid, id);
        this.bytes += bytes.length;
        for (const d of record.pending) this.queues.enqueue(d, id, { size: bytes.length, receivedAt: record.receivedAt });
        for (const d of record.pending) for (const fn of this.listeners) fn(d);
        return record;
      },
    };
  }

  async claim(destination: string, max: number): Promise<Claim[]> {
    return this.queues
      .lease(destination, max)
      .map(({ id, attempts }) => ({ record: structuredClone(this.objects.get(id)!.record), destination, attempts }));
  }

  async read(id: string, opts: { verify?: 'spool' | 'caller' | 'memory' } = {}): Promise<ObjectReader> {
    const o = this.objects.get(id);
    if (!o) throw new PacsEdgeError('SPOOL_NOT_FOUND', `no spooled object ${id}`);
    if (opts.verify !== 'caller' && createHash('sha256').update(o.bytes).digest('hex') !== o.record.sha256) {
      throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${id} fails its SHA-256 check`);
    }
    const bytes = o.bytes;
    return {
      size: bytes.length,
      sha256: o.record.sha256,
      verified: opts.verify !== 'caller',
      read: async (buf, position) => bytes.copy(buf, 0, position, Math.min(bytes.length, position + buf.length)),
      close: async () => undefined,
    };
  }

  async ack(destination: string, id: string): Promise<void> {
    return this.done(destination, id, true);
  }

  async ackMany(destination: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.done(destination, id, true);
  }

  /** The destination no longer owes the object: delivered, or (`delivered` false) given up by an operator. */
  private async done(destination: string, id: string, delivered: boolean): Promise<void> {
    this.queues.remove(destination, id);
    const o = this.objects.get(id);
    if (!o) return;
    o.record.pending = o.record.pending.filter((d) => d !== destination);
    if (o.record.pending.length === 0) {
      if (delivered) this.handed.set(o.record.sopInstanceUid, Date.now());
      this.objects.delete(id);
      if (this.byUid.get(o.record.sopInstanceUid) === id) this.byUid.delete(o.record.sopInstanceUid);
      this.bytes -= o.record.size;
    }
  }

  async nack(destination: string, id: string): Promise<void> {
    this.queues.release(destination, id, true);
  }

  async unclaim(destination: string, id: string): Promise<void> {
    this.queues.unlease(destination, id);
  }

  onEnqueue(fn: (destination: string) => void): void {
    this.listeners.push(fn);
  }

  async retryDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    let n = 0;
    for (const [k, d] of [...this.dead.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (d.destination !== destination || (ids && !ids.includes(d.id))) continue;
      this.dead.delete(k);
      this.queues.addDeadLetters(destination, -1);
      const o = this.objects.get(d.id);
      if (o && o.record.pending.includes(destination)) {
        this.queues.requeue(destination, d.id, { size: o.record.size, receivedAt: o.record.receivedAt });
        n++;
      }
    }
    if (n) for (const fn of this.listeners) fn(destination);
    return n;
  }

  async purgeDeadLetters(destination: string, ids?: readonly string[]): Promise<number> {
    let n = 0;
    for (const [k, d] of [...this.dead.entries()]) {
      if (d.destination !== destination || (ids && !ids.includes(d.id))) continue;
      this.dead.delete(k);
      this.queues.addDeadLetters(destination, -1);
      await this.done(destination, d.id, false);
      n++;
    }
    return n;
  }

  async deadLetter(destination: string, id: string, reason: string, status?: number, peerComment?: string): Promise<void> {
    const o = this.objects.get(id);
    if (!o) return;
    this.queues.remove(destination, id);
    this.queues.addDeadLetters(destination, 1);
    this.dead.set(`${destination}!${id}`, {
      id,
      destination,
      sopInstanceUid: o.record.sopInstanceUid,
      sopClassUid: o.record.sopClassUid,
      reason,
      status,
      at: Date.now(),
    });
  }

  async listDeadLetters(destination?: string): Promise<DeadLetter[]> {
    return [...this.dead.values()].filter((d) => !destination || d.destination === destination);
  }

  async handedOver(sopInstanceUid: string): Promise<number | undefined> {
    const at = this.handed.get(sopInstanceUid);
    return at !== undefined && at > Date.now() - HANDED_OVER_KEEP_MS ? at : undefined;
  }

  async find(sopInstanceUid: string): Promise<SpoolRecord | undefined> {
    const id = this.byUid.get(sopInstanceUid);
    return id ? structuredClone(this.objects.get(id)?.record) : undefined;
  }

  stats(): SpoolStats {
    return { objects: this.objects.size, bytes: this.bytes, destinations: this.queues.stats(Date.now()) };
  }

  /** Test hook: flip a byte of a stored object, as bit rot would. */
  corrupt(id: string): void {
    const o = this.objects.get(id);
    if (o) o.bytes.writeUInt8(o.bytes.readUInt8(o.bytes.length - 1) ^ 0xff, o.bytes.length - 1);
  }
}
