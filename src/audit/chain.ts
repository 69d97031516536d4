import { createHmac, timingSafeEqual } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * The on-disk format of the audit trail, shared by the writer (trail.ts), the checker
 * (verify.ts) and the syslog forwarder (syslog.ts). docs/audit.md describes it.
 *
 * One record per line, keys in this order:
 *   {"seq":n,"at":"ISO","prev":"<hex>","hmac":"<hex>","xml":"<AuditMessage …>"}
 * hmac = HMAC-SHA256(key, prev LF seq LF at LF xml), key = DeviceKey.derive('audit-chain');
 * prev = the hmac of record seq-1 (in the same file or the previous one), or 64 zeros for seq 1.
 * Day files `audit-YYYYMMDD.log` (UTC date of `at`). `head.json` holds the last durable record
 * and the base of the chain (the last record deleted by the retention rule), authenticated.
 */

export const GENESIS = '0'.repeat(64);
export const HEAD_FILE = 'head.json';
export const LOCK_FILE = 'audit.lock';
export const INBOX_DIR = 'inbox';
const FILE_RE = /^audit-(\d{8})\.log$/;

export interface AuditRecord {
  seq: number;
  at: string;
  prev: string;
  hmac: string;
  xml: string;
}

export interface Head {
  /** Last durable record. */
  seq: number;
  hmac: string;
  /** The chain starts after this record (0 / GENESIS until retention deletes a file). */
  baseSeq: number;
  baseHmac: string;
}

export function recordHmac(key: Buffer, prev: string, seq: number, at: string, xml: string): string {
  return createHmac('sha256', key).update(`${prev}\n${seq}\n${at}\n${xml}`, 'utf8').digest('hex');
}

export function headMac(key: Buffer, h: Head): string {
  return createHmac('sha256', key).update(`head\n${h.seq}\n${h.hmac}\n${h.baseSeq}\n${h.baseHmac}`, 'utf8').digest('hex');
}

export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The line (with its LF) of one record. */
export function formatRecord(r: AuditRecord): string {
  return `${JSON.stringify({ seq: r.seq, at: r.at, prev: r.prev, hmac: r.hmac, xml: r.xml })}\n`;
}

/** A record from a line, or undefined when the line is not one (shape only; the HMAC is checked by the caller). */
export function parseRecord(line: string): AuditRecord | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = o as Partial<AuditRecord> | null;
  if (!r || typeof r !== 'object') return undefined;
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) return undefined;
  if (typeof r.at !== 'string' || typeof r.prev !== 'string' || typeof r.hmac !== 'string' || typeof r.xml !== 'string') return undefined;
  if (!/^[0-9a-f]{64}$/.test(r.prev) || !/^[0-9a-f]{64}$/.test(r.hmac)) return undefined;
  return { seq: r.seq as number, at: r.at, prev: r.prev, hmac: r.hmac, xml: r.xml };
}

export const fileNameFor = (at: Date | string): string => `audit-${(typeof at === 'string' ? at : at.toISOString()).slice(0, 10).replace(/-/g, '')}.log`;

/** The UTC day (ms since the epoch at 00:00) a file name stands for. */
export function fileDay(name: string): number | undefined {
  const m = FILE_RE.exec(name);
  if (!m) return undefined;
  const d = m[1]!;
  return Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)));
}

/** The day files of the trail, oldest first. */
export async function listFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => FILE_RE.test(n)).sort();
}

export type HeadState = { state: 'missing' } | { state: 'invalid'; detail: string } | { state: 'ok'; head: Head };

export async function readHead(dir: string, key: Buffer): Promise<HeadState> {
  let text: string;
  try {
    text = await readFile(path.join(dir, HEAD_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'invalid', detail: (err as Error).message };
  }
  try {
    const o = JSON.parse(text) as Head & { mac?: string };
    const h: Head = { seq: o.seq, hmac: o.hmac, baseSeq: o.baseSeq, baseHmac: o.baseHmac };
    if (!Number.isSafeInteger(h.seq) || !Number.isSafeInteger(h.baseSeq) || typeof h.hmac !== 'string' || typeof h.baseHmac !== 'string' || typeof o.mac !== 'string') {
      return { state: 'invalid', detail: 'head file has the wrong shape' };
    }
    if (!sameHex(o.mac, headMac(key, h))) return { state: 'invalid', detail: 'head file fails its HMAC (edited, or another device key)' };
    return { state: 'ok', head: h };
  } catch {
    return { state: 'invalid', detail: 'head file is not JSON' };
  }
}

/**
 * The audit trail's format version, written into head.json (`format`). A release that finds a
 * higher one refuses to start (exit code 7) rather than append records a newer layout does not
 * expect. Absent: format 1 (written before the version was recorded).
 */
export const AUDIT_FORMAT = 1;

export const headText = (key: Buffer, h: Head): string => `${JSON.stringify({ ...h, mac: headMac(key, h), format: AUDIT_FORMAT })}\n`;

/** The format of the trail in `dir` (1 when its head has none); undefined without a readable head. */
export async function auditFormatOf(dir: string): Promise<number | undefined> {
  try {
    const o = JSON.parse(await readFile(path.join(dir, HEAD_FILE), 'utf8')) as { format?: unknown };
    return typeof o.format === 'number' ? o.format : 1;
  } catch {
    return undefined;
  }
}

/** Complete lines of a file (those ending in LF), with the byte offset after each; `rest` is a torn tail. */
export async function readLines(file: string, from = 0): Promise<{ lines: { text: string; end: number }[]; rest: number; size: number }> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - from));
    if (buf.length > 0) await fh.read(buf, 0, buf.length, from);
    const lines: { text: string; end: number }[] = [];
    let start = 0;
    for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, start)) {
      lines.push({ text: buf.subarray(start, i).toString('utf8'), end: from + i + 1 });
      start = i + 1;
    }
    return { lines, rest: buf.length - start, size };
  } finally {
    await fh.close();
  }
}

/** Total size of the day files. */
export async function usageBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await listFiles(dir)) {
    try {
      total += (await stat(path.join(dir, f))).size;
    } catch {
      /* deleted meanwhile */
    }
  }
  return total;
}

/** Where a reader stands: the next byte to read in a day file. */
export interface ReadPosition {
  file: string;
  offset: number;
}

/**
 * Records after `afterSeq`, up to `max`, read from `pos` when given (a position returned by an
 * earlier call) or found by scanning the files. Only complete lines; unparseable lines are
 * skipped (verify reports them). Returns the position after the last record returned.
 */
export async function readRecords(
  dir: string,
  afterSeq: number,
  max: number,
  pos?: ReadPosition,
  untilSeq = Number.MAX_SAFE_INTEGER,
): Promise<{ records: AuditRecord[]; pos: ReadPosition | undefined }> {
  const files = await listFiles(dir);
  if (files.length === 0) return { records: [], pos };
  let i = pos ? files.indexOf(pos.file) : -1;
  let offset = pos && i >= 0 ? pos.offset : 0;
  if (i < 0) {
    // Find the last file whose first record is at most afterSeq + 1.
    i = 0;
    for (let k = files.length - 1; k > 0; k--) {
      const first = await firstRecord(path.join(dir, files[k]!));
      if (first && first.seq <= afterSeq + 1) {
        i = k;
        break;
      }
    }
    offset = 0;
  }
  const records: AuditRecord[] = [];
  let out: ReadPosition = { file: files[i]!, offset };
  let done = false;
  for (; i < files.length && !done; i++, offset = 0) {
    const { lines } = await readLines(path.join(dir, files[i]!), offset);
    if (lines.length > 0 || offset === 0) out = { file: files[i]!, offset };
    for (const l of lines) {
      const r = parseRecord(l.text);
      // Not durable yet (or beyond what the caller wants): stop before it, position unchanged.
      if (r && r.seq > untilSeq) {
        done = true;
        break;
      }
      out = { file: files[i]!, offset: l.end };
      if (r && r.seq > afterSeq) records.push(r);
      if (records.length >= max) {
        done = true;
        break;
      }
    }
  }
  return { records, pos: out };
}

async function firstRecord(file: string): Promise<AuditRecord | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(10);
    return nl < 0 ? undefined : parseRecord(buf.subarray(0, nl).toString('utf8'));
  } finally {
    await fh.close();
  }
}
