/** What the audit trail raises to its owner (the gateway turns these into MQTT events and health). */
export type AuditAlarm =
  /** A record could not be made durable (it stays queued and is retried). */
  | { kind: 'write-failed'; error: string; failures: number }
  /** Usage crossed 80 % of `audit.maxBytes` (once per crossing). */
  | { kind: 'budget-warning'; usedBytes: number; maxBytes: number }
  /** Usage is at or over `audit.maxBytes` (repeats while it lasts). */
  | { kind: 'budget-exceeded'; usedBytes: number; maxBytes: number }
  /** At open: the files end before the head, the head is missing or fails its HMAC. */
  | { kind: 'chain-broken'; detail: string }
  /** Recording stopped: a write failed or the file system is (nearly) full (failure-watch.ts). Once per failure. */
  | { kind: 'audit-failure'; reason: string; since: string }
  /** Recording works again after `seconds`. */
  | { kind: 'audit-recovered'; seconds: number };
