import { closeSync, fsync, openSync } from 'node:fs';

/**
 * fsync of a directory, shared between concurrent callers.
 *
 * Making a new file's directory entry durable needs an fsync of the directory
 * (POSIX gives no other guarantee). When several associations commit at once, one fsync
 * started after a caller created its file covers that caller, so callers that arrive while an fsync
 * runs wait for the next one together instead of each issuing their own (group commit).
 */
export class CoalescedDirSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  /** The directory stays open for the spool's lifetime: no open/close per object. */
  private fd: number | undefined;

  constructor(private readonly dir: string) {}

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    // An fsync is in flight but may have started before our file existed: join the next one.
    if (!this.next) {
      const after = this.running;
      this.next = after
        .catch(() => undefined)
        .then(() => {
          this.next = undefined;
          return this.sync();
        });
    }
    return this.next;
  }

  private run(): Promise<void> {
    this.fd ??= openSync(this.dir, 'r');
    const fd = this.fd;
    return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  }
}
