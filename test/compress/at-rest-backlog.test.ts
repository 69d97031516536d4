import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AtRestCompressor } from '../../src/compress/at-rest.js';
import type { CodecPool } from '../../src/compress/pool.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import type { SpoolRecord, SpoolRewriter } from '../../src/spool/spool.js';

/**
 * The backlog of compression at rest counts objects still in the spool waiting for their turn.
 * An object delivered (or removed) before its turn must stop counting when it leaves the spool,
 * not when the compressor's pass gets to it: `make demo` once showed "backlog 50" next to a spool
 * of 0 objects, because the pass (2 s after the last object, later while a modality is
 * connected) had not run yet.
 */
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A spool of `n` uncompressed objects, one file each, behind the rewriter interface. */
function fakeSpool(n: number) {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pacs-edge-atrest-'));
  const root = dir;
  const records = new Map<string, SpoolRecord>();
  for (let i = 0; i < n; i++) {
    const id = String(i).padStart(8, '0');
    writeFileSync(path.join(root, `${id}.dcm`), 'not read by these tests');
    records.set(id, {
      id,
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: `1.2.3.${i}`,
      transferSyntaxUid: TS.ExplicitVRLittleEndian,
      callingAeTitle: 'MODALITY',
      size: 1000,
      sha256: '0'.repeat(64),
      receivedAt: Date.now(),
      pending: ['pacs'],
    });
  }
  const reserved: string[] = [];
  const goneListeners: ((id: string) => void)[] = [];
  const rewriter: SpoolRewriter = {
    filePath: (id) => path.join(root, `${id}.dcm`),
    reserve: async (id) => {
      reserved.push(id);
      return records.has(id) ? records.get(id)! : 'gone';
    },
    replace: async (r) => r,
    release: () => undefined,
    onStored: () => undefined,
    onGone: (fn) => goneListeners.push(fn),
    records: async function* () {
      yield* records.values();
    },
  };
  /** Every destination confirmed it, and `spool.keepForwardedHours` keeps its file for a while. */
  const deliverKeep = (id: string) => {
    records.delete(id);
    for (const fn of goneListeners) fn(id);
  };
  /** Every destination confirmed it: the spool forgets it (and deletes its file once that is durable). */
  const deliver = (id: string) => {
    records.delete(id);
    for (const fn of goneListeners) fn(id);
    unlinkSync(path.join(root, `${id}.dcm`));
  };
  /** Removed behind the compressor's back without the spool saying so (must not happen; the pass then finds it gone). */
  const vanish = (id: string) => {
    records.delete(id);
  };
  return { records: [...records.values()], rewriter, deliver, deliverKeep, vanish, reserved };
}

const log = pino({ level: 'silent' });
const noPool = {
  convert: () => {
    throw new Error('no pass is expected to run in this test');
  },
} as unknown as CodecPool;

describe('compression at rest: backlog', () => {
  it('objects delivered before their turn leave the backlog as soon as they are delivered, without a pass', () => {
    const spool = fakeSpool(5);
    // A modality stays connected: the compressor defers its pass, as in `make demo`.
    const z = new AtRestCompressor({ rewriter: spool.rewriter, pool: noPool, compression: 'jpeg-ls', maxObjectBytes: 1 << 30, log, delayMs: 60_000, receiving: () => true });
    try {
      for (const r of spool.records) z.offer(r);
      expect(z.stats().backlog).toBe(5);
      spool.deliver(spool.records[0]!.id);
      spool.deliver(spool.records[3]!.id);
      expect(z.stats()).toMatchObject({ backlog: 3, deliveredFirst: 2, compressed: 0 });
      for (const r of spool.records) if (r.id !== spool.records[0]!.id && r.id !== spool.records[3]!.id) spool.deliver(r.id);
      expect(z.stats()).toMatchObject({ backlog: 0, deliveredFirst: 5 });
      // Asking again does not count them twice.
      expect(z.stats()).toMatchObject({ backlog: 0, deliveredFirst: 5 });
      // No pass ran: the backlog followed the spool on its own.
      expect(spool.reserved).toEqual([]);
    } finally {
      void z.stop();
    }
  });

  it('objects still in the spool keep counting until their turn', async () => {
    const spool = fakeSpool(3);
    const z = new AtRestCompressor({ rewriter: spool.rewriter, pool: noPool, compression: 'jpeg-ls', maxObjectBytes: 1 << 30, log, delayMs: 60_000, receiving: () => true });
    try {
      for (const r of spool.records) z.offer(r);
      await new Promise((r) => setTimeout(r, 50));
      expect(z.stats()).toMatchObject({ backlog: 3, deliveredFirst: 0 });
    } finally {
      await z.stop();
    }
  });

  it('an object delivered but kept (its file stays, spool.keepForwardedHours) leaves the backlog at once too', () => {
    const spool = fakeSpool(2);
    const z = new AtRestCompressor({ rewriter: spool.rewriter, pool: noPool, compression: 'jpeg-ls', maxObjectBytes: 1 << 30, log, delayMs: 60_000, receiving: () => true });
    try {
      for (const r of spool.records) z.offer(r);
      for (const r of spool.records) spool.deliverKeep(r.id);
      expect(z.stats()).toMatchObject({ backlog: 0, deliveredFirst: 2, compressed: 0, errors: 0 });
      expect(spool.reserved).toEqual([]);
    } finally {
      void z.stop();
    }
  });

  it('an object that vanished without the spool saying so is dropped by its pass, counted once', async () => {
    const spool = fakeSpool(2);
    const z = new AtRestCompressor({ rewriter: spool.rewriter, pool: noPool, compression: 'jpeg-ls', maxObjectBytes: 1 << 30, log, delayMs: 0 });
    try {
      for (const r of spool.records) z.offer(r);
      for (const r of spool.records) spool.vanish(r.id);
      const deadline = Date.now() + 5000;
      while (z.stats().backlog > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(z.stats()).toMatchObject({ backlog: 0, deliveredFirst: 2, compressed: 0, errors: 0 });
      expect(spool.reserved).toHaveLength(2);
    } finally {
      await z.stop();
    }
  });

  it('objects that are not candidates never count', () => {
    const spool = fakeSpool(3);
    const z = new AtRestCompressor({ rewriter: spool.rewriter, pool: noPool, compression: 'jpeg-ls', maxObjectBytes: 1 << 30, log, delayMs: 60_000, receiving: () => true });
    try {
      const [a, b, c] = spool.records;
      z.offer({ ...a!, transferSyntaxUid: TS.JPEGLSLossless }); // already compressed
      z.offer({ ...b!, pending: [] }); // already delivered
      z.offer(c!);
      expect(z.stats().backlog).toBe(1);
    } finally {
      void z.stop();
    }
  });
});
