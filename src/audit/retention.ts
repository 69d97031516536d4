import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { syncDirSync } from '../util/durable-write.js';
import { fileDay, listFiles, parseRecord, readLines } from './chain.js';

/** What a retention pass needs of the trail whose files it deletes (trail.ts). */
export interface RetentionHost {
  dir: string;
  retentionDays: number;
  today: Date;
  /** Records up to this seq may be deleted (the syslog cursor); default: all. */
  deliveredSeq?: (() => number) | undefined;
  log: Logger;
  /** The day file the trail is appending to: never deleted. */
  openFile: string;
  /** The chain now starts after this record: the head's base moves there, before its file goes. */
  moveBase(seq: number, hmac: string): Promise<void>;
  /** A file went: the trail counts it and records the deletion (110101 Audit Log Used, action D). */
  deleted(file: string, bytes: number): void;
}

/**
 * Retention: day files older than `retentionDays` (UTC days before today) are deleted, oldest
 * first, never today's, and never one holding records the syslog forwarder has not delivered.
 * Before a file goes, the head's base moves to its last record (so verify knows the chain now
 * starts there), and after, the deletion is itself recorded.
 */
export async function deleteExpired(h: RetentionHost): Promise<void> {
  const today = Date.UTC(h.today.getUTCFullYear(), h.today.getUTCMonth(), h.today.getUTCDate());
  const limit = today - h.retentionDays * 86_400_000;
  const files = await listFiles(h.dir);
  for (const f of files.slice(0, -1)) {
    const day = fileDay(f)!;
    if (day >= limit || f === h.openFile) break;
    const full = path.join(h.dir, f);
    const { lines } = await readLines(full);
    let last: { seq: number; hmac: string } | undefined;
    for (let k = lines.length - 1; k >= 0 && !last; k--) {
      const r = parseRecord(lines[k]!.text);
      if (r) last = { seq: r.seq, hmac: r.hmac };
    }
    if (last && h.deliveredSeq && h.deliveredSeq() < last.seq) {
      h.log.warn({ file: f, lastSeq: last.seq, deliveredSeq: h.deliveredSeq() }, 'audit file past retention kept: not yet delivered to syslog');
      break;
    }
    const size = (await stat(full)).size;
    if (last) await h.moveBase(last.seq, last.hmac);
    await unlink(full);
    syncDirSync(h.dir);
    h.log.info({ file: f, lastSeq: last?.seq, retentionDays: h.retentionDays }, 'audit file deleted after its retention period');
    h.deleted(f, size);
  }
}
