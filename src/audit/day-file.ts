import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDirSync } from '../util/durable-write.js';

/**
 * The audit day file being appended to. Appends are positioned writes at the last good size and
 * fdatasync'ed; a failed append is cut back to that size, so a full disk never leaves half a
 * record that a later append would follow. A new file's directory entry is fsynced once.
 */
export class DayFileAppender {
  private fh: FileHandle | undefined;
  private name = '';
  private size = 0;

  constructor(private readonly dir: string) {}

  /** The day file open now ('' before the first append): retention must not delete it. */
  get openFile(): string {
    return this.name;
  }

  /** Append bytes to `file` (a day file name in the directory) and fdatasync it. */
  async append(file: string, text: string): Promise<void> {
    if (this.name !== file || !this.fh) {
      await this.fh?.close().catch(() => {});
      this.fh = undefined;
      const fh = await open(path.join(this.dir, file), 'a', 0o640);
      this.size = (await fh.stat()).size;
      this.fh = fh;
      this.name = file;
      if (this.size === 0) syncDirSync(this.dir);
    }
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.size + off);
        off += bytesWritten;
      }
      await this.fh.datasync();
      this.size += buf.length;
    } catch (err) {
      await this.fh.truncate(this.size).catch(() => {});
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }
}
