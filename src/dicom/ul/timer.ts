/**
 * A restartable one-shot timer that never keeps the process alive: the ARTIM timer of PS3.8
 * §9.1.5, and the acceptor's idle timer, are both one of these.
 */
export class Timer {
  private handle: NodeJS.Timeout | undefined;

  constructor(private readonly onExpire: () => void) {}

  /** Start, or restart when running. */
  start(seconds: number): void {
    this.stop();
    this.handle = setTimeout(() => {
      this.handle = undefined;
      this.onExpire();
    }, seconds * 1000);
    this.handle.unref();
  }

  stop(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
