import { category, describe, hex4, isOutOfResources, Status } from '../dicom/status.js';
import { Code, PacsEdgeError } from '../errors.js';

/**
 * What a delivery attempt means for the object, from the destination's answer or the error.
 *
 * - `delivered`: 0x0000, or a warning (0xBxxx) — the destination took responsibility; warnings
 *   are recorded as such.
 * - `retry`: transient — connection refused/reset/timeout, A-ASSOCIATE-RJ transient, out of
 *   resources (0xA7xx), resource limitation (0x0213), processing failure (0x0110). The object
 *   stays first in line and the destination backs off.
 * - `dead-letter`: permanent — A-ASSOCIATE-RJ permanent, SOP class not supported (0x0122), not
 *   authorized (0x0124), 0xA9xx, 0xCxxx, and every other failure status. Retrying cannot help;
 *   the object is parked with the status and reason, and the ones behind it flow on.
 *
 * @see PS3.4 Table B.2-1 (C-STORE statuses), PS3.7 Annex C, PS3.8 Table 9-21 (A-ASSOCIATE-RJ)
 */
export type Outcome =
  | { kind: 'delivered'; status: number; warning: boolean; /** Bytes sent (the Part 10 file as sent), when not the spooled size. */ bytes?: number }
  | { kind: 'retry'; reason: string; status?: number; peerComment?: string }
  | {
      kind: 'dead-letter';
      reason: string;
      status?: number;
      peerComment?: string;
      /** The spool's own copy is damaged (not the destination's doing): an alarm, not a refusal. */
      corrupt?: boolean;
    };

const TRANSIENT_STATUSES = new Set<number>([Status.ResourceLimitation.code, Status.ProcessingFailure.code]);

export function outcomeOfStatus(status: number, errorComment?: string): Outcome {
  const cat = category(status);
  if (cat === 'success') return { kind: 'delivered', status, warning: false };
  if (cat === 'warning') return { kind: 'delivered', status, warning: true };
  // The destination's Error Comment is free text that we do not control: it may name a patient.
  // It is kept apart from the reason: the dead letter seals it (src/spool/dead-letters.ts), and
  // it never reaches a log line, the status or MQTT.
  const reason = `${describe(status).name} (0x${hex4(status)})`;
  const peer = errorComment ? { peerComment: errorComment } : {};
  if (isOutOfResources(status) || TRANSIENT_STATUSES.has(status)) return { kind: 'retry', reason, status, ...peer };
  return { kind: 'dead-letter', reason, status, ...peer };
}

export function outcomeOfError(err: unknown): Outcome {
  // A spooled object that fails its checksum is never sent; its dead letter says `corrupt`.
  if (err instanceof PacsEdgeError && err.code === Code.SPOOL_CORRUPT) return { kind: 'dead-letter', reason: `corrupt: ${err.message}`, corrupt: true };
  if (err instanceof PacsEdgeError) {
    return err.retryable ? { kind: 'retry', reason: `${err.code}: ${err.message}` } : { kind: 'dead-letter', reason: `${err.code}: ${err.message}` };
  }
  return { kind: 'retry', reason: String((err as Error)?.message ?? err) };
}
