import type { Logger } from '../log.js';
import { buildPart10Header } from '../dicom/file-meta.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import type { SpoolRecord, SpoolRewriter } from '../spool/spool.js';
import type { CodecPool } from './pool.js';
import { COMPRESSION_SYNTAX, type Compression } from './transcode.js';

/** How often a waiting compressor looks again whether the modalities have gone quiet. */
const QUIET_RECHECK_MS = 500;

export interface AtRestStats {
  /** Objects whose file was replaced by its compressed form, and their bytes before and after. */
  compressed: number;
  bytesIn: number;
  bytesOut: number;
  /** Not compressed: not an uncompressed image, no gain, or not exactly reversible. */
  passedThrough: number;
  /**
   * Not compressed because it would not pay: no destination that owes it would send the
   * compressed form as stored (each would decode it again), and the spool is not under pressure.
   */
  notNeeded: number;
  /** Delivered (or removed) before its turn came: nothing to compress. */
  deliveredFirst: number;
  errors: number;
  /**
   * Objects owed to a destination that wait for their turn (or are being compressed). An object
   * delivered everywhere (or purged) before its turn stops counting at once, not when its turn
   * comes (the spool says so: SpoolRewriter.onGone).
   */
  backlog: number;
}

/** Spool fill (of `spool.maxBytes`) from which compression at rest runs whatever the destinations take. */
export const PRESSURE_FILL = 0.5;
/** Free space, in multiples of `spool.minFreeBytes` (where the spool refuses objects), below which the same holds. */
export const PRESSURE_FREE_FACTOR = 4;

/**
 * Disk pressure: the spool holds at least {@link PRESSURE_FILL} of `spool.maxBytes` (when set),
 * or the volume has less than {@link PRESSURE_FREE_FACTOR} × `spool.minFreeBytes` free. Then
 * compressing at rest makes room, whatever it costs at send time.
 */
export function spoolUnderPressure(o: { spoolBytes: number; freeBytes: number; maxBytes: number; minFreeBytes: number }): boolean {
  if (o.maxBytes > 0 && o.spoolBytes >= PRESSURE_FILL * o.maxBytes) return true;
  return o.freeBytes < PRESSURE_FREE_FACTOR * o.minFreeBytes;
}

/**
 * `spool.compressAtRest`: soon after an object is spooled, its file is replaced by its lossless
 * compressed form, so that a spool holds several times more images while the PACS is away.
 *
 * - Off the receive path: it starts `delayMs` after the object was committed, only while no
 *   modality is connected, one object at a time on the codec workers (which run at the lowest
 *   CPU priority); an object a destination is sending is tried again later (with the PACS up,
 *   objects are gone before their turn).
 * - The replacement is exact: the worker decodes what it encoded and the file is replaced only
 *   if that gives back the received data set byte for byte, so a destination that wants the
 *   original syntax gets the very bytes the modality sent (see syntax-plan.ts).
 * - The spool does the replacement crash-safely (LevelSpool.replaceFile).
 * - Only when it pays (`worthIt`, decided when the object's turn comes): an object is
 *   compressed if a destination that owes it would send the compressed form as stored, or the
 *   spool is under pressure ({@link spoolUnderPressure}); else every send would decode it again.
 * - The backlog counts only objects some destination still waits for: when the spool reports
 *   an object gone (delivered everywhere, or its last dead letter purged; `onGone`), its entry
 *   is dropped at once, also when `spool.keepForwardedHours` keeps its file.
 */
export class AtRestCompressor {
  private readonly queue: { id: string; due: number; tries: number }[] = [];
  private running = false;
  /** The object `drain` is working on (taken off the queue). */
  private current: string | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly s: Omit<AtRestStats, 'backlog'> = { compressed: 0, bytesIn: 0, bytesOut: 0, passedThrough: 0, notNeeded: 0, deliveredFirst: 0, errors: 0 };

  constructor(
    private readonly deps: {
      rewriter: SpoolRewriter;
      pool: CodecPool;
      compression: Exclude<Compression, 'none'>;
      maxObjectBytes: number;
      log: Logger;
      delayMs?: number;
      /**
       * True while a modality is connected. Replacing a file costs I/O of its own (a write, an
       * fsync, a synced index write, a directory fsync) that would compete with the C-STORE
       * commits, so replacements wait for a quiet moment (measured: 0.86× the images/s of a
       * modality sending 1500 CT images when they did not wait).
       */
      receiving?: () => boolean;
      /**
       * Whether compressing this object pays: some destination that still owes it would send
       * the compressed form as stored (it accepted that syntax on its last association, or it
       * has not been asked yet). Absent: always.
       */
      worthIt?: (r: SpoolRecord, syntax: string) => boolean;
      /** The spool is filling up (see {@link spoolUnderPressure}): compress anyway, to make room. */
      pressure?: () => Promise<boolean>;
    },
  ) {
    deps.rewriter.onGone((id) => this.gone(id));
  }

  /** A newly spooled (or recovered) object; only uncompressed (Explicit or Implicit VR LE) objects qualify. */
  offer(r: SpoolRecord): void {
    if (this.stopped || (r.transferSyntaxUid !== TS.ExplicitVRLittleEndian && r.transferSyntaxUid !== TS.ImplicitVRLittleEndian) || r.size > this.deps.maxObjectBytes || r.pending.length === 0) return;
    this.queue.push({ id: r.id, due: Date.now() + this.delay(), tries: 0 });
    this.schedule();
  }

  stats(): AtRestStats {
    return { ...this.s, backlog: this.queue.length + (this.current !== undefined ? 1 : 0) };
  }

  /** The spool owes the object to nobody any more: drop its entry (counted once, as delivered first). */
  private gone(id: string): void {
    const i = this.queue.findIndex((q) => q.id === id);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.s.deliveredFirst++;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.queue.length = 0;
    while (this.running) await new Promise((r) => setTimeout(r, 20));
  }

  private schedule(): void {
    if (this.running || this.timer || this.stopped || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0]!.due - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.drain();
    }, wait);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0 && this.queue[0]!.due <= Date.now()) {
        if (this.deps.receiving?.()) {
          // A modality is sending: try again in a moment, in the same order.
          for (const item of this.queue) item.due = Math.max(item.due, Date.now() + QUIET_RECHECK_MS);
          break;
        }
        const item = this.queue.shift()!;
        this.current = item.id;
        await this.one(item).catch((err: unknown) => {
          this.s.errors++;
          this.deps.log.warn({ id: item.id, err: (err as Error).message }, 'compression at rest failed; the object stays as received');
        });
        this.current = undefined;
      }
    } finally {
      this.running = false;
      this.current = undefined;
      this.schedule();
    }
  }

  private delay(): number {
    return this.deps.delayMs ?? 2000;
  }

  private async one(item: { id: string; due: number; tries: number }): Promise<void> {
    const { rewriter } = this.deps;
    const id = item.id;
    const record = await rewriter.reserve(id);
    if (record === 'gone') {
      this.s.deliveredFirst++;
      return;
    }
    if (record === 'busy') {
      // A destination holds it right now (sending, or about to find it cannot connect): ask
      // again later, less and less often; once delivered it is 'gone'.
      const tries = item.tries + 1;
      this.queue.push({ id, due: Date.now() + Math.min(60_000, this.delay() * 2 ** Math.min(tries, 5)), tries });
      this.queue.sort((a, b) => a.due - b.due);
      return;
    }
    try {
      if (this.deps.worthIt && !this.deps.worthIt(record, COMPRESSION_SYNTAX[this.deps.compression]) && !(await this.deps.pressure?.())) {
        // Every destination that owes it would decode it again: compressing now only costs CPU twice.
        this.s.notNeeded++;
        return;
      }
      const conv = await this.deps.pool.convert({
        op: 'encode',
        target: this.deps.compression,
        path: rewriter.filePath(id),
        size: record.size,
        sha256: record.sha256,
        verify: true,
        exact: true,
      });
      if (conv.kind === 'corrupt') {
        // Left for the forwarder, whose own check dead-letters it with the reason.
        this.s.errors++;
        this.deps.log.error({ id, sopInstanceUid: record.sopInstanceUid }, 'spooled object fails its SHA-256 check (found by compression at rest)');
        return;
      }
      if (conv.kind !== 'done') {
        if (conv.kind === 'skip') this.s.passedThrough++;
        else this.s.errors++;
        this.deps.log.debug({ id, reason: conv.reason }, 'not compressed at rest');
        return;
      }
      const header = buildPart10Header({ sopClassUid: record.sopClassUid, sopInstanceUid: record.sopInstanceUid, transferSyntaxUid: conv.transferSyntaxUid, sourceAeTitle: record.callingAeTitle });
      const bytes = Buffer.concat([header, conv.dataset]);
      if (bytes.length >= record.size) {
        this.s.passedThrough++;
        return;
      }
      await rewriter.replace(record, bytes, conv.transferSyntaxUid);
      this.s.compressed++;
      this.s.bytesIn += record.size;
      this.s.bytesOut += bytes.length;
    } finally {
      rewriter.release(id);
    }
  }
}
