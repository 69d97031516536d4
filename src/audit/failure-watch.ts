import { statfs } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { AuditAlarm } from './alarms.js';
import type { AuditEvent } from './messages.js';

/** Below this many free bytes on the trail's file system the next records cannot be counted on. */
export const AUDIT_MIN_FREE_BYTES = 256 * 1024;
/** How often the trail's file system is looked at (statfs: no write, no wear on the flash). */
const PROBE_MS = 2000;

/** Whether the trail can record now, for status, health and metrics. */
export interface AuditWriteState {
  state: 'ok' | 'failing';
  /** When recording stopped (ISO), while failing. */
  since: string | null;
  /** Why (an errno code and message, or the free space), while failing. */
  reason: string | null;
  /** Times recording stopped since start. */
  failures: number;
}

/**
 * Knows whether the audit trail can write, for MLPS 2.0 level 3 (GB/T 22239-2019 §8.1.4.3 d:
 * the audit process is protected; what happens when recording fails is decided, not left to
 * chance). Recording is *failing* from the first write the disk refuses (ENOSPC, EIO, …) or from
 * the moment the trail's file system has less than {@link AUDIT_MIN_FREE_BYTES} free, until a
 * write succeeds again and there is room. Both are looked at on a timer (the trail retries its
 * queued records every second, the free space is read every {@link PROBE_MS}), so recovery needs
 * no restart.
 *
 * Going into failure and out of it are PS3.15 A.5.3.11 Security Alerts, 110133 Audit Recording
 * Stopped and 110134 Audit Recording Started. The first cannot be written when it happens: it is
 * chained at once (its place in the sequence is the moment recording stopped) and waits in
 * memory with every other record until the disk takes them. The owner hears of both through
 * alarms (`audit-failure`, `audit-recovered`): log, MQTT, and, with `audit.onFailure: refuse`,
 * the DICOM listener's refusals.
 */
export class AuditFailureWatch {
  private writeError: string | undefined;
  private lowSpace: string | undefined;
  private failingSince: number | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      dir: string;
      log: Logger;
      alarm: (a: AuditAlarm) => void;
      record: (e: AuditEvent) => void;
      /** Records waiting in memory (for the log lines). */
      queued: () => number;
      now: () => Date;
    },
  ) {}

  /** Start looking at the free space (unref'd timer). */
  start(): void {
    this.timer = setInterval(() => void this.probe(), PROBE_MS);
    this.timer.unref();
    void this.probe();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get failing(): boolean {
    return this.failingSince !== undefined;
  }

  state(): AuditWriteState {
    return {
      state: this.failing ? 'failing' : 'ok',
      since: this.failingSince !== undefined ? new Date(this.failingSince).toISOString() : null,
      reason: this.failing ? (this.writeError ?? this.lowSpace ?? null) : null,
      failures: this.failures,
    };
  }

  /** A write (append, fsync or head) failed. */
  writeFailed(error: string): void {
    this.writeError = error;
    this.update();
  }

  /** Everything queued was written and synced. */
  writeOk(): void {
    if (this.writeError === undefined) return;
    this.writeError = undefined;
    this.update();
  }

  /** Read the free space of the trail's file system. Never rejects. */
  async probe(): Promise<void> {
    try {
      const s = await statfs(this.o.dir);
      const free = s.bavail * s.bsize;
      this.lowSpace = free < AUDIT_MIN_FREE_BYTES ? `the audit file system has ${free} bytes free (less than ${AUDIT_MIN_FREE_BYTES})` : undefined;
    } catch (err) {
      this.lowSpace = `the audit directory cannot be read: ${(err as Error).message}`;
    }
    this.update();
  }

  private update(): void {
    const reason = this.writeError ?? this.lowSpace;
    const now = this.o.now().getTime();
    if (reason !== undefined && this.failingSince === undefined) {
      this.failingSince = now;
      this.failures++;
      this.o.log.error({ dir: this.o.dir, reason, queued: this.o.queued() }, 'AUDIT FAILURE: audit records cannot be written; they are kept in memory and written when the trail recovers');
      // Chained now, written with the rest once the disk takes it.
      this.o.record({ kind: 'security-alert', type: 'audit-recording-stopped', detail: `audit records cannot be written: ${reason}` });
      this.o.alarm({ kind: 'audit-failure', reason, since: new Date(now).toISOString() });
    } else if (reason === undefined && this.failingSince !== undefined) {
      const seconds = Math.round((now - this.failingSince) / 1000);
      this.failingSince = undefined;
      this.o.log.warn({ dir: this.o.dir, seconds }, 'audit trail recovered: records are written again');
      this.o.record({ kind: 'security-alert', type: 'audit-recording-started', detail: `audit recording resumed after ${seconds} s; records made meanwhile were kept in memory and are written in their order`, failure: false });
      this.o.alarm({ kind: 'audit-recovered', seconds });
    }
  }
}
