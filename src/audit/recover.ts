import { stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { anchorFindings } from './anchor.js';
import { GENESIS, listFiles, parseRecord, readHead, readLines, readRecords, type Head } from './chain.js';

/** Where an audit trail's chain stands at open, and what does not add up. */
export interface RecoveredChain {
  /** Seq and HMAC of the last record, which the next one chains to. */
  seq: number;
  prev: string;
  head: Head;
  /** Bytes of the day files. */
  usage: number;
  /** Every integrity problem found (each becomes a Security Alert). */
  problems: string[];
  /** Those of them the anchor check found. */
  anchorProblems: string[];
}

/**
 * Find where the chain stands: the last complete record on disk, checked against the head and
 * the anchor. A torn last line (a crash during the append) is cut off: it was never fsynced, so
 * never in the head. Problems are returned, not thrown: the trail records them and carries on.
 */
export async function recoverChain(o: { dir: string; log: Logger; key: Buffer; anchorKey: Buffer; anchorFile?: string | undefined }): Promise<RecoveredChain> {
  const files = await listFiles(o.dir);
  let last: { seq: number; hmac: string } | undefined;
  for (let i = files.length - 1; i >= 0 && !last; i--) {
    const file = path.join(o.dir, files[i]!);
    const { lines, rest, size } = await readLines(file);
    if (rest > 0 && i === files.length - 1) {
      o.log.warn({ file: files[i], bytes: rest }, 'audit trail: removed a torn last line left by a crash');
      await truncate(file, size - rest);
    }
    for (let k = lines.length - 1; k >= 0 && !last; k--) {
      const r = parseRecord(lines[k]!.text);
      if (r) last = { seq: r.seq, hmac: r.hmac };
    }
  }
  let usage = 0;
  for (const f of files) usage += (await stat(path.join(o.dir, f))).size;

  let seq = 0;
  let prev = GENESIS;
  let head: Head;
  const hs = await readHead(o.dir, o.key);
  const problems: string[] = [];
  if (hs.state === 'ok') {
    head = hs.head;
    if (!last || last.seq < hs.head.seq) {
      // Records the head vouches for are gone (tail truncated, files deleted). Continue the
      // chain from the head, so the gap stays visible to `audit verify` for good.
      problems.push(`the log ends at seq ${last?.seq ?? 0} but its head says ${hs.head.seq}: records were removed`);
      seq = hs.head.seq;
      prev = hs.head.hmac;
    } else {
      seq = last.seq;
      prev = last.hmac;
    }
  } else {
    if (hs.state === 'invalid') problems.push(`head file: ${hs.detail}`);
    else if (files.length > 0) problems.push('head file is missing while day files exist');
    if (last) {
      seq = last.seq;
      prev = last.hmac;
    }
    head = { seq, hmac: prev, baseSeq: 0, baseHmac: GENESIS };
  }
  let anchorProblems: string[] = [];
  if (o.anchorFile) {
    const found = await anchorFindings(o.anchorFile, o.anchorKey, { seq, hmac: prev, baseSeq: head.baseSeq }, async (s) => {
      const r = (await readRecords(o.dir, s - 1, 1)).records[0];
      return r?.seq === s ? r : undefined;
    });
    problems.push(...found.problems);
    anchorProblems = [...found.problems];
    if (found.continueFrom) {
      seq = found.continueFrom.seq;
      prev = found.continueFrom.hmac;
    }
  }
  return { seq, prev, head: { ...head, seq, hmac: prev }, usage, problems, anchorProblems };
}
