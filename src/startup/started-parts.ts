import type { Logger } from '../log.js';

/**
 * The parts of a gateway start that are up, in start order, with how to stop each. When a later
 * part fails (a taken port, a locked spool, a wrong key), {@link unwind} stops the ones already
 * started in reverse order, so a failed start leaves no lock, socket or listener behind and the
 * process can exit.
 */
export class StartedParts {
  private readonly parts: { what: string; stop: (err: Error) => Promise<void> }[] = [];

  constructor(private readonly log: Logger) {}

  /** `stop` receives the error that failed the start (the audit trail records it). */
  add(what: string, stop: (err: Error) => Promise<void> | void): void {
    this.parts.push({ what, stop: async (err) => stop(err) });
  }

  async unwind(err: Error): Promise<void> {
    for (const p of this.parts.splice(0).reverse()) {
      await p.stop(err).catch((e: unknown) => this.log.warn({ part: p.what, err: (e as Error).message }, 'could not stop a part after a failed start'));
    }
  }
}
