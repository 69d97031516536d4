import { createHmac } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeDurable } from '../util/durable-write.js';
import { sameHex } from './chain.js';

/**
 * The audit anchor: where the chain stood (last durable seq and that record's HMAC), kept a
 * second time outside the audit directory, in `<spool.dir>/audit.anchor`.
 *
 * Why: `head.json` lives beside the day files, so whoever can write the audit directory can
 * copy back an old head and cut the day files to match it, and the trail alone then verifies
 * (a replay). The anchor is written after every head (files → head → anchor, each durable), so
 * it is never ahead of the trail; a trail that ends below it, or whose record at the anchor's
 * seq is not the one the anchor names, was rolled back or replaced.
 *
 * The anchor is authenticated: HMAC-SHA256 under `DeviceKey.derive('audit-anchor')` (its own
 * purpose label, RFC 5869 HKDF), so it cannot be forged or moved back to a chosen seq without
 * the device key. An old anchor file can still be copied back; see docs/security.md for what
 * then remains (the remote syslog copy, PS3.15 A.5 / RFC 5425).
 *
 * Format (one JSON object): {"seq":n,"hmac":"<record hmac>","at":"ISO","mac":"<hex>"}.
 */

export const ANCHOR_FILE = 'audit.anchor';
/** HKDF purpose label of the anchor's MAC key (src/security/device-key.ts). */
export const ANCHOR_PURPOSE = 'audit-anchor';

export interface Anchor {
  seq: number;
  /** HMAC of the record at `seq` (GENESIS for seq 0). */
  hmac: string;
  at: string;
}

export type AnchorState = { state: 'missing' } | { state: 'invalid'; detail: string } | { state: 'ok'; anchor: Anchor };

/** The anchor file of a configuration: in the spool's directory, not the audit trail's. */
export const anchorFileOf = (spoolDir: string): string => path.join(spoolDir, ANCHOR_FILE);

export function anchorMac(key: Buffer, a: Anchor): string {
  return createHmac('sha256', key).update(`anchor\n${a.seq}\n${a.hmac}\n${a.at}`, 'utf8').digest('hex');
}

export const anchorText = (key: Buffer, a: Anchor): string => JSON.stringify({ seq: a.seq, hmac: a.hmac, at: a.at, mac: anchorMac(key, a) });

/** Replace the anchor durably (a crash leaves the old one or the new one, never half). */
export async function writeAnchor(file: string, key: Buffer, a: Anchor): Promise<void> {
  // The trail opens before the spool, so on a first start the spool's directory may not exist yet.
  await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
  await writeDurable(file, anchorText(key, a), { mode: 0o600 });
}

/**
 * Read and authenticate the anchor. `invalid` covers an unreadable or damaged file, one that
 * fails its MAC (edited, forged, another device key) and one without a MAC (written by a
 * release before anchors were authenticated): none of them can vouch for anything.
 */
export async function readAnchor(file: string, key: Buffer): Promise<AnchorState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'invalid', detail: (err as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
  let o: { seq?: unknown; hmac?: unknown; at?: unknown; mac?: unknown } | null;
  try {
    o = JSON.parse(text) as typeof o;
  } catch {
    return { state: 'invalid', detail: text.length === 0 ? 'empty' : `${Buffer.byteLength(text)} bytes that are not an anchor` };
  }
  if (!o || !Number.isSafeInteger(o.seq) || (o.seq as number) < 0) return { state: 'invalid', detail: 'not an anchor' };
  if (typeof o.mac !== 'string') return { state: 'invalid', detail: 'no MAC (written by an older release, or forged)' };
  if (typeof o.hmac !== 'string' || !/^[0-9a-f]{64}$/.test(o.hmac) || typeof o.at !== 'string') return { state: 'invalid', detail: 'not an anchor' };
  const a: Anchor = { seq: o.seq as number, hmac: o.hmac, at: o.at };
  if (!sameHex(o.mac, anchorMac(key, a))) return { state: 'invalid', detail: 'fails its MAC (edited, forged, or another device key)' };
  return { state: 'ok', anchor: a };
}

/**
 * What the anchor says about a trail being opened whose end (after recovery) is `end`:
 * problems for a Security Alert, and where to continue the chain. A trail that ends below the
 * anchor continues from the anchor's record, so the rolled-back records stay a visible gap for
 * `audit verify` for good (as for a head that is ahead of the files, trail.ts).
 */
export async function anchorFindings(
  file: string,
  key: Buffer,
  end: { seq: number; hmac: string; baseSeq: number },
  recordAt: (seq: number) => Promise<{ hmac: string } | undefined>,
): Promise<{ problems: string[]; continueFrom?: { seq: number; hmac: string } | undefined }> {
  const st = await readAnchor(file, key);
  if (st.state === 'missing') {
    return { problems: end.seq > 0 ? [`the audit anchor ${file} is missing while the trail has records: a rollback of the trail cannot be ruled out`] : [] };
  }
  if (st.state === 'invalid') return { problems: [`the audit anchor ${file} is invalid (${st.detail}): it cannot show whether records of the previous run were deleted`] };
  const a = st.anchor;
  if (a.seq > end.seq) {
    return {
      problems: [`the audit trail restarts at seq ${end.seq}, but the previous run reached seq ${a.seq}: its records were deleted or rolled back`],
      continueFrom: { seq: a.seq, hmac: a.hmac },
    };
  }
  if (a.seq > end.baseSeq) {
    const r = a.seq === end.seq ? { hmac: end.hmac } : await recordAt(a.seq);
    if (!r || !sameHex(r.hmac, a.hmac)) return { problems: [`the audit trail's record at seq ${a.seq} is not the one its anchor names: the trail was replaced`] };
  }
  return { problems: [] };
}
