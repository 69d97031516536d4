/**
 * How every destination's forwarder and commitment requester behave on the wire: timeouts,
 * retry backoff and batch sizes (from the `forward` configuration, with its defaults applied).
 * Its own module so that the destination and the commitment requester both depend on it, and
 * not on each other.
 */
export interface ForwardSettings {
  connectTimeoutMs: number;
  acseTimeoutMs: number;
  dimseTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Release an association after this long without work. */
  idleReleaseMs: number;
  /** Transient status answers for one object before it is dead-lettered (a bad object must not block the queue). */
  maxAttempts: number;
  maxPduLength: number;
  /** Objects claimed at a time by one association. */
  batch: number;
}
