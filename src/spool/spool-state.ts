import path from 'node:path';
import type { Level } from 'level';
import { QueueState } from './queues.js';
import type { RecordCodec } from './record-codec.js';
import { RecordStore } from './record-store.js';
import type { SpoolRecord } from './spool.js';
import { StudyBook } from './studies.js';

/**
 * What one open LevelSpool knows in memory besides its index, shared by the modules it is made
 * of (level-spool.ts, delivery.ts, dead-letters.ts, rewriter.ts). Recovery (recovery.ts)
 * rebuilds it at every open; nothing in it is the truth on its own: the index and the object
 * files are, and every change here follows a write to them.
 */
export class SpoolState {
  /** Per destination: the FIFO of pending objects, leases, dead-letter counts (queues.ts). */
  queues: QueueState;
  /** Per study and destination: received, pending, forwarded, dead letters (studies.ts). */
  studies = new StudyBook();
  /** Objects whose file could not be opened at start-up: kept, queued in the index, never handed out this run. */
  quarantined = new Map<string, string>();
  /** Delivered objects kept for keepForwardedMs: id → forwardedAt, oldest first. */
  readonly kept = new Map<string, number>();
  objectCount = 0;
  objectBytes = 0;
  readonly records: RecordStore;
  /** Called with a destination that has new work. */
  readonly enqueuedListeners: ((destination: string) => void)[] = [];
  /** Called with every object committed (compression at rest picks it up). */
  readonly storedListeners: ((r: SpoolRecord) => void)[] = [];
  /** Called with every object owed to nobody any more. */
  readonly goneListeners: ((id: string) => void)[] = [];
  /** Called with every object no destination takes (for the alarm). */
  readonly unroutedListeners: ((r: SpoolRecord) => void)[] = [];

  constructor(
    readonly db: Level<string, string>,
    readonly objectsDir: string,
    destinations: readonly string[],
    codec: RecordCodec,
  ) {
    this.queues = new QueueState(destinations);
    this.records = new RecordStore(db, codec);
  }

  filePath(id: string): string {
    return path.join(this.objectsDir, `${id}.dcm`);
  }

  emitEnqueued(destinations: Iterable<string>): void {
    for (const d of destinations) for (const fn of this.enqueuedListeners) fn(d);
  }
}
