import { unlink } from 'node:fs/promises';
import { PacsEdgeError } from '../errors.js';
import { crashpoint } from '../util/crashpoint.js';
import { collectYoung } from '../util/collect.js';
import { closeFd } from '../util/fd.js';
import { BATCH_BYTES, type FromWriter, type WriterHost } from './write-protocol.js';

/** A young-generation collection on the receiving thread after this many bytes received. */
const COLLECT_BYTES = 16 * 1024 * 1024;
let receivedSinceCollect = 0;

/** At most this much of one object waits for its worker; above it the socket is paused. */
export const HIGH_WATER = 4 * 1024 * 1024;
const MAX_OUTSTANDING = HIGH_WATER / BATCH_BYTES;

/**
 * One incoming object, written to its final name `<id>.dcm` by a write worker
 * (src/spool/write-pool.ts) as the bytes arrive, then made durable: fsync of the file and of
 * its directory, in parallel with each other and with the spool's index write (see
 * {@link PooledObjectWriter.finish}). Until the spool indexes it, the file does not count:
 * recovery deletes any `.dcm` without an index entry, so no rename step is needed.
 *
 * The main thread only copies slices into batch buffers (no allocation once the pool is warm)
 * and transfers each full batch; at most {@link HIGH_WATER} bytes of one object are with the
 * worker at a time (`write()` returns false above it and the receiver pauses the socket), so
 * memory per association is bounded whatever the object's size.
 *
 * The SHA-256 is computed by the worker only when asked: for a plain file it is the file's
 * only integrity check; for a sealed one every 64 KiB segment is authenticated (AEAD, final
 * flag against truncation) and the digest is needed only to fold an identical re-send into the
 * copy already spooled (src/spool/level-spool.ts asks for it when the SOP Instance UID is
 * already there).
 */
export class PooledObjectWriter {
  private cur: Buffer | undefined;
  private fill = 0;
  private outstanding = 0;
  private total: number;
  private finished = false;
  private error: unknown;
  private drainFns: (() => void)[] = [];
  private needDrain = false;
  private written: { resolve: (r: { size: number; sha256: string }) => void; reject: (e: unknown) => void } | undefined;
  private synced: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  private abortAck: (() => void) | undefined;
  private aborted: Promise<void> | undefined;
  private done = false;

  constructor(
    private readonly host: WriterHost,
    private readonly obj: number,
    private readonly fd: number,
    readonly path: string,
    headerBytes: number,
  ) {
    this.total = headerBytes;
  }

  /** Bytes received so far, header included. */
  get bytes(): number {
    return this.total;
  }

  write(chunk: Buffer): boolean {
    if (this.finished) return true;
    this.total += chunk.length;
    // The socket hands each slice in a buffer of its own: garbage outside the JS heap that V8
    // would collect only at its external-memory limit (src/util/collect.ts). Measured, a 1 GiB
    // object: peak RSS +138 MB on Node 24 without this, see the commit for with.
    if ((receivedSinceCollect += chunk.length) >= COLLECT_BYTES) {
      receivedSinceCollect = 0;
      collectYoung();
    }
    let off = 0;
    while (off < chunk.length) {
      this.cur ??= this.host.take();
      const n = Math.min(BATCH_BYTES - this.fill, chunk.length - off);
      chunk.copy(this.cur, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === BATCH_BYTES) this.send();
    }
    const ok = this.outstanding < MAX_OUTSTANDING;
    if (!ok) this.needDrain = true;
    return ok;
  }

  onDrain(fn: () => void): void {
    this.drainFns.push(fn);
  }

  /**
   * Hand over what is left, then run the durability steps together: fsync of the file (by the
   * worker, once every byte is written), fsync of its directory (the entry exists since
   * `begin`), and `index` (the spool's synced index write, once every byte is written: a write
   * that fails must leave no record). Resolves when all are done, with what `index` returned:
   * only then is the object durable and indexed.
   */
  async finish<T>(steps: { syncDir: () => Promise<void>; index: (file: { size: number; sha256: string }) => Promise<T> }): Promise<T> {
    this.finished = true;
    if (this.fill > 0) this.send();
    const dirSynced = steps.syncDir();
    dirSynced.catch(() => undefined);
    const written = new Promise<{ size: number; sha256: string }>((resolve, reject) => (this.written = { resolve, reject }));
    const synced = new Promise<void>((resolve, reject) => (this.synced = { resolve, reject }));
    written.catch(() => undefined);
    synced.catch(() => undefined);
    if (this.error) this.failed(this.error);
    else this.host.post({ t: 'end', obj: this.obj });
    const file = await written;
    const durable = Promise.all([synced, dirSynced]).then(() => crashpoint('after-data-fsync'));
    durable.catch(() => undefined);
    const indexed = steps.index(file);
    indexed.catch(() => undefined);
    await durable;
    const result = await indexed;
    // Durable now; closing is not on the path to Success.
    closeFd(this.fd).catch(() => undefined);
    return result;
  }

  /**
   * Drop the partial file. Idempotent: a reception can abort twice (its data set fails the
   * check, then its end is handled). The descriptor is closed only once the worker has let go
   * of the object: a descriptor number closed under a worker still writing could be reused by
   * another object's file.
   */
  abort(): Promise<void> {
    this.aborted ??= this.discard();
    return this.aborted;
  }

  private async discard(): Promise<void> {
    this.finished = true;
    if (this.cur) this.host.give(this.cur.buffer as ArrayBuffer);
    this.cur = undefined;
    if (!this.done) {
      await new Promise<void>((resolve) => {
        this.abortAck = resolve;
        this.host.post({ t: 'abort', obj: this.obj });
      });
    }
    await closeFd(this.fd).catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }

  private send(): void {
    const buf = this.cur!;
    this.host.post({ t: 'data', obj: this.obj, buf: buf.buffer as ArrayBuffer, len: this.fill }, buf.buffer as ArrayBuffer);
    this.cur = undefined;
    this.fill = 0;
    this.outstanding++;
  }

  /** A message from the worker about this object. */
  fromWorker(m: FromWriter): void {
    switch (m.t) {
      case 'ack':
        this.outstanding--;
        if (m.first) crashpoint('after-first-write');
        if (this.needDrain && this.outstanding <= MAX_OUTSTANDING / 2) {
          this.needDrain = false;
          for (const fn of this.drainFns) fn();
        }
        return;
      case 'written':
        this.written?.resolve({ size: m.size, sha256: m.sha256 });
        return;
      case 'synced':
        this.settle();
        this.synced?.resolve();
        return;
      case 'error':
        // The fs error as the worker saw it: its code (ENOSPC, EIO…) tells the receiver what to answer.
        this.settle();
        this.failed(Object.assign(new Error(m.message), { code: m.code }));
        return;
      case 'aborted':
        this.settle();
        this.abortAck?.();
        return;
    }
  }

  /** The worker thread died: whatever it held of this object is lost, and the object is refused. */
  laneDied(cause: Error): void {
    this.done = true;
    this.failed(new PacsEdgeError('SPOOL_WRITER_FAILED', 'the worker writing this object stopped', { cause }));
    this.abortAck?.();
    this.needDrain = false;
    for (const fn of this.drainFns) fn();
  }

  private failed(err: unknown): void {
    this.error ??= err;
    this.written?.reject(this.error);
    this.synced?.reject(this.error);
  }

  private settle(): void {
    this.done = true;
    this.host.release(this.obj);
  }
}
