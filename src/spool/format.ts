import type { Level } from 'level';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { crashpoint } from '../util/crashpoint.js';
import { VERSION } from '../version.js';
import { FORMAT_KEY } from './keys.js';

/**
 * The spool's format version, kept in its index (`m!format`: `{"version":N,"by":"<release>"}`),
 * so that releases can change the layout safely in both directions:
 *
 * - a newer release meets an older spool: it migrates it in place, one step at a time, each
 *   step crash-safe (a step that a kill cuts short is simply run again at the next start: the
 *   marker says where the spool is, `migrating` which step was under way);
 * - an older release meets a newer spool: it refuses to start (exit code 7, the message names
 *   the release that wrote it) before it changes anything.
 *
 * Formats:
 *   1  releases before the format was recorded (no `m!format`): index keys o!/q!/d!/u!/c!/z!/h!.
 *   2  the marker itself, and `x!<id>` (objects quarantined because their file cannot be opened).
 *      Nothing of a format-1 spool needs rewriting: the step records the marker.
 *   3  index records carry an HMAC (record-codec.ts) and `m!index-mac` says all of them do; a
 *      record without one is refused. Recorded here so that a release before it, which would
 *      write unkeyed records (quarantined at the next upgrade), refuses the spool instead (exit
 *      7). The records themselves are MACed by recovery right after (index-auth.ts, resumable).
 * Object files carry their own version (the sealed header, src/security/sealed-file.ts) and so does
 * the audit trail (`format` in head.json, src/audit/chain.ts).
 */
export const SPOOL_FORMAT = 3;

interface Marker {
  version: number;
  by?: string;
  /** A migration to this version was under way when the process stopped. */
  migrating?: number;
}

/** One step: from `to - 1` to `to`. Must be safe to run again after a crash part-way. */
interface Step {
  to: number;
  what: string;
  run(db: Level<string, string>): Promise<void>;
}

const STEPS: Step[] = [
  {
    to: 2,
    what: 'record the format in the index (quarantine keys x! become possible)',
    run: async () => undefined,
  },
  {
    to: 3,
    what: 'index records authenticated with the device key (HMAC); earlier releases can no longer write this spool',
    run: async () => undefined,
  },
];

export function spoolFormatNewer(dir: string, found: Marker): PacsEdgeError {
  return new PacsEdgeError(
    'SPOOL_FORMAT_NEWER',
    `the spool ${dir} is in format ${found.version}${found.by ? `, written by pacs-edge ${found.by}` : ''}; pacs-edge ${VERSION} reads formats up to ${SPOOL_FORMAT}. Install pacs-edge ${found.by ?? 'of that release'} or newer (apt-get install pacs-edge). Nothing was changed.`,
    { retryable: false, details: { spool: dir, format: found.version, supported: SPOOL_FORMAT } },
  );
}

/** The marker, or the format a spool without one has (1 with objects; undefined when it is empty). */
export async function readFormat(db: Level<string, string>): Promise<Marker | undefined> {
  const raw = await db.get(FORMAT_KEY);
  if (raw !== undefined) {
    try {
      const m = JSON.parse(raw) as Marker;
      if (Number.isInteger(m.version) && m.version >= 1) return m;
    } catch {
      /* unreadable: treated as the newest this release knows nothing about */
    }
    return { version: Number.MAX_SAFE_INTEGER, by: 'an unknown release (unreadable format marker)' };
  }
  for await (const k of db.keys({ limit: 1 })) if (k) return { version: 1 };
  return undefined;
}

/** Refuse a newer spool; nothing is written. @throws PacsEdgeError SPOOL_FORMAT_NEWER */
export async function refuseNewerFormat(db: Level<string, string>, dir: string): Promise<Marker | undefined> {
  const m = await readFormat(db);
  if (m && (m.version > SPOOL_FORMAT || (m.migrating ?? 0) > SPOOL_FORMAT)) throw spoolFormatNewer(dir, m);
  return m;
}

/**
 * Bring the spool to {@link SPOOL_FORMAT}: an empty spool is marked at once; an older one goes
 * step by step, each step announced in the marker (`migrating`) before it runs and recorded
 * (synced) after it. Call after {@link refuseNewerFormat} and after recovery has found the spool
 * readable, before anything else writes.
 */
export async function migrate(db: Level<string, string>, log: Logger, found: Marker | undefined): Promise<void> {
  const put = (m: Marker) => db.put(FORMAT_KEY, JSON.stringify({ ...m, by: VERSION }), { sync: true });
  if (!found) {
    await put({ version: SPOOL_FORMAT });
    return;
  }
  let version = found.version;
  for (const step of STEPS) {
    if (step.to <= version) continue;
    log.warn({ from: version, to: step.to, what: step.what }, 'spool format migration: starting a step');
    await put({ version, migrating: step.to });
    crashpoint('migrate-step');
    await step.run(db);
    await put({ version: step.to });
    log.warn({ format: step.to }, 'spool format migration: step done');
    version = step.to;
  }
  if (found.by !== VERSION && version === found.version) await put({ version });
}
