import type { Logger } from '../log.js';
import type { AuditEvent } from './messages.js';
import type { AuditAlarm } from './alarms.js';

/**
 * Budget: at 80 % of `maxBytes` an alarm fires once per crossing; at 100 % a Security Alert is
 * recorded and the alarm repeats (every `budgetRepeatMs`) while it lasts. Records are never
 * dropped or overwritten: an audit trail that silently loses the oldest or newest events is
 * worse for 等级保护 / MLPS than one that outgrows its budget, and the budget is set well
 * below the disk so that the operator (alarm → MQTT event) has time to act. The disk itself
 * is the only hard limit; when it is full, writes fail, the alarm says so and the records stay
 * queued in memory until they can be written.
 */
export class AuditBudget {
  private warned = false;
  private lastExceededAt = -Infinity;
  /** Set while the budget's own Security Alert is recorded (which adds to the usage). */
  private inAlert = false;

  constructor(
    private readonly o: {
      maxBytes: number;
      /** How often the 100 % alarm and Security Alert repeat while over budget (default 1 h). */
      repeatMs?: number | undefined;
      now: () => Date;
      log: Logger;
      alarm: (a: AuditAlarm) => void;
      record: (e: AuditEvent) => unknown;
    },
  ) {}

  check(usage: number): void {
    const max = this.o.maxBytes;
    if (max <= 0 || this.inAlert) return;
    if (usage >= 0.8 * max) {
      if (!this.warned) {
        this.warned = true;
        this.o.log.warn({ usedBytes: usage, maxBytes: max }, 'audit trail uses over 80 % of audit.maxBytes');
        this.o.alarm({ kind: 'budget-warning', usedBytes: usage, maxBytes: max });
      }
    } else {
      this.warned = false;
    }
    const t = this.o.now().getTime();
    if (usage >= max && t - this.lastExceededAt >= (this.o.repeatMs ?? 3_600_000)) {
      this.lastExceededAt = t;
      this.o.log.error({ usedBytes: usage, maxBytes: max }, 'audit trail is over audit.maxBytes: records are kept, free space or raise the budget');
      this.o.alarm({ kind: 'budget-exceeded', usedBytes: usage, maxBytes: max });
      this.inAlert = true;
      try {
        this.o.record({ kind: 'security-alert', type: 'audit-storage-exhausted', detail: `audit trail uses ${usage} bytes of its ${max}-byte budget (audit.maxBytes); no record is dropped` });
      } finally {
        this.inAlert = false;
      }
    } else if (usage < max) {
      this.lastExceededAt = -Infinity;
    }
  }

  /** Usage fell (retention deleted files): below 80 % the warning may fire again at the next crossing. */
  fell(usage: number): void {
    if (usage < 0.8 * this.o.maxBytes) this.warned = false;
  }
}
