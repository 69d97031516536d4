/**
 * Per-destination circuit breaker with exponential backoff and jitter.
 *
 * Closed (up) while deliveries succeed. Each transient failure opens it for
 * `base · 2^(n-1)` (capped at `max`), randomised to 50–100 % of that so that many gateways
 * behind one recovering PACS do not all come back in the same second. While open, the
 * destination's workers wait; the first success closes it again.
 */
export class Backoff {
  private failures = 0;
  private until = 0;
  private firstFailureAt: number | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly opts: { baseMs: number; maxMs: number; random?: () => number; now?: () => number },
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Milliseconds to wait before the next attempt (0 when closed). */
  waitMs(): number {
    return Math.max(0, this.until - this.now());
  }

  failure(reason: string): number {
    this.failures++;
    this.firstFailureAt ??= this.now();
    this.lastError = reason;
    const exp = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(this.failures - 1, 30));
    const delay = Math.round(exp * (0.5 + 0.5 * (this.opts.random ?? Math.random)()));
    this.until = this.now() + delay;
    return delay;
  }

  success(): void {
    this.failures = 0;
    this.until = 0;
    this.firstFailureAt = undefined;
    this.lastError = undefined;
  }

  /** For status: up, or backing off (until when, since when, why). */
  state(): { state: 'up' } | { state: 'backoff' | 'down'; until: number; since: number; failures: number; lastError: string } {
    if (this.failures === 0) return { state: 'up' };
    // "down" once failures have gone on for a while; "backoff" for a passing hiccup.
    const since = this.firstFailureAt ?? this.now();
    return { state: this.failures >= 3 ? 'down' : 'backoff', until: this.until, since, failures: this.failures, lastError: this.lastError ?? '' };
  }
}
