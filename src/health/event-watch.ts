import type { HealthEvent } from './mqtt-health.js';
import type { Watermark } from './health-report.js';

/**
 * Turns changes of state into `events` messages: a destination going down (its breaker open
 * for the third consecutive failure) or coming back up, dead letters added, the spool's
 * watermark crossing. It compares snapshots taken every second, so it needs no hook in the
 * forwarders and never slows them.
 */
export interface WatchedState {
  destinations: { name: string; state?: string | undefined; deadLetter: number; lastError?: string | undefined }[];
  watermark: Watermark;
  freeBytes: number;
}

export class EventWatch {
  private last: WatchedState | undefined;

  constructor(private readonly emit: (e: HealthEvent) => void) {}

  /** Compare with the previous snapshot and emit what changed. The first call only records. */
  update(now: WatchedState): void {
    const prev = this.last;
    this.last = now;
    if (!prev) return;
    for (const d of now.destinations) {
      const was = prev.destinations.find((x) => x.name === d.name);
      if (!was) continue;
      if (d.state === 'down' && was.state !== 'down') this.emit({ type: 'destination-down', destination: d.name, reason: d.lastError ?? null });
      if (d.state === 'up' && (was.state === 'down' || was.state === 'backoff')) this.emit({ type: 'destination-up', destination: d.name });
      if (d.deadLetter > was.deadLetter) this.emit({ type: 'dead-letter', destination: d.name, added: d.deadLetter - was.deadLetter, deadLetter: d.deadLetter });
    }
    if (now.watermark !== 'ok' && prev.watermark === 'ok') this.emit({ type: 'disk-low', watermark: now.watermark, freeBytes: now.freeBytes });
    if (now.watermark === 'full' && prev.watermark === 'low') this.emit({ type: 'disk-low', watermark: now.watermark, freeBytes: now.freeBytes });
    if (now.watermark === 'ok' && prev.watermark !== 'ok') this.emit({ type: 'disk-ok', freeBytes: now.freeBytes });
  }
}
