import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DestinationForwarder } from '../../src/forward/destination.js';
import { MemorySpool } from '../../src/spool/memory-spool.js';
import { startStorescp } from '../helpers/dcmtk.js';
import { ctFile } from '../helpers/dicom-builder.js';
import { tempDir, waitFor } from '../helpers/processes.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';

/**
 * The forwarder in-process, against a real storescp, over a spool whose own I/O fails once — a
 * fault the real LevelDB spool cannot be made to produce on demand. The forwarder must log it,
 * back off and carry on: never crash the gateway, never give up on the queue.
 */
describe('DestinationForwarder: an error of the spool itself', () => {
  it('is logged, backed off and retried; every object is delivered', async () => {
    const tmp = tempDir();
    const pacsDir = path.join(tmp.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacs = await startStorescp(pacsDir, 'PACS', { fork: true });
    const spool = new MemorySpool({ destinations: ['pacs'] });
    let failures = 1;
    // Acknowledgements are written in batches (ackMany): the index write of a batch fails.
    const ackMany = spool.ackMany.bind(spool);
    spool.ackMany = async (d, ids) => {
      if (failures-- > 0) throw Object.assign(new Error('simulated index write failure'), { code: 'LEVEL_IO_ERROR' });
      return ackMany(d, ids);
    };
    const lines: { msg: string; code?: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const fw = new DestinationForwarder(
      { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, associations: 1, compression: 'none', commit: false },
      {
        spool,
        log,
        callingAeTitle: 'PACS_EDGE',
        settings: { connectTimeoutMs: 5000, acseTimeoutMs: 5000, dimseTimeoutMs: 5000, retryBaseMs: 100, retryMaxMs: 200, idleReleaseMs: 500, maxAttempts: 3, batch: 4, maxPduLength: 65536 },
      },
    );
    try {
      for (let i = 0; i < 3; i++) {
        const f = ctFile();
        const h = readPart10Header(f.bytes)!;
        // What the receiver hands the spool: our File Meta, then the data set.
        const w = await spool.begin(f.bytes.subarray(0, h.datasetOffset));
        w.write(f.bytes.subarray(h.datasetOffset));
        await w.commit({ sopClassUid: h.sopClassUid, sopInstanceUid: f.sopInstanceUid, transferSyntaxUid: h.transferSyntaxUid, callingAeTitle: 'MOD' });
      }
      fw.start();
      await waitFor(() => spool.stats().objects === 0 || undefined, { what: 'all three delivered', timeoutMs: 20_000 });
      expect(lines.some((l) => l.msg === 'forwarder error, will retry' && l.code === 'LEVEL_IO_ERROR')).toBe(true);
      expect(readdirSync(pacsDir).length).toBeGreaterThanOrEqual(3);
    } finally {
      await fw.stop();
      await pacs.stop();
      tmp.cleanup();
    }
  });
});

/**
 * The read-ahead (src/forward/prefetch.ts): objects prepared ahead of the one on the wire and
 * not sent when the forwarder stops go back to the queue; nothing is lost, nothing is acknowledged
 * that the PACS did not confirm, and a new forwarder delivers the rest.
 */
describe('DestinationForwarder: stopped in the middle of a prefetched batch', () => {
  it('loses nothing: every object is either at the PACS and acknowledged, or still queued; a restart delivers the rest', async () => {
    const tmp = tempDir();
    const pacsDir = path.join(tmp.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacs = await startStorescp(pacsDir, 'PACS', { fork: true });
    const spool = new MemorySpool({ destinations: ['pacs'] });
    const settings = { connectTimeoutMs: 5000, acseTimeoutMs: 5000, dimseTimeoutMs: 5000, retryBaseMs: 100, retryMaxMs: 200, idleReleaseMs: 500, maxAttempts: 3, batch: 8, maxPduLength: 65536 };
    const dest = { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, associations: 1, compression: 'none' as const, commit: false, prefetchBytes: 1 << 20 };
    const acked = new Set<string>();
    const ackMany = spool.ackMany.bind(spool);
    // The stop comes as the first batch is acknowledged: the next objects are being prepared.
    let stopping: Promise<void> | undefined;
    let first: DestinationForwarder | undefined;
    spool.ackMany = async (d, ids) => {
      await ackMany(d, ids);
      for (const id of ids) acked.add(id);
      stopping ??= first?.stop();
    };
    const total = 40;
    const uidOf = new Map<string, string>();
    try {
      for (let i = 0; i < total; i++) {
        const f = ctFile();
        const h = readPart10Header(f.bytes)!;
        const w = await spool.begin(f.bytes.subarray(0, h.datasetOffset));
        w.write(f.bytes.subarray(h.datasetOffset));
        const r = await w.commit({ sopClassUid: h.sopClassUid, sopInstanceUid: f.sopInstanceUid, transferSyntaxUid: h.transferSyntaxUid, callingAeTitle: 'MOD' });
        uidOf.set(r.id, f.sopInstanceUid);
      }
      const log = pino({ level: 'silent' });
      first = new DestinationForwarder(dest, { spool, log, callingAeTitle: 'PACS_EDGE', settings });
      first.start();
      await waitFor(() => (stopping ? true : undefined), { what: 'the first batch acknowledged' });
      await stopping;
      // Acknowledged ⊆ at the PACS; everything else still queued, nothing claimed.
      const atPacs = readdirSync(pacsDir).length;
      expect(acked.size).toBeLessThanOrEqual(atPacs);
      expect(spool.stats().objects).toBe(total - acked.size);
      expect(spool.stats().destinations[0]).toMatchObject({ pending: total - acked.size });
      expect(acked.size).toBeLessThan(total);
      const second = new DestinationForwarder(dest, { spool, log, callingAeTitle: 'PACS_EDGE', settings });
      second.start();
      await waitFor(() => spool.stats().objects === 0 || undefined, { what: 'the rest delivered', timeoutMs: 20_000 });
      await second.stop();
      expect(acked.size).toBe(total);
      const names = readdirSync(pacsDir).join('\n');
      for (const uid of uidOf.values()) expect(names).toContain(uid);
    } finally {
      await pacs.stop();
      tmp.cleanup();
    }
  });
});
