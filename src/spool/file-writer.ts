import { createHash, type Hash } from 'node:crypto';
import { unlink, type FileHandle } from 'node:fs/promises';
import { crashpoint } from '../util/crashpoint.js';

/**
 * Writes one incoming object straight to its final name `<id>.dcm`, hashing as the bytes
 * arrive, then makes it durable: fsync of the file and of its directory, in parallel (they
 * are independent, and on a journalling file system both usually ride the same commit).
 * Until the spool indexes it, the file does not count: recovery deletes any `.dcm` without an
 * index entry, so no rename step is needed (measured: rename + a second directory sync cost
 * ~0.7 ms per object on the critical path before Success).
 *
 * Bytes are written while the rest of the object is still arriving — whenever no write is in
 * flight and at least {@link FLUSH_BYTES} wait, all waiting slices go in one `writev` (no copy)
 * — so at the last fragment little is left to write before the fsync. At most
 * {@link HIGH_WATER} bytes wait in memory; above that `write()` returns false and the receiver
 * pauses the socket. Memory per association is therefore bounded whatever the object's size.
 *
 * Hashing runs on the event loop, slice by slice as bytes arrive (each ≤ one PDV, tens of
 * microseconds with OpenSSL's SHA-256): moving it to a worker would need a copy of every slice,
 * which costs about as much as the hash itself. Whole-file hashing (verification) uses
 * {@link HashPool} instead.
 */
export const FLUSH_BYTES = 64 * 1024;
export const HIGH_WATER = 4 * 1024 * 1024;

export class FileObjectWriter {
  private readonly hash: Hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position = 0;
  private writing: Promise<void> | undefined;
  private error: unknown;
  private drainFns: (() => void)[] = [];
  private needDrain = false;
  private total = 0;
  private finished = false;

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    header: Buffer,
  ) {
    this.push(header);
  }

  /** Bytes received so far, header included. */
  get bytes(): number {
    return this.total;
  }

  write(chunk: Buffer): boolean {
    if (this.finished) return true;
    this.push(chunk);
    if (this.pendingBytes >= FLUSH_BYTES && !this.writing) this.flush();
    const ok = this.pendingBytes < HIGH_WATER;
    if (!ok) this.needDrain = true;
    return ok;
  }

  onDrain(fn: () => void): void {
    this.drainFns.push(fn);
  }

  /** Flush, then fsync file and directory. Returns the size and SHA-256 of the whole file. */
  async finish(syncDir: () => Promise<void>): Promise<{ size: number; sha256: string }> {
    this.finished = true;
    while (this.writing || this.pendingBytes > 0) {
      if (this.writing) await this.writing;
      else this.flush();
    }
    if (this.error) throw this.error;
    await Promise.all([this.fh.sync(), syncDir()]);
    crashpoint('after-data-fsync');
    // Durable now; closing is not on the path to Success.
    this.fh.close().catch(() => undefined);
    return { size: this.total, sha256: this.hash.digest('hex') };
  }

  async abort(): Promise<void> {
    this.finished = true;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      if (this.writing) await this.writing;
    } catch {
      /* the partial file is going away */
    }
    await this.fh.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }

  private push(chunk: Buffer): void {
    this.hash.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.total += chunk.length;
  }

  private flush(): void {
    const bufs = this.pending;
    const n = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const first = this.position === 0;
    this.writing = this.writeAll(bufs, n)
      .then(() => {
        if (first) crashpoint('after-first-write');
      })
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => {
        this.writing = undefined;
        if (!this.finished && this.pendingBytes >= FLUSH_BYTES) this.flush();
        if (this.needDrain && this.pendingBytes < HIGH_WATER / 2) {
          this.needDrain = false;
          for (const fn of this.drainFns) fn();
        }
      });
  }

  private async writeAll(bufs: Buffer[], n: number): Promise<void> {
    if (this.error) return;
    let written = 0;
    while (written < n) {
      const { bytesWritten } = await this.fh.writev(written === 0 ? bufs : remainder(bufs, written), this.position);
      if (bytesWritten === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
      written += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

/** The slices left after the first `skip` bytes of `bufs`. */
function remainder(bufs: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
