import type { Logger } from '../log.js';
import { isStable, studyState, type StudySummary } from '../spool/studies.js';

/**
 * Study events for field engineers: `study-received` once a study is stable (nothing arrived for
 * studies.stableSeconds): what came, per series and modality, from whom; then, once every
 * destination owed it has all of it, `study-delivered` (per destination: count, bytes, first and
 * last delivery, duration), or `study-incomplete` when a destination dead-lettered some. UIDs,
 * codes and counts only: no patient data. Each is logged, and published on MQTT when configured.
 * Announcements are remembered in the study's summary, so a restart does not repeat them; new
 * objects of a study (or a resend) make it announce again.
 */
export type StudyEvent =
  | { type: 'study-received'; studyInstanceUid: string; instances: number; callingAeTitle: string; modalities: string[]; series: { seriesInstanceUid: string | null; modality: string | null; instances: number }[]; firstReceived: string; lastReceived: string }
  | {
      type: 'study-delivered' | 'study-incomplete';
      studyInstanceUid: string;
      instances: number;
      destinations: { name: string; count: number; bytes: number; deadLetter: number; firstDelivery: string | null; lastDelivery: string | null; durationSeconds: number | null }[];
    };

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The events due now for one study (at most one of each kind), and what to mark. */
export function dueEvents(s: StudySummary, now: number, stableMs: number): { event: StudyEvent; mark: 'received' | 'done' }[] {
  const out: { event: StudyEvent; mark: 'received' | 'done' }[] = [];
  if (!isStable(s, now, stableMs)) return out;
  if (!s.announced?.received) {
    const series = Object.entries(s.series).map(([uid, x]) => ({ seriesInstanceUid: uid || null, modality: x.modality ?? null, instances: x.instances }));
    out.push({
      mark: 'received',
      event: {
        type: 'study-received',
        studyInstanceUid: s.studyInstanceUid,
        instances: s.instances,
        callingAeTitle: s.callingAeTitle,
        modalities: [...new Set(series.map((x) => x.modality).filter((m): m is string => !!m))].sort(),
        series,
        firstReceived: iso(s.firstReceived)!,
        lastReceived: iso(s.lastReceived)!,
      },
    });
  }
  const state = studyState(s);
  if (state !== 'pending' && !s.announced?.done && Object.keys(s.destinations).length > 0) {
    out.push({
      mark: 'done',
      event: {
        type: state === 'delivered' ? 'study-delivered' : 'study-incomplete',
        studyInstanceUid: s.studyInstanceUid,
        instances: s.instances,
        destinations: Object.entries(s.destinations).map(([name, d]) => ({
          name,
          count: d.forwarded,
          bytes: d.bytes,
          deadLetter: d.deadLetter,
          firstDelivery: iso(d.firstDelivery),
          lastDelivery: iso(d.lastDelivery),
          durationSeconds: d.firstDelivery !== undefined && d.lastDelivery !== undefined ? Math.round((d.lastDelivery - d.firstDelivery) / 100) / 10 : null,
        })),
      },
    });
  }
  return out;
}

/** Looks at the studies every few seconds and says what became due. */
export class StudyEvents {
  private timer: NodeJS.Timeout | undefined;
  private readonly sinks: ((e: StudyEvent) => void)[] = [];

  constructor(
    private readonly deps: {
      studies: () => readonly StudySummary[];
      /** Remember an announcement (persisted in the study's summary). */
      mark: (uid: string, what: 'received' | 'done') => void;
      stableMs: number;
      log: Logger;
      everyMs?: number;
    },
  ) {}

  /** A reload changed studies.stableSeconds. */
  setStableMs(ms: number): void {
    this.deps.stableMs = ms;
  }

  onEvent(fn: (e: StudyEvent) => void): void {
    this.sinks.push(fn);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(Date.now()), this.deps.everyMs ?? Math.min(5000, Math.max(200, this.deps.stableMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  tick(now: number): void {
    for (const s of this.deps.studies()) {
      for (const { event, mark } of dueEvents(s, now, this.deps.stableMs)) {
        this.deps.mark(s.studyInstanceUid, mark);
        this.deps.log.info({ studyInstanceUid: event.studyInstanceUid, instances: event.instances, ...(event.type === 'study-received' ? { modalities: event.modalities, callingAeTitle: event.callingAeTitle } : { destinations: event.destinations.map((d) => `${d.name}:${d.count}${d.deadLetter ? `+${d.deadLetter} dead` : ''}`) }) }, event.type.replace('-', ' '));
        for (const fn of this.sinks) fn(event);
      }
    }
  }
}
