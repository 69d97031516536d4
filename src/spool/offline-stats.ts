import { existsSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { openRecord } from './record-codec.js';
import type { SpoolStats } from './spool.js';

/**
 * Spool statistics read straight from the index when no gateway is running. Read-only: unlike
 * {@link LevelSpool.open} it repairs nothing, so `pacs-edge status` never changes the spool.
 */
export async function readSpoolOffline(dir: string, destinations: readonly string[]): Promise<SpoolStats> {
  const indexDir = path.join(dir, 'index');
  const per = new Map<string, { pending: number; pendingBytes: number; deadLetter: number; oldest: number }>();
  for (const d of destinations) per.set(d, { pending: 0, pendingBytes: 0, deadLetter: 0, oldest: Number.POSITIVE_INFINITY });
  let objects = 0;
  let bytes = 0;
  if (existsSync(indexDir)) {
    const db = new Level<string, string>(indexDir, { valueEncoding: 'utf8', createIfMissing: false });
    await db.open();
    try {
      const info = new Map<string, { size: number; receivedAt: number }>();
      for await (const [key, raw] of db.iterator({ gte: 'o!', lt: 'o!\xff' })) {
        const r = openRecord(raw);
        if (!r) continue;
        objects++;
        bytes += r.size;
        info.set(key.slice(2), { size: r.size, receivedAt: r.receivedAt });
      }
      for await (const key of db.keys({ gte: 'q!', lt: 'q!\xff' })) {
        const [, dest, id] = key.split('!') as [string, string, string];
        const i = info.get(id);
        if (!i) continue;
        const s = per.get(dest) ?? { pending: 0, pendingBytes: 0, deadLetter: 0, oldest: Number.POSITIVE_INFINITY };
        s.pending++;
        s.pendingBytes += i.size;
        s.oldest = Math.min(s.oldest, i.receivedAt);
        per.set(dest, s);
      }
      for await (const key of db.keys({ gte: 'd!', lt: 'd!\xff' })) {
        const dest = key.split('!')[1]!;
        const s = per.get(dest) ?? { pending: 0, pendingBytes: 0, deadLetter: 0, oldest: Number.POSITIVE_INFINITY };
        s.deadLetter++;
        per.set(dest, s);
      }
    } finally {
      await db.close();
    }
  }
  const now = Date.now();
  return {
    objects,
    bytes,
    destinations: [...per.entries()].map(([name, s]) => ({
      name,
      pending: s.pending,
      pendingBytes: s.pendingBytes,
      deadLetter: s.deadLetter,
      oldestPendingSeconds: Number.isFinite(s.oldest) ? Math.max(0, Math.floor((now - s.oldest) / 1000)) : 0,
    })),
  };
}
