import { statfs } from 'node:fs/promises';
import { SpoolFullError } from '../errors.js';

/**
 * Decides whether the spool may accept one more object: free space on its file system must
 * stay above `minFreeBytes`, and (when set) the spool must stay below `maxBytes`.
 *
 * statfs is asked at most every {@link REFRESH_MS}; in between, bytes the gateway wrote itself
 * are subtracted, so a burst of objects cannot overshoot the limit by a whole refresh period.
 */
const REFRESH_MS = 500;

export class DiskGuard {
  private free = Number.POSITIVE_INFINITY;
  private checkedAt = 0;
  private writtenSince = 0;

  constructor(
    private readonly dir: string,
    private readonly limits: { minFreeBytes: number; maxBytes: number },
  ) {}

  /** @throws SpoolFullError when the spool must refuse new objects. */
  async check(spoolBytes: number): Promise<void> {
    if (this.limits.maxBytes > 0 && spoolBytes >= this.limits.maxBytes) {
      throw new SpoolFullError(`spool holds ${spoolBytes} bytes, at its limit spool.maxBytes=${this.limits.maxBytes}`, {
        spoolBytes,
        maxBytes: this.limits.maxBytes,
      });
    }
    const free = await this.freeBytes();
    if (free < this.limits.minFreeBytes) {
      throw new SpoolFullError(`free space ${free} bytes is below spool.minFreeBytes=${this.limits.minFreeBytes}`, {
        freeBytes: free,
        minFreeBytes: this.limits.minFreeBytes,
      });
    }
  }

  /**
   * Forget the cached free space: the next check asks statfs. Called when a write met ENOSPC
   * (another process filled the volume since the last statfs): without it, every object begun
   * in the rest of the refresh period would be accepted, written until ENOSPC, and thrown away.
   */
  invalidate(): void {
    this.checkedAt = 0;
  }

  /** Tell the guard about bytes written since the last statfs. */
  wrote(bytes: number): void {
    this.writtenSince += bytes;
  }

  async freeBytes(): Promise<number> {
    const now = Date.now();
    if (now - this.checkedAt >= REFRESH_MS) {
      const s = await statfs(this.dir);
      this.free = s.bavail * s.bsize;
      this.checkedAt = now;
      this.writtenSince = 0;
    }
    return this.free - this.writtenSince;
  }
}
