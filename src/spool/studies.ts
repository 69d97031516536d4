import type { SpoolRecord } from './spool.js';
import { studyKey } from './keys.js';

/**
 * What happened to each study, per destination: the answer to "the CT from 14:10 is not in the
 * PACS". Kept by the spool beside its objects (index keys `s!<studyUid>`), updated with every
 * reception, delivery, dead letter, retry, purge and resend, and outliving the objects (delivered
 * objects leave the spool; their study's history stays for `studies.keepDays`).
 *
 * Pending and dead-letter counts are rebuilt from the objects' queue and dead-letter entries at
 * every start (those are the truth); the history (first/last arrival, deliveries, bytes) is what
 * the summary alone knows. UIDs, codes and counts only: no patient data (the Accession Number
 * only as a keyed hash).
 */
export interface StudyDestination {
  /** Objects queued for it now. */
  pending: number;
  /** Objects it confirmed (a re-send counts again). */
  forwarded: number;
  /** Objects it refused for good (dead letters now). */
  deadLetter: number;
  /** Bytes of the objects it confirmed, as stored (compressed at rest, when they were). */
  bytes: number;
  /** The first confirmation of the current round (a round starts when objects are queued to a destination that owed nothing). */
  firstDelivery?: number | undefined;
  lastDelivery?: number | undefined;
}

export interface StudySummary {
  studyInstanceUid: string;
  callingAeTitle: string;
  accessionHash?: string | undefined;
  firstReceived: number;
  lastReceived: number;
  /** Objects received (identical re-sends not counted twice). */
  instances: number;
  bytes: number;
  series: Record<string, { modality?: string | undefined; instances: number }>;
  destinations: Record<string, StudyDestination>;
  /** When study-received / study-delivered (or -incomplete) were announced for its current content. */
  announced?: { received?: number | undefined; done?: number | undefined } | undefined;
}

export type StudyState = 'pending' | 'delivered' | 'incomplete';

type Put = { type: 'put'; key: string; value: string };

const dest = (): StudyDestination => ({ pending: 0, forwarded: 0, deadLetter: 0, bytes: 0 });

/** Counts per study and destination of what is owed (queued) and dead-lettered, from the objects' own entries. */
export type Owed = Map<string, Map<string, { pending: number; deadLetter: number }>>;

/** Count one queue or dead-letter entry of a study towards {@link StudyBook.rebuild}. */
export function owe(owed: Owed, studyUid: string | undefined, destination: string, kind: 'pending' | 'deadLetter'): void {
  if (!studyUid) return;
  let m = owed.get(studyUid);
  if (!m) owed.set(studyUid, (m = new Map()));
  let c = m.get(destination);
  if (!c) m.set(destination, (c = { pending: 0, deadLetter: 0 }));
  c[kind]++;
}

export class StudyBook {
  private readonly studies = new Map<string, StudySummary>();

  constructor(initial: Iterable<StudySummary> = []) {
    for (const s of initial) this.studies.set(s.studyInstanceUid, s);
  }

  get(uid: string): StudySummary | undefined {
    return this.studies.get(uid);
  }

  all(): StudySummary[] {
    return [...this.studies.values()];
  }

  get size(): number {
    return this.studies.size;
  }

  private op(s: StudySummary): Put {
    return { type: 'put', key: studyKey(s.studyInstanceUid), value: JSON.stringify(s) };
  }

  private of(r: SpoolRecord, now: number): StudySummary | undefined {
    const uid = r.studyInstanceUid;
    if (!uid) return undefined;
    let s = this.studies.get(uid);
    if (!s) {
      s = { studyInstanceUid: uid, callingAeTitle: r.callingAeTitle, firstReceived: now, lastReceived: now, instances: 0, bytes: 0, series: {}, destinations: {} };
      this.studies.set(uid, s);
    }
    return s;
  }

  private d(s: StudySummary, name: string): StudyDestination {
    return (s.destinations[name] ??= dest());
  }

  /** One more object owed to `name`; the first after the destination had everything starts a new round. */
  private queue(s: StudySummary, name: string): StudyDestination {
    const d = this.d(s, name);
    if (d.pending === 0) d.firstDelivery = undefined;
    d.pending++;
    return d;
  }

  /** A new object, queued for `record.pending`. */
  received(r: SpoolRecord): Put | undefined {
    const s = this.of(r, r.receivedAt);
    if (!s) return undefined;
    s.instances++;
    s.bytes += r.size;
    s.lastReceived = Math.max(s.lastReceived, r.receivedAt);
    s.firstReceived = Math.min(s.firstReceived, r.receivedAt);
    s.callingAeTitle = r.callingAeTitle;
    if (r.accessionHash) s.accessionHash = r.accessionHash;
    const series = r.seriesInstanceUid ?? '';
    const se = (s.series[series] ??= { instances: 0 });
    se.instances++;
    if (r.modality) se.modality = r.modality;
    for (const name of r.pending) this.queue(s, name);
    // New content: announce again once it is stable.
    s.announced = undefined;
    return this.op(s);
  }

  /** A destination confirmed the object. */
  delivered(r: SpoolRecord, name: string, now: number): Put | undefined {
    const s = r.studyInstanceUid ? this.studies.get(r.studyInstanceUid) : undefined;
    if (!s) return undefined;
    const d = this.d(s, name);
    d.pending = Math.max(0, d.pending - 1);
    d.forwarded++;
    d.bytes += r.size;
    d.firstDelivery ??= now;
    d.lastDelivery = now;
    return this.op(s);
  }

  /** Moved from a destination's queue to its dead letters. */
  deadLettered(r: SpoolRecord, name: string): Put | undefined {
    const s = r.studyInstanceUid ? this.studies.get(r.studyInstanceUid) : undefined;
    if (!s) return undefined;
    const d = this.d(s, name);
    d.pending = Math.max(0, d.pending - 1);
    d.deadLetter++;
    return this.op(s);
  }

  /** Queued again for a destination: from its dead letters, or (resend) after a delivery. */
  requeued(r: SpoolRecord, name: string, fromDeadLetter: boolean): Put | undefined {
    const s = r.studyInstanceUid ? this.studies.get(r.studyInstanceUid) : undefined;
    if (!s) return undefined;
    const d = this.queue(s, name);
    if (fromDeadLetter) d.deadLetter = Math.max(0, d.deadLetter - 1);
    s.announced = undefined;
    return this.op(s);
  }

  /** A destination's dead letter given up for good. */
  purged(r: SpoolRecord, name: string): Put | undefined {
    const s = r.studyInstanceUid ? this.studies.get(r.studyInstanceUid) : undefined;
    if (!s) return undefined;
    const d = this.d(s, name);
    d.deadLetter = Math.max(0, d.deadLetter - 1);
    return this.op(s);
  }

  /** Mark an announcement made (persisted with the next write, or now by the caller). */
  announce(uid: string, what: 'received' | 'done', at: number): Put | undefined {
    const s = this.studies.get(uid);
    if (!s) return undefined;
    s.announced = { ...s.announced, [what]: at };
    return this.op(s);
  }

  /**
   * At start: pending and dead-letter counts from the objects' own entries (`owed`: study →
   * destination → counts), the history as it was.
   */
  rebuild(owed: Owed): void {
    for (const s of this.studies.values()) {
      for (const d of Object.values(s.destinations)) {
        d.pending = 0;
        d.deadLetter = 0;
      }
      for (const [name, c] of owed.get(s.studyInstanceUid) ?? []) {
        const d = this.d(s, name);
        d.pending = c.pending;
        d.deadLetter = c.deadLetter;
      }
    }
  }

  /** Studies with nothing owed whose last activity is older than `before`: forgotten (their keys deleted). */
  expire(before: number): { type: 'del'; key: string }[] {
    const out: { type: 'del'; key: string }[] = [];
    for (const s of this.studies.values()) {
      const owed = Object.values(s.destinations).some((d) => d.pending > 0 || d.deadLetter > 0);
      const last = Math.max(s.lastReceived, ...Object.values(s.destinations).map((d) => d.lastDelivery ?? 0));
      if (!owed && last < before) {
        this.studies.delete(s.studyInstanceUid);
        out.push({ type: 'del', key: studyKey(s.studyInstanceUid) });
      }
    }
    return out;
  }
}

/** Where a study stands: owed somewhere, delivered everywhere, or delivered but with dead letters. */
export function studyState(s: StudySummary): StudyState {
  const ds = Object.values(s.destinations);
  if (ds.some((d) => d.pending > 0)) return 'pending';
  if (ds.some((d) => d.deadLetter > 0)) return 'incomplete';
  return 'delivered';
}

/** Stable: nothing arrived for `stableMs` (studies.stableSeconds): the study is complete at the gateway. */
export function isStable(s: StudySummary, now: number, stableMs: number): boolean {
  return now - s.lastReceived >= stableMs;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The JSON a field engineer sees (`pacs-edge studies --json`, `study UID --json`): UIDs, codes, counts, ISO 8601 times. */
export function studyJson(s: StudySummary, now: number, stableMs: number, detail: boolean): Record<string, unknown> {
  const series = Object.entries(s.series);
  const modalities = [...new Set(series.map(([, x]) => x.modality).filter((m): m is string => !!m))].sort();
  return {
    studyInstanceUid: s.studyInstanceUid,
    instances: s.instances,
    series: detail ? series.map(([uid, x]) => ({ seriesInstanceUid: uid || null, modality: x.modality ?? null, instances: x.instances })) : series.length,
    modalities,
    callingAeTitle: s.callingAeTitle,
    firstReceived: iso(s.firstReceived),
    lastReceived: iso(s.lastReceived),
    stable: isStable(s, now, stableMs),
    state: studyState(s),
    destinations: Object.entries(s.destinations)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, d]) => ({
        name,
        forwarded: d.forwarded,
        pending: d.pending,
        deadLetter: d.deadLetter,
        ...(detail ? { bytes: d.bytes, firstDelivery: iso(d.firstDelivery), lastDelivery: iso(d.lastDelivery) } : {}),
      })),
  };
}

/** The studies a query asks for, newest first. */
export function selectStudies(all: readonly StudySummary[], q: { sinceMs?: number | undefined; state?: StudyState | 'all' | undefined; accessionHash?: string | undefined }, now: number): StudySummary[] {
  return all
    .filter((s) => q.sinceMs === undefined || s.lastReceived >= now - q.sinceMs)
    .filter((s) => !q.state || q.state === 'all' || studyState(s) === q.state)
    .filter((s) => !q.accessionHash || s.accessionHash === q.accessionHash)
    .sort((a, b) => b.lastReceived - a.lastReceived);
}

/** A study query as the control socket and the CLI carry it. */
export interface StudyQuery {
  sinceMs?: number | undefined;
  state?: StudyState | 'all' | undefined;
  /** The Accession Number as the operator typed it: hashed by whoever holds the key, never stored. */
  accession?: string | undefined;
}

export function parseStudyQuery(body: unknown): StudyQuery {
  const b = (body ?? {}) as { sinceMs?: unknown; state?: unknown; accession?: unknown };
  const q: StudyQuery = {};
  if (typeof b.sinceMs === 'number' && b.sinceMs > 0) q.sinceMs = b.sinceMs;
  if (b.state === 'pending' || b.state === 'delivered' || b.state === 'incomplete' || b.state === 'all') q.state = b.state;
  if (typeof b.accession === 'string' && b.accession.length > 0 && b.accession.length <= 64) q.accession = b.accession;
  return q;
}

/** The answer to a study query: `{ studies: [...] }` (the JSON of issue 14). */
export function answerStudies(all: readonly StudySummary[], q: StudyQuery, o: { now: number; stableMs: number; hash: (accession: string) => string | undefined }): { studies: Record<string, unknown>[] } {
  const accessionHash = q.accession ? (o.hash(q.accession) ?? '-') : undefined;
  return { studies: selectStudies(all, { sinceMs: q.sinceMs, state: q.state, accessionHash }, o.now).map((s) => studyJson(s, o.now, o.stableMs, false)) };
}
