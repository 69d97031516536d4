import { createHash } from 'node:crypto';
import type { SpoolRecord } from './spool.js';

/**
 * Index records carry their own checksum so that recovery can tell a damaged index entry
 * (SD-card bit rot, torn page) from a good one, and report the object as lost rather than
 * forward something wrong.
 */
export function sealRecord(r: SpoolRecord): string {
  const body = JSON.stringify(r);
  return JSON.stringify({ r, c: digest(body) });
}

export function openRecord(raw: string): SpoolRecord | undefined {
  try {
    const parsed = JSON.parse(raw) as { r?: SpoolRecord; c?: string };
    if (!parsed.r || typeof parsed.c !== 'string') return undefined;
    return digest(JSON.stringify(parsed.r)) === parsed.c ? parsed.r : undefined;
  } catch {
    return undefined;
  }
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/** Ids are zero-padded decimal sequence numbers, so their string order is arrival order. */
export function formatId(n: number): string {
  return n.toString().padStart(16, '0');
}

/** The record of an object whose file was replaced by its compressed form (see LevelSpool rewriter). */
export function rewrittenRecord(r: SpoolRecord, file: { size: number; sha256: string; transferSyntaxUid: string }): SpoolRecord {
  return {
    ...r,
    receivedTransferSyntaxUid: r.receivedTransferSyntaxUid ?? r.transferSyntaxUid,
    receivedSize: r.receivedSize ?? r.size,
    transferSyntaxUid: file.transferSyntaxUid,
    size: file.size,
    sha256: file.sha256,
  };
}
