import type { Level } from 'level';
import type { Logger } from '../log.js';
import { objectKey } from './keys.js';
import { INDEX_MAC_MARKER, type RecordCodec } from './record-codec.js';
import type { SpoolRecord } from './spool.js';

/** What recovery's survey knows of one index record (recovery.ts). */
export interface IndexEntry {
  id: string;
  record: SpoolRecord | undefined;
  mac: 'ok' | 'missing' | 'unchecked' | undefined;
  /** How its file starts (undefined: no file). */
  head: { sealed: unknown; problem: unknown } | undefined;
}

/**
 * Authenticate the index once (see record-codec.ts). A spool whose index has no marker and no
 * MACed record was written by an earlier release: its records are MACed as they are (with
 * `plain` taken from their file's header), the marker saying so is written, and from then on a
 * record without a MAC is refused. The adoption is announced in the marker first (`adopting`,
 * MACed), so a crash half-way resumes it rather than refusing the records not yet MACed.
 * A marker that is missing while MACed records exist, or that is not ours, was removed or
 * forged: nothing is adopted, it is logged, and the marker is written again.
 */
export async function authenticateIndex(opts: { db: Level<string, string>; codec: RecordCodec; log: Logger }, entries: IndexEntry[]): Promise<void> {
  const { db, codec, log } = opts;
  if (!codec.keyed) return;
  const raw = await db.get(INDEX_MAC_MARKER);
  const state = raw === undefined ? 'absent' : codec.markerState(raw);
  const adopt = state === 'adopting' || (state === 'absent' && !entries.some((e) => e.mac === 'ok'));
  if (!adopt) {
    codec.strict = true;
    if (state !== 'done') {
      log.error({ marker: state }, 'spool index: its authentication marker is missing or not made with this key, yet its records are authenticated: nothing unauthenticated is adopted');
      await db.put(INDEX_MAC_MARKER, codec.marker(Date.now(), false), { sync: true });
    }
    return;
  }
  const unkeyed = entries.filter((e) => e.record && e.mac === 'missing');
  if (unkeyed.length > 0) log.warn({ records: unkeyed.length }, 'spool index: authenticating the records of an earlier release (once, at the first start of this release)');
  if (state !== 'adopting') await db.put(INDEX_MAC_MARKER, codec.marker(Date.now(), true), { sync: true });
  for (let i = 0; i < unkeyed.length; i += 512) {
    const ops: { type: 'put'; key: string; value: string }[] = [];
    for (const e of unkeyed.slice(i, i + 512)) {
      const plain = e.head !== undefined && !e.head.sealed && !e.head.problem;
      e.record = { ...e.record!, ...(plain ? { plain: true } : {}) };
      e.mac = 'ok';
      ops.push({ type: 'put', key: objectKey(e.id), value: codec.seal(e.record) });
    }
    await db.batch(ops);
  }
  // Synced: makes the batches before it durable too (one LevelDB log).
  await db.put(INDEX_MAC_MARKER, codec.marker(Date.now(), false), { sync: true });
  codec.strict = true;
}

