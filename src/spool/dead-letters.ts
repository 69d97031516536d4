import { sealBuffer, type SealKey, unsealBuffer } from '../security/sealed-file.js';
import { deadLetterKey, deadLetterRange, objectKey, queueKey } from './keys.js';
import type { DeadLetter, SpoolRecord } from './spool.js';
import type { SpoolState } from './spool-state.js';

/**
 * Dead letters (`d!<dest>!<id>`): objects a destination refused for good, or that no destination
 * takes, set aside until an operator re-sends or purges them (`pacs-edge dead-letter`). A dead
 * letter is never dropped in silence: the record and its file stay until the purge. Also the
 * operator's re-send of a whole study (`pacs-edge resend`), which queues objects again the same way.
 */

/**
 * The dead-letter list of objects no destination's `forward[].match` takes: kept (never dropped
 * in silence), alarmed, and purged or re-sent by an operator once the routing is right.
 */
export const UNROUTED = 'unrouted';

export function unroutedLetter(r: SpoolRecord): DeadLetter {
  return {
    id: r.id,
    destination: UNROUTED,
    sopInstanceUid: r.sopInstanceUid,
    sopClassUid: r.sopClassUid,
    studyInstanceUid: r.studyInstanceUid,
    reason: `no destination takes it (forward[].match; modality ${r.modality ?? '-'}, calling AE ${r.callingAeTitle}, SOP Class ${r.sopClassUid})`,
    at: Date.now(),
  };
}

export class DeadLetters {
  constructor(
    private readonly h: SpoolState,
    /** The destination no longer owes the object (`delivered` false: an operator gave it up). */
    private readonly done: (destination: string, id: string, delivered: boolean) => Promise<void>,
    /** Seals a destination's Error Comment; undefined: only its length is kept. */
    private readonly commentKey?: SealKey | undefined,
  ) {}

  async retry(destination: string, ids?: readonly string[]): Promise<number> {
    const letters = (await this.list(destination)).filter((d) => !ids || ids.includes(d.id));
    const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
    const back: { id: string; size: number; receivedAt: number }[] = [];
    for (const d of letters) {
      ops.push({ type: 'del', key: deadLetterKey(destination, d.id) });
      const r = await this.h.records.get(d.id);
      if (r && r.pending.includes(destination) && destination !== UNROUTED) {
        ops.push({ type: 'put', key: queueKey(destination, d.id), value: '' });
        back.push({ id: d.id, size: r.size, receivedAt: r.receivedAt });
        const study = this.h.studies.requeued(r, destination, true);
        if (study) ops.push(study);
      }
    }
    if (ops.length === 0) return 0;
    await this.h.db.batch(ops as { type: 'put'; key: string; value: string }[], { sync: true });
    for (const b of back) this.h.queues.requeue(destination, b.id, b);
    this.h.queues.addDeadLetters(destination, -letters.length);
    this.h.emitEnqueued([destination]);
    return back.length;
  }

  /**
   * Queue a study's objects again for destinations that already have them (a PACS lost them;
   * `pacs-edge resend`). Objects still queued stay where they are; dead letters are retried;
   * delivered objects still in the spool (spool.keepForwardedHours) are queued again. Returns
   * what was done and how many of the study's objects are no longer here to send.
   */
  async resendStudy(studyUid: string, destinations: readonly string[]): Promise<{ queued: number; retried: number; alreadyQueued: number; gone: number }> {
    const out = { queued: 0, retried: 0, alreadyQueued: 0, gone: 0 };
    const summary = this.h.studies.get(studyUid);
    const found: SpoolRecord[] = [];
    for await (const r of this.h.records.all()) if (r.studyInstanceUid === studyUid && !this.h.quarantined.has(r.id)) found.push(r);
    out.gone = Math.max(0, (summary?.instances ?? found.length) - found.length);
    for (const dest of destinations) {
      const dead = new Set((await this.list(dest)).map((d) => d.id));
      const retry = found.filter((r) => dead.has(r.id)).map((r) => r.id);
      if (retry.length) out.retried += await this.retry(dest, retry);
      for (const r0 of found) {
        if (dead.has(r0.id)) continue;
        if (this.h.queues.has(dest, r0.id)) {
          out.alreadyQueued++;
          continue;
        }
        const r = (await this.h.records.get(r0.id)) ?? r0;
        const pending = r.pending.includes(dest) ? r.pending : [...r.pending, dest];
        const updated: SpoolRecord = { ...r, pending, forwardedAt: undefined };
        const study = this.h.studies.requeued(updated, dest, false);
        await this.h.db.batch(
          [
            { type: 'put', key: objectKey(r.id), value: this.h.records.seal(updated) },
            { type: 'put', key: queueKey(dest, r.id), value: '' },
            ...(study ? [study] : []),
          ],
          { sync: true },
        );
        this.h.records.remember(updated);
        this.h.kept.delete(r.id);
        this.h.queues.requeue(dest, r.id, { size: r.size, receivedAt: r.receivedAt });
        out.queued++;
      }
      this.h.emitEnqueued([dest]);
    }
    return out;
  }

  async purge(destination: string, ids?: readonly string[]): Promise<number> {
    const letters = (await this.list(destination)).filter((d) => !ids || ids.includes(d.id));
    for (const d of letters) {
      await this.h.db.del(deadLetterKey(destination, d.id), { sync: true });
      this.h.queues.addDeadLetters(destination, -1);
      // The destination no longer owes it: the same bookkeeping as a delivery.
      await this.done(destination, d.id, false);
    }
    return letters.length;
  }

  async add(destination: string, id: string, reason: string, status?: number, peerComment?: string): Promise<void> {
    const record = await this.h.records.get(id);
    if (!record) return;
    const comment = peerComment ? sealComment(this.commentKey, peerComment) : undefined;
    const dl: DeadLetter = { id, destination, sopInstanceUid: record.sopInstanceUid, sopClassUid: record.sopClassUid, studyInstanceUid: record.studyInstanceUid, reason, status, at: Date.now(), ...(comment ? { comment } : {}) };
    const study = this.h.studies.deadLettered(record, destination);
    await this.h.db.batch(
      [
        { type: 'del', key: queueKey(destination, id) },
        { type: 'put', key: deadLetterKey(destination, id), value: JSON.stringify(dl) },
        ...(study ? [study] : []),
      ],
      { sync: true },
    );
    this.h.queues.remove(destination, id);
    this.h.queues.addDeadLetters(destination, 1);
  }

  async list(destination?: string): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    for await (const v of this.h.db.values(deadLetterRange(destination))) out.push(JSON.parse(v) as DeadLetter);
    return out;
  }
}

/**
 * A destination's Error Comment (0000,0902) as a dead letter keeps it: free text we do not
 * control, which a PACS may fill with a patient's name. Sealed (src/security/sealed-file.ts)
 * under a key of its own derived from the device key (`dead-letter-comment`), so the index on
 * the card does not hold it in clear; without a key (profile none) only its length is kept.
 */
export function sealComment(key: SealKey | undefined, text: string): NonNullable<DeadLetter['comment']> {
  const bytes = Buffer.from(text, 'utf8');
  return key ? { length: bytes.length, sealed: sealBuffer(key, bytes).toString('base64') } : { length: bytes.length };
}

/** The Error Comment of a dead letter, for an administrator holding the device key. @throws PacsEdgeError SPOOL_CORRUPT */
export function openComment(key: SealKey, comment: NonNullable<DeadLetter['comment']>): string | undefined {
  return comment.sealed === undefined ? undefined : unsealBuffer(key, Buffer.from(comment.sealed, 'base64')).toString('utf8');
}
