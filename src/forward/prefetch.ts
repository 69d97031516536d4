import type { Claim } from '../spool/spool.js';

/**
 * The forward worker's read-ahead over one claimed batch: while object i is on the wire, the
 * objects after it are read, opened (decrypted and authenticated), checked and, when needed,
 * converted on the worker threads, so the association never waits for the disk, the cipher or
 * a codec between two objects.
 *
 * Bounded in memory: the objects prepared and not yet sent (the one on the wire included) hold
 * at most `budgetBytes` (their spooled size, or the size they were received in when that is
 * bigger: a decoded object grows back to it). The next object is always prepared, even when it
 * alone is bigger than the budget: it is then opened for streaming (`streamed`), read as it is
 * sent, as without read-ahead. Objects are sent strictly in claim order; what is prepared ahead
 * and not sent (a stop, a lost association, a retry) is dropped, and its claim given back by
 * the caller: nothing is lost, it is only prepared again later.
 */
export class Prefetch<T> {
  private readonly started: (Promise<T> | undefined)[] = [];
  private readonly bytes: number[] = [];
  private readonly taken = new Set<number>();
  private held = 0;
  private peak = 0;
  /** The first index not yet considered for read-ahead. */
  private next = 0;

  constructor(
    private readonly claims: readonly Claim[],
    private readonly o: {
      /** Prepare one object: `streamed` when it is bigger than the budget (opened, not read whole). */
      start: (c: Claim, streamed: boolean) => Promise<T>;
      budgetBytes: number;
      /** Objects that will not be sent in this pass (given back at their turn): not prepared. */
      skip?: (c: Claim) => boolean;
      /** Release what a prepared object holds (an open file) when it is dropped unsent. */
      drop: (p: Promise<T>) => void;
    },
  ) {}

  /** The most bytes held at once so far (for the tests and the status). */
  get peakBytes(): number {
    return this.peak;
  }

  /** Object i, prepared (started now if it was not), with more started behind it within the budget. */
  take(i: number): Promise<T> {
    this.ensure(i, this.cost(this.claims[i]!) > this.o.budgetBytes);
    this.taken.add(i);
    this.fill(i);
    return this.started[i]!;
  }

  /** Object i has been sent (or settled): its bytes no longer count, and more can be read ahead. */
  done(i: number): void {
    this.held -= this.bytes[i] ?? 0;
    this.bytes[i] = 0;
    this.fill(i);
  }

  /** Drop everything prepared and not taken from index `from` on (it is not sent in this pass). */
  dropFrom(from: number): void {
    for (let j = from; j < this.started.length; j++) {
      const p = this.started[j];
      if (p && !this.taken.has(j)) this.o.drop(p);
      this.started[j] = undefined;
      this.held -= this.bytes[j] ?? 0;
      this.bytes[j] = 0;
    }
    this.next = Math.max(this.next, this.claims.length);
  }

  private cost(c: Claim): number {
    return Math.max(c.record.size, c.record.receivedSize ?? 0);
  }

  private ensure(i: number, streamed: boolean): void {
    if (this.started[i]) return;
    const bytes = streamed ? 0 : this.cost(this.claims[i]!);
    const p = this.o.start(this.claims[i]!, streamed);
    p.catch(() => undefined); // surfaces when taken
    this.started[i] = p;
    this.bytes[i] = bytes;
    this.held += bytes;
    this.peak = Math.max(this.peak, this.held);
  }

  private fill(current: number): void {
    let j = Math.max(this.next, current + 1);
    for (; j < this.claims.length; j++) {
      const c = this.claims[j]!;
      if (this.started[j]) continue;
      if (this.o.skip?.(c)) continue;
      const cost = this.cost(c);
      if (cost > this.o.budgetBytes) {
        // Too big to hold: opened for streaming once it is next in line, as without read-ahead.
        if (j === current + 1) this.ensure(j, true);
        else break;
        continue;
      }
      if (this.held + cost > this.o.budgetBytes) break;
      this.ensure(j, false);
    }
    this.next = j;
  }
}
