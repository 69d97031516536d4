import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PacsEdgeError } from '../errors.js';
import type { SealKey } from '../security/sealed-file.js';
import { transferableKey } from './hash-pool.js';
import { PooledObjectWriter } from './pooled-writer.js';
import { BATCH_BYTES, type FromWriter, type KeyMessage, type ToWriter, type WriterHost } from './write-protocol.js';

/**
 * Batch buffers kept for reuse: at least as many as one object may have with its worker (4 MiB
 * of 256 KiB batches), so a long object reuses the same buffers instead of dropping one and
 * allocating another per batch (measured, 1 GiB object: with 8 kept the churn added ~110 MB of
 * RSS on Node 20 and ~140 MB on Node 24).
 */
const MAX_FREE = 24;

/** One worker thread and the objects assigned to it. */
export interface Lane {
  readonly worker: Worker;
  readonly objects: Map<number, PooledObjectWriter>;
  /** The seal keys this worker already holds (by id). */
  readonly keys: Set<number>;
  /** Whole-buffer seal jobs waiting for this worker. */
  readonly jobs: Map<number, { resolve: (r: { bytes: Buffer; sha256: string }) => void; reject: (e: unknown) => void }>;
}

function workerUrl(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('../../dist/src/spool/write-worker.js', here) : new URL('./write-worker.js', here);
}

/**
 * Worker threads that hash, seal and write received objects (issue 17: the profile of the
 * receive path showed SHA-256 and AES-GCM updates on the event loop, 10 % of its samples; with
 * the AES and SHA instructions masked, as on a board without ARMv8 crypto extensions, they
 * would hold it ~3 ms per 512 KB image). The main thread only copies each slice that arrives
 * into a batch buffer and hands whole batches over, transferred, not copied; the worker hands
 * each buffer back for reuse, so receiving allocates almost nothing per object.
 *
 * An object stays on one worker (its bytes must be sealed and written in order); objects go to
 * the worker with the fewest open, so parallel associations use the threads together.
 */
export class WritePool {
  private readonly lanes: Lane[] = [];
  private readonly free: Buffer[] = [];
  private seq = 0;
  private readonly keyIds = new WeakMap<SealKey, number>();
  private keySeq = 0;
  private closed = false;

  constructor(private readonly threads: number) {}

  /** Start writing one object to the open file `fd` (its first bytes: `header`). */
  open(fd: number, path: string, header: Buffer, o: { hash: boolean; seal?: SealKey | undefined }): PooledObjectWriter {
    if (this.closed) throw new PacsEdgeError('SPOOL_CLOSED', 'the spool is closed');
    const lane = this.lane();
    const obj = ++this.seq;
    const host: WriterHost = {
      take: () => this.take(),
      give: (buf) => this.give(buf),
      post: (msg, transfer) => lane.worker.postMessage(msg, transfer ? [transfer] : []),
      release: (o) => this.release(lane, o),
    };
    const writer = new PooledObjectWriter(host, obj, fd, path, header.length);
    lane.objects.set(obj, writer);
    if (lane.objects.size + lane.jobs.size === 1) lane.worker.ref();
    const msg: ToWriter = { t: 'open', obj, fd, header: new Uint8Array(header), hash: o.hash, ...this.keyFor(lane, o.seal) };
    lane.worker.postMessage(msg);
    return writer;
  }

  /**
   * A whole new file for the compression-at-rest rewriter, on a worker: `plain` sealed under a
   * fresh data key of its own when a key is given (src/security/sealed-file.ts sealBuffer), and
   * the plaintext's SHA-256 for its record. Neither runs on the event loop.
   */
  prepare(key: SealKey | undefined, plain: Buffer): Promise<{ bytes: Buffer; sha256: string }> {
    if (this.closed) return Promise.reject(new PacsEdgeError('SPOOL_CLOSED', 'the spool is closed'));
    const lane = this.lane();
    const obj = ++this.seq;
    const buf = plain.buffer.slice(plain.byteOffset, plain.byteOffset + plain.length) as ArrayBuffer;
    return new Promise((resolve, reject) => {
      lane.jobs.set(obj, { resolve, reject });
      if (lane.jobs.size + lane.objects.size === 1) lane.worker.ref();
      const msg: ToWriter = { t: 'seal', obj, ...this.keyFor(lane, key), buf };
      lane.worker.postMessage(msg, [buf]);
    });
  }

  /** A batch buffer: reused when one is free. Its own ArrayBuffer, so it can be transferred. */
  private take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  private give(buf: ArrayBuffer): void {
    if (this.free.length < MAX_FREE && buf.byteLength === BATCH_BYTES) this.free.push(Buffer.from(buf));
  }

  private release(lane: Lane, obj: number): void {
    lane.objects.delete(obj);
    if (lane.objects.size + lane.jobs.size === 0) lane.worker.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.lanes.splice(0).map((l) => l.worker.terminate()));
  }

  /** The key's id, and its bytes when this worker has not had them yet (a copy per object cost a tenth of the messaging). */
  private keyFor(lane: Lane, key: SealKey | undefined): { keyId?: number; key?: KeyMessage } {
    if (!key) return {};
    let keyId = this.keyIds.get(key);
    if (keyId === undefined) this.keyIds.set(key, (keyId = ++this.keySeq));
    if (lane.keys.has(keyId)) return { keyId };
    lane.keys.add(keyId);
    return { keyId, key: transferableKey(key) };
  }

  private lane(): Lane {
    let best: Lane | undefined;
    for (const l of this.lanes) if (!best || l.objects.size < best.objects.size) best = l;
    if (best && (best.objects.size === 0 || this.lanes.length >= this.threads)) return best;
    return this.spawn();
  }

  private spawn(): Lane {
    // A small young generation: the sealed segments it allocates are freed at the next
    // scavenge instead of piling up (measured: the default let the process's RSS grow by
    // ~45 MB while receiving CT).
    const worker = new Worker(workerUrl(), { resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
    worker.unref();
    const lane: Lane = { worker, objects: new Map(), jobs: new Map(), keys: new Set() };
    worker.on('message', (m: FromWriter) => {
      if (m.t === 'sealed' || m.t === 'seal-failed') {
        const job = lane.jobs.get(m.obj);
        lane.jobs.delete(m.obj);
        if (lane.jobs.size + lane.objects.size === 0) lane.worker.unref();
        if (m.t === 'sealed') job?.resolve({ bytes: Buffer.from(m.buf), sha256: m.sha256 });
        else job?.reject(new PacsEdgeError('SPOOL_WRITER_FAILED', `could not seal a rewritten object: ${m.message}`));
        return;
      }
      if (m.t === 'ack') this.give(m.buf);
      lane.objects.get(m.obj)?.fromWorker(m);
    });
    const dead = (err: Error) => {
      const i = this.lanes.indexOf(lane);
      if (i >= 0) this.lanes.splice(i, 1);
      for (const w of [...lane.objects.values()]) w.laneDied(err);
      lane.objects.clear();
      for (const j of lane.jobs.values()) j.reject(new PacsEdgeError('SPOOL_WRITER_FAILED', 'the spool write worker stopped', { cause: err }));
      lane.jobs.clear();
    };
    worker.on('error', dead);
    worker.on('exit', (code) => {
      if (!this.closed) dead(new Error(`spool write worker exited with code ${code}`));
    });
    this.lanes.push(lane);
    return lane;
  }
}

/**
 * Write workers by default: one on a 2-core box (the modality's sender and the event loop need
 * the other), two from 4 cores on, so that parallel associations seal side by side.
 */
export function defaultWriteThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism() - 2));
}
