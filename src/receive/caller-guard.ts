import { normalizeAddress } from './negotiation.js';

/**
 * Blocks an address that keeps failing to associate: after `rejections` refused attempts
 * (A-ASSOCIATE-RJ for a caller not in the allowlist, a wrong called AE title, a failed TLS
 * handshake) within `windowSeconds`, its connections are closed on arrival for `blockSeconds`.
 * What a scanner misconfigured once does stays far below the threshold; a password-guessing
 * or AE-title-scanning peer does not. Loopback (127.0.0.1, ::1) is exempt by default: a peer
 * there is already on the box, and the gateway's own tools use it.
 *
 * @see GB/T 22239-2019 §8.1.4.1 (身份鉴别: 登录失败处理), §8.1.4.4 (入侵防范)
 */
export interface CallerGuardSettings {
  rejections: number;
  windowSeconds: number;
  blockSeconds: number;
  exempt: readonly string[];
}

export interface BlockedAddress {
  address: string;
  since: number;
  until: number;
  rejections: number;
}

export class CallerGuard {
  private readonly recent = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, BlockedAddress>();
  private readonly exempt: Set<string>;

  constructor(
    private readonly s: CallerGuardSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.exempt = new Set(s.exempt.map(normalizeAddress));
  }

  /** One refused attempt from `address`; returns the block when this attempt started one. */
  rejected(address: string): BlockedAddress | undefined {
    const a = normalizeAddress(address);
    if (this.exempt.has(a) || this.blocked(a)) return undefined;
    const t = this.now();
    const times = (this.recent.get(a) ?? []).filter((x) => t - x < this.s.windowSeconds * 1000);
    times.push(t);
    this.recent.set(a, times);
    // Bounded memory: a scan from many addresses cannot grow the table without limit.
    if (this.recent.size > 10_000) this.recent.delete(this.recent.keys().next().value!);
    if (times.length < this.s.rejections) return undefined;
    this.recent.delete(a);
    const b = { address: a, since: t, until: t + this.s.blockSeconds * 1000, rejections: times.length };
    this.blockedUntil.set(a, b);
    return b;
  }

  /** The block on `address`, while it lasts. */
  blocked(address: string): BlockedAddress | undefined {
    const a = normalizeAddress(address);
    const b = this.blockedUntil.get(a);
    if (!b) return undefined;
    if (b.until <= this.now()) {
      this.blockedUntil.delete(a);
      return undefined;
    }
    return b;
  }

  /** Addresses blocked now (for status). */
  list(): BlockedAddress[] {
    return [...this.blockedUntil.keys()].map((a) => this.blocked(a)).filter((b): b is BlockedAddress => b !== undefined);
  }
}
