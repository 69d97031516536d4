import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Spool } from './spool.js';

/**
 * What an operator may do to the queue, in one place for both ways it is done: through the
 * running gateway's control socket, and by a command on a stopped gateway's spool (opened for
 * `admin` access by src/spool/open.ts). Each change is logged and handed to `record` for the
 * audit trail, one record per study, naming the operator.
 */
export interface OperatorRequest {
  destination: string;
  /** Only these dead letters (ids); all of the destination's when absent. */
  ids?: readonly string[] | undefined;
  /** The operator: the account that ran the command. */
  by: string;
}

/** An audit record of an operator's change (src/audit: 110103 U for `requeued`, 110105 D for `purged`). */
export interface OperatorAuditRecord {
  kind: 'instances-requeued' | 'purged';
  studyUid: string;
  count: number;
  reason: string;
  by: string;
}

/** Validate a request body from the control socket (its fields cross a process boundary). */
export function operatorRequest(body: unknown): OperatorRequest {
  const b = body as { destination?: unknown; ids?: unknown; by?: unknown } | undefined;
  const bad = (m: string) => new PacsEdgeError('CONTROL_BAD_REQUEST', m, { retryable: false });
  if (!b || typeof b.destination !== 'string') throw bad('destination is required');
  // Any well-formed name: a destination removed from the configuration may still hold dead letters.
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(b.destination)) throw bad('destination is not a valid destination name');
  if (b.ids !== undefined && (!Array.isArray(b.ids) || !b.ids.every((i) => typeof i === 'string' && /^\d{1,16}$/.test(i)))) throw bad('ids must be a list of spool ids');
  const by = typeof b.by === 'string' && b.by.length > 0 && b.by.length <= 128 ? b.by : 'unknown operator';
  return { destination: b.destination, ids: b.ids as string[] | undefined, by };
}

/** Study UID of each dead letter, from the spool's records (dead letters name instances only). */
async function byStudy(spool: Pick<Spool, 'find'>, sopInstanceUids: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const uid of sopInstanceUids) {
    const study = (await spool.find(uid))?.studyInstanceUid ?? '';
    out.set(study, (out.get(study) ?? 0) + 1);
  }
  return out;
}

/** Put dead letters back in the destination's queue, at their place. */
export async function retryDeadLetters(
  spool: Pick<Spool, 'listDeadLetters' | 'retryDeadLetters' | 'find'>,
  req: OperatorRequest,
  deps: { log: Logger; record: (r: OperatorAuditRecord) => void; how: string },
): Promise<{ retried: number }> {
  const letters = (await spool.listDeadLetters(req.destination)).filter((d) => !req.ids || req.ids.includes(d.id));
  const studies = await byStudy(spool, letters.map((d) => d.sopInstanceUid));
  const retried = await spool.retryDeadLetters(req.destination, req.ids);
  deps.log.info({ destination: req.destination, retried, ids: req.ids, by: req.by }, `dead letters put back in the queue (operator request, ${deps.how})`);
  if (retried > 0) for (const [studyUid, count] of studies) deps.record({ kind: 'instances-requeued', studyUid, count, reason: `dead letters queued again for ${req.destination} by an operator`, by: req.by });
  return { retried };
}

/** Give up on dead letters for good: the destination will never get them. */
export async function purgeDeadLetters(
  spool: Pick<Spool, 'listDeadLetters' | 'purgeDeadLetters' | 'find'>,
  req: OperatorRequest,
  deps: { log: Logger; record: (r: OperatorAuditRecord) => void; how: string },
): Promise<{ purged: number }> {
  const letters = (await spool.listDeadLetters(req.destination)).filter((d) => !req.ids || req.ids.includes(d.id));
  // Looked up before the purge: a purged object may leave the spool, and its record with it.
  const studies = await byStudy(spool, letters.map((d) => d.sopInstanceUid));
  const purged = await spool.purgeDeadLetters(req.destination, req.ids);
  deps.log.warn(
    { destination: req.destination, purged, ids: req.ids ?? letters.map((d) => d.id), by: req.by },
    `dead letters purged: the destination will never get them (operator request, ${deps.how})`,
  );
  for (const [studyUid, count] of studies) deps.record({ kind: 'purged', studyUid, count, reason: `dead letters of ${req.destination} purged by an operator`, by: req.by });
  return { purged };
}

/** A resend request from the control socket or the CLI. */
export interface ResendRequest {
  study: string;
  /** Only this destination; all configured ones the study went to when absent. */
  destination?: string | undefined;
  by: string;
}

export function resendRequest(body: unknown): ResendRequest {
  const b = body as { study?: unknown; destination?: unknown; by?: unknown } | undefined;
  const bad = (m: string) => new PacsEdgeError('CONTROL_BAD_REQUEST', m, { retryable: false });
  if (!b || typeof b.study !== 'string' || !/^[0-9.]{1,64}$/.test(b.study)) throw bad('study (a Study Instance UID) is required');
  if (b.destination !== undefined && (typeof b.destination !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(b.destination))) throw bad('destination is not a valid destination name');
  const by = typeof b.by === 'string' && b.by.length > 0 && b.by.length <= 128 ? b.by : 'unknown operator';
  return { study: b.study, ...(b.destination ? { destination: b.destination as string } : {}), by };
}

/**
 * Send a study again (`pacs-edge resend`): its objects still in the spool are queued again for
 * the destinations (dead letters retried); what is no longer here (delivered longer ago than
 * spool.keepForwardedHours) is counted and said. Logged and audited (110103, the operator).
 */
export async function resendStudy(
  spool: { resendStudy(uid: string, destinations: readonly string[]): Promise<{ queued: number; retried: number; alreadyQueued: number; gone: number }>; studies: { get(uid: string): { destinations: Record<string, unknown> } | undefined } },
  req: ResendRequest,
  deps: { log: Logger; record: (r: OperatorAuditRecord) => void; how: string; destinations: readonly string[] },
): Promise<{ study: string; destinations: string[]; queued: number; retried: number; alreadyQueued: number; gone: number }> {
  const summary = spool.studies.get(req.study);
  if (!summary) throw new PacsEdgeError('STUDY_NOT_FOUND', `no study ${req.study} in the spool's history (studies.keepDays)`, { retryable: false });
  if (req.destination && !deps.destinations.includes(req.destination)) throw new PacsEdgeError('CONTROL_BAD_REQUEST', `no destination "${req.destination}" in the configuration`, { retryable: false });
  // The destinations the study went to (or was meant for) that are still configured.
  const to = req.destination ? [req.destination] : Object.keys(summary.destinations).filter((d) => deps.destinations.includes(d));
  const r = await spool.resendStudy(req.study, to);
  deps.log.warn({ study: req.study, destinations: to, ...r, by: req.by }, `study queued again (operator request, ${deps.how})`);
  if (r.queued + r.retried > 0) deps.record({ kind: 'instances-requeued', studyUid: req.study, count: r.queued + r.retried, reason: `study re-sent to ${to.join(', ')} by an operator`, by: req.by });
  return { study: req.study, destinations: to, ...r };
}
