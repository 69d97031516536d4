import path from 'node:path';
import { readAnchor } from './anchor.js';
import { readCursor } from './syslog.js';
import { GENESIS, listFiles, parseRecord, readHead, readLines, recordHmac, sameHex, type Head } from './chain.js';

/** What is wrong with the first bad record. */
export type ProblemKind =
  /** The line is not a record, or its content does not match its HMAC, or it does not chain to the record before it. */
  | 'edited'
  /** Records are missing inside a file, or between files (seq jumps). */
  | 'missing'
  /** A whole day file (or the oldest files) is gone: the gap falls on a file boundary. */
  | 'file-deleted'
  /** The log ends before the record the head vouches for. */
  | 'truncated'
  /** A record comes after one with a higher or equal seq (lines swapped or duplicated). */
  | 'reordered'
  /** head.json is missing while records exist, or fails its HMAC. */
  | 'head-missing'
  | 'head-invalid'
  /** The anchor outside the audit directory (anchor.ts) is missing while records exist, or fails its MAC. */
  | 'anchor-missing'
  | 'anchor-invalid'
  /** The trail ends below the anchor or the syslog cursor, or its record at the anchor's seq is another: head and files were rolled back (or replaced) together. */
  | 'rolled-back';

export interface VerifyProblem {
  what: ProblemKind;
  /** Day file, or head.json. */
  file: string;
  /** 1-based line in that file (0 for the head). */
  line: number;
  /** The seq the bad record has (or, for a gap or truncation, the first missing seq). */
  seq: number;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  dir: string;
  files: number;
  records: number;
  firstSeq?: number | undefined;
  lastSeq?: number | undefined;
  head?: Head | undefined;
  /** The first problem found; the walk stops there. */
  problem?: VerifyProblem | undefined;
  /** A torn last line (a crash during an append, never acknowledged in the head): not a failure. */
  tornTail?: { file: string; bytes: number } | undefined;
  /** No head yet, and the anchor says none was ever written: a new trail stopped before its first head. */
  headNotYetWritten?: boolean | undefined;
}

/**
 * Walk every day file in order and recompute the chain: each record's HMAC, its seq (previous
 * + 1) and its `prev` (the previous record's HMAC, across files), starting from the head's base
 * (64 zeros and seq 0 until retention deletes a file). Then the head: the log must reach the seq
 * it names, with the same HMAC. Stops at the first problem and names it.
 */
export async function verifyTrail(dir: string, key: Buffer, opts: { anchor?: { file: string; key: Buffer } | undefined } = {}): Promise<VerifyReport> {
  // Read in the reverse of the order a running gateway writes (files, head, anchor), so a trail
  // growing meanwhile is never taken for one rolled back. Nothing here writes.
  // The syslog cursor is a third place that knows how far the trail got (the forwarder sends
  // only durable records): not authenticated, and in the audit directory, so it only catches a
  // rollback that forgot it; the collector's copy is what an attacker with the disk cannot reach.
  const cursor = await readCursor(dir);
  const anchor = opts.anchor ? await readAnchor(opts.anchor.file, opts.anchor.key) : undefined;
  const hs = await readHead(dir, key);
  const files = await listFiles(dir);
  const report: VerifyReport = { ok: true, dir, files: files.length, records: 0 };
  const fail = (p: VerifyProblem): VerifyReport => ({ ...report, ok: false, problem: p });
  if (hs.state === 'invalid') return fail({ what: 'head-invalid', file: 'head.json', line: 0, seq: 0, detail: hs.detail });
  const head = hs.state === 'ok' ? hs.head : undefined;
  report.head = head;

  let expSeq = head?.baseSeq ?? 0;
  let expHmac = head?.baseHmac ?? GENESIS;
  let headSeen = false;
  for (let fi = 0; fi < files.length; fi++) {
    const name = files[fi]!;
    const { lines, rest } = await readLines(path.join(dir, name));
    if (rest > 0) {
      if (fi === files.length - 1) report.tornTail = { file: name, bytes: rest };
      else return fail({ what: 'edited', file: name, line: lines.length + 1, seq: expSeq + 1, detail: 'the file ends in the middle of a line, and later files exist' });
    }
    for (let li = 0; li < lines.length; li++) {
      const at = { file: name, line: li + 1 };
      const r = parseRecord(lines[li]!.text);
      if (!r) return fail({ ...at, what: 'edited', seq: expSeq + 1, detail: 'the line is not a well-formed audit record' });
      if (!sameHex(r.hmac, recordHmac(key, r.prev, r.seq, r.at, r.xml))) {
        return fail({ ...at, what: 'edited', seq: r.seq, detail: 'the record does not match its HMAC (its content was changed)' });
      }
      if (r.seq <= expSeq) {
        return fail({ ...at, what: 'reordered', seq: r.seq, detail: `seq ${r.seq} comes after seq ${expSeq}` });
      }
      if (r.seq > expSeq + 1) {
        const range = r.seq - 1 === expSeq + 1 ? `seq ${expSeq + 1}` : `seq ${expSeq + 1}-${r.seq - 1}`;
        const boundary = li === 0;
        // The missing record further down the same file: lines were moved, not deleted.
        const later = lines.slice(li + 1).findIndex((l) => parseRecord(l.text)?.seq === expSeq + 1);
        if (later >= 0) {
          return fail({ ...at, what: 'reordered', seq: r.seq, detail: `seq ${r.seq} stands where seq ${expSeq + 1} belongs (that one is at line ${li + 2 + later})` });
        }
        return fail({
          ...at,
          what: boundary ? 'file-deleted' : 'missing',
          seq: expSeq + 1,
          detail: boundary
            ? `${range} missing before this file${fi === 0 ? ' (the oldest day files were deleted outside the retention rule)' : ` (after ${files[fi - 1]}): a day file, or the end of the previous one, was deleted`}`
            : `${range} missing before this record (lines deleted)`,
        });
      }
      if (!sameHex(r.prev, expHmac)) {
        return fail({ ...at, what: 'edited', seq: r.seq, detail: `the record does not chain to seq ${expSeq} (that record was replaced)` });
      }
      if (anchor?.state === 'ok' && r.seq === anchor.anchor.seq && !sameHex(r.hmac, anchor.anchor.hmac)) {
        return fail({ ...at, what: 'rolled-back', seq: r.seq, detail: `the record differs from the one the anchor ${opts.anchor!.file} names: the trail was replaced` });
      }
      if (head && r.seq === head.seq) {
        if (!sameHex(r.hmac, head.hmac)) return fail({ ...at, what: 'edited', seq: r.seq, detail: 'the record differs from the one the head vouches for' });
        headSeen = true;
      }
      report.firstSeq ??= r.seq;
      report.lastSeq = r.seq;
      report.records++;
      expSeq = r.seq;
      expHmac = r.hmac;
    }
  }
  if (anchor) {
    const anchorFile = opts.anchor!.file;
    if (anchor.state === 'invalid') return fail({ what: 'anchor-invalid', file: anchorFile, line: 0, seq: 0, detail: `the audit anchor ${anchor.detail}: a rollback of the trail cannot be ruled out` });
    if (anchor.state === 'missing' && (report.records > 0 || (head?.seq ?? 0) > 0)) {
      return fail({ what: 'anchor-missing', file: anchorFile, line: 0, seq: 0, detail: 'the audit anchor is missing while the trail has records: a rollback of the trail cannot be ruled out' });
    }
    if (anchor.state === 'ok' && anchor.anchor.seq > Math.max(expSeq, head?.seq ?? 0)) {
      return fail({
        what: 'rolled-back',
        file: anchorFile,
        line: 0,
        seq: expSeq + 1,
        detail: `the trail ends at seq ${expSeq}${head ? ` (its head says ${head.seq})` : ''}, but the anchor says seq ${anchor.anchor.seq} was written: ${anchor.anchor.seq - expSeq} record(s) removed and the head rolled back`,
      });
    }
  }
  if (cursor > Math.max(expSeq, head?.seq ?? 0)) {
    return fail({
      what: 'rolled-back',
      file: 'syslog.cursor',
      line: 0,
      seq: expSeq + 1,
      detail: `the trail ends at seq ${expSeq}, but the syslog forwarder had delivered up to seq ${cursor}: records were removed (the syslog collector has them)`,
    });
  }
  if (!head) {
    if (report.records === 0) return report;
    // The gateway writes day file → head → anchor, and the anchor first when the trail opens.
    // An authenticated anchor at seq 0 over a chain from its genesis means no head was ever
    // written: the first flush of a new trail was cut short (a crash, a kill), not a deletion.
    if (anchor?.state === 'ok' && anchor.anchor.seq === 0 && report.firstSeq === 1) return { ...report, headNotYetWritten: true };
    return fail({ what: 'head-missing', file: 'head.json', line: 0, seq: 0, detail: 'head.json is missing: truncation of the log cannot be ruled out' });
  }
  if (expSeq < head.seq) {
    const lastFile = files[files.length - 1];
    const lastLines = lastFile ? (await readLines(path.join(dir, lastFile))).lines.length : 0;
    return fail({
      what: 'truncated',
      file: lastFile ?? '(no day file)',
      line: lastLines + 1,
      seq: expSeq + 1,
      detail: `the log ends at seq ${expSeq} but the head says ${head.seq}: ${head.seq - expSeq} record(s) removed from the end`,
    });
  }
  if (!headSeen && head.seq > head.baseSeq) {
    return fail({ what: 'edited', file: 'head.json', line: 0, seq: head.seq, detail: `no record with seq ${head.seq} matches the head` });
  }
  return report;
}

/** One line for people. */
export function describe(r: VerifyReport): string {
  if (r.ok) {
    return `audit trail intact: ${r.records} record(s)${r.records ? ` (seq ${r.firstSeq}-${r.lastSeq})` : ''} in ${r.files} file(s), ${r.dir}${r.tornTail ? ` (a torn last line in ${r.tornTail.file}, left by a crash, was never acknowledged)` : ''}${r.headNotYetWritten ? ' (no head yet: the anchor shows none was ever written, a new trail stopped before its first)' : ''}`;
  }
  const p = r.problem!;
  return `audit trail NOT intact: ${p.what} at ${p.file}${p.line ? ` line ${p.line}` : ''}, seq ${p.seq}: ${p.detail}`;
}
