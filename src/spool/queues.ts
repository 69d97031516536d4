import type { DestinationStats } from './spool.js';

interface Entry {
  size: number;
  receivedAt: number;
}

/**
 * In-memory view of the per-destination FIFO queues, rebuilt from the index at start-up.
 * Claimed entries stay in place (only marked leased), so a nack puts an object back exactly
 * where it was: order is never lost. Ids are monotonic, so Map insertion order is FIFO order.
 */
export class QueueState {
  private readonly queues = new Map<string, Map<string, Entry>>();
  private readonly leased = new Map<string, Set<string>>();
  private readonly attempts = new Map<string, number>();
  private readonly deadLetters = new Map<string, number>();
  private readonly pendingBytes = new Map<string, number>();

  constructor(destinations: readonly string[]) {
    for (const d of destinations) this.ensure(d);
  }

  destinations(): string[] {
    return [...this.queues.keys()];
  }

  enqueue(dest: string, id: string, e: Entry): void {
    const q = this.ensure(dest);
    if (q.has(id)) return;
    q.set(id, e);
    this.pendingBytes.set(dest, (this.pendingBytes.get(dest) ?? 0) + e.size);
  }

  /** The object's file changed size (compressed at rest): pending bytes follow. */
  resize(id: string, size: number): void {
    for (const [dest, q] of this.queues) {
      const e = q.get(id);
      if (!e) continue;
      this.pendingBytes.set(dest, (this.pendingBytes.get(dest) ?? 0) - e.size + size);
      q.set(id, { ...e, size });
    }
  }

  remove(dest: string, id: string): boolean {
    const q = this.queues.get(dest);
    const e = q?.get(id);
    if (!q || !e) return false;
    q.delete(id);
    this.leased.get(dest)?.delete(id);
    this.attempts.delete(`${dest}\0${id}`);
    this.pendingBytes.set(dest, (this.pendingBytes.get(dest) ?? 0) - e.size);
    return true;
  }

  /** Whether any destination holds a lease on the object. */
  leasedAnywhere(id: string): boolean {
    for (const l of this.leased.values()) if (l.has(id)) return true;
    return false;
  }

  has(dest: string, id: string): boolean {
    return this.queues.get(dest)?.has(id) ?? false;
  }

  /**
   * Oldest unleased ids, leasing them. The lease stops at an id for which `held` is true (an
   * object being rewritten): nothing behind it is handed out first, so FIFO order holds.
   */
  lease(dest: string, max: number, held?: (id: string) => boolean): { id: string; attempts: number }[] {
    const q = this.queues.get(dest);
    const leased = this.leased.get(dest)!;
    const out: { id: string; attempts: number }[] = [];
    if (!q) return out;
    for (const id of q.keys()) {
      if (out.length >= max) break;
      if (leased.has(id)) continue;
      if (held?.(id)) break;
      leased.add(id);
      out.push({ id, attempts: this.attempts.get(`${dest}\0${id}`) ?? 0 });
    }
    return out;
  }

  release(dest: string, id: string, failed: boolean): void {
    this.leased.get(dest)?.delete(id);
    if (failed) {
      const k = `${dest}\0${id}`;
      this.attempts.set(k, (this.attempts.get(k) ?? 0) + 1);
    }
  }

  /** Un-lease without counting an attempt. */
  unlease(dest: string, id: string): void {
    this.leased.get(dest)?.delete(id);
  }

  /**
   * Re-insert an id at its FIFO place (ids order by arrival): Map order is insertion order, so
   * the entries with greater ids are moved behind it.
   */
  requeue(dest: string, id: string, e: Entry): void {
    const q = this.ensure(dest);
    if (q.has(id)) return;
    const later = [...q.entries()].filter(([k]) => k > id);
    for (const [k] of later) q.delete(k);
    q.set(id, e);
    for (const [k, v] of later) q.set(k, v);
    this.pendingBytes.set(dest, (this.pendingBytes.get(dest) ?? 0) + e.size);
  }

  addDeadLetters(dest: string, n: number): void {
    this.ensure(dest);
    this.deadLetters.set(dest, (this.deadLetters.get(dest) ?? 0) + n);
  }

  stats(now: number): DestinationStats[] {
    return [...this.queues.entries()].map(([name, q]) => {
      const first = q.values().next();
      return {
        name,
        pending: q.size,
        pendingBytes: this.pendingBytes.get(name) ?? 0,
        deadLetter: this.deadLetters.get(name) ?? 0,
        oldestPendingSeconds: first.done ? 0 : Math.max(0, Math.floor((now - first.value.receivedAt) / 1000)),
      };
    });
  }

  private ensure(dest: string): Map<string, Entry> {
    let q = this.queues.get(dest);
    if (!q) {
      q = new Map();
      this.queues.set(dest, q);
      this.leased.set(dest, new Set());
    }
    return q;
  }
}
