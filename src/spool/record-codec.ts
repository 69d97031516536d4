import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { SpoolRecord } from './spool.js';

/**
 * Index records (`o!<id>`) as stored: `{"r": record, "c": checksum, "m": MAC}`.
 *
 * - `c`, an unkeyed SHA-256 prefix, tells a damaged entry (SD-card bit rot, torn page) from a
 *   good one, so recovery reports the object rather than forward something wrong. Anyone can
 *   compute it, so on its own it says nothing about who wrote the record.
 * - `m`, HMAC-SHA256 under a key derived from the device key (purpose {@link INDEX_MAC_PURPOSE}),
 *   over the key's id and the record: a record made or changed by someone holding the SD card
 *   but not the device key (an injected image, a swapped SHA-256 or destination list) fails it,
 *   and is never forwarded (recovery quarantines it, the spool refuses it before a send).
 *
 * Releases before the MAC wrote `{r, c}` only; they read `{r, c, m}` as before (they ignore
 * `m`), so a downgrade still reads the spool. An upgraded spool's unkeyed records are MACed
 * once, at the first start with the key, and the index then carries {@link INDEX_MAC_MARKER}:
 * from then on an unkeyed record is refused (recovery.ts, `authenticateIndex`).
 *
 * @see RFC 2104 (HMAC), RFC 5869 (HKDF), GB/T 22239-2019 §8.1.4.7 (数据完整性)
 */
export const INDEX_MAC_PURPOSE = 'spool-index';
/** Index key of the marker "every record of this index is authenticated" (its value is MACed too). */
export const INDEX_MAC_MARKER = 'm!index-mac';

/** What a stored record turned out to be. */
export type RecordCheck =
  | { record: SpoolRecord; mac: 'ok' | 'missing' | 'unchecked' }
  | { record: undefined; problem: 'checksum' | 'mac' };

export class RecordCodec {
  /**
   * `key`: the index MAC key (undefined: a read-only view without the device key, which can
   * only check the checksum, and must not decide anything on what it reads).
   * `strict`: records without a MAC are refused ({@link open}); recovery turns it on once the
   * index is authenticated.
   */
  constructor(
    private readonly key: Buffer | undefined,
    public strict = false,
  ) {}

  get keyed(): boolean {
    return this.key !== undefined;
  }

  seal(r: SpoolRecord): string {
    const body = JSON.stringify(r);
    return JSON.stringify(this.key ? { r, c: digest(body), m: this.mac(r.id, body) } : { r, c: digest(body) });
  }

  /** Check a stored record in full (recovery's survey). */
  check(id: string, raw: string): RecordCheck {
    let parsed: { r?: SpoolRecord; c?: string; m?: unknown };
    try {
      parsed = JSON.parse(raw) as typeof parsed;
    } catch {
      return { record: undefined, problem: 'checksum' };
    }
    if (!parsed.r || typeof parsed.c !== 'string') return { record: undefined, problem: 'checksum' };
    const body = JSON.stringify(parsed.r);
    if (digest(body) !== parsed.c) return { record: undefined, problem: 'checksum' };
    if (!this.key) return { record: parsed.r, mac: 'unchecked' };
    if (parsed.m === undefined) return { record: parsed.r, mac: 'missing' };
    // The id is in the MAC: a good record copied under another key fails too.
    if (typeof parsed.m !== 'string' || parsed.r.id !== id || !equalHex(parsed.m, this.mac(id, body))) return { record: undefined, problem: 'mac' };
    return { record: parsed.r, mac: 'ok' };
  }

  /** The record, or undefined when it is damaged, fails its MAC, or (strict) has none. */
  open(id: string, raw: string): SpoolRecord | undefined {
    const c = this.check(id, raw);
    if (!c.record) return undefined;
    return c.mac === 'missing' && this.strict ? undefined : c.record;
  }

  /** The marker's value (`adopting`: the records of an earlier release are being MACed); MACed itself. */
  marker(at: number, adopting: boolean): string {
    return JSON.stringify({ v: 1, at, adopting, m: this.mac('marker', `v1 ${at} ${adopting}`) });
  }

  /** What a stored marker says, if it was written with this key (`bad` otherwise). */
  markerState(raw: string): 'done' | 'adopting' | 'bad' {
    try {
      const m = JSON.parse(raw) as { v?: number; at?: number; adopting?: boolean; m?: unknown };
      if (!this.key || m.v !== 1 || typeof m.m !== 'string' || !equalHex(m.m, this.mac('marker', `v1 ${m.at} ${m.adopting === true}`))) return 'bad';
      return m.adopting === true ? 'adopting' : 'done';
    } catch {
      return 'bad';
    }
  }

  private mac(id: string, body: string): string {
    return createHmac('sha256', this.key!).update(`${id}\n`).update(body).digest('hex');
  }
}

function equalHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * A record checked by its checksum only: for read-only views (status, dead-letter list, studies
 * of a stopped gateway), which hold no key and decide nothing on what they read.
 */
export function openRecord(raw: string): SpoolRecord | undefined {
  const c = new RecordCodec(undefined).check('', raw);
  return c.record;
}

/** A record as releases before the index MAC wrote it (tests of the upgrade make old spools with it). */
export function unkeyedRecord(r: SpoolRecord): string {
  return new RecordCodec(undefined).seal(r);
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/** Ids are zero-padded decimal sequence numbers, so their string order is arrival order. */
export function formatId(n: number): string {
  return n.toString().padStart(16, '0');
}

/** The record of an object whose file was replaced by its compressed form (see LevelSpool rewriter). */
export function rewrittenRecord(r: SpoolRecord, file: { size: number; sha256: string; transferSyntaxUid: string; plain?: boolean | undefined }): SpoolRecord {
  const { plain: _old, ...rest } = r;
  return {
    ...rest,
    receivedTransferSyntaxUid: r.receivedTransferSyntaxUid ?? r.transferSyntaxUid,
    receivedSize: r.receivedSize ?? r.size,
    transferSyntaxUid: file.transferSyntaxUid,
    size: file.size,
    sha256: file.sha256,
    ...(file.plain ? { plain: true } : {}),
  };
}
