import { createHash } from 'node:crypto';
import { createReadStream, existsSync, openSync, readFileSync, closeSync, writeSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { storescu } from '../helpers/dcmtk.js';
import { CT_IMAGE_STORAGE, ctElements, encodeDataset, ExplicitLE, part10, testUid, TS_UID } from '../helpers/dicom-builder.js';
import { startGateway, tempDir } from '../helpers/processes.js';
import { openSpoolFile } from '../helpers/spool-files.js';

/**
 * A 1 GiB multi-frame object (2048 frames of 512×512×16 bit) through the real gateway with
 * DCMTK storescu. The receive path streams to disk with backpressure, so the object adds at
 * most 128 MB whatever its size, and the gateway's peak RSS stays ≤ 240 MB on both runtimes
 * (measured: 130-141 MB on Node 20, 198-205 MB on Node 24, which starts ~15 MB higher and lets
 * its heap grow further before collecting). Frames come from the corpus CT when the corpus is
 * there, synthetic otherwise.
 */
const FRAMES = 2048;
const FRAME_BYTES = 512 * 512 * 2;

function frameSource(): Buffer {
  const corpus = process.env.PACS_EDGE_CORPUS;
  const ct = corpus ? path.join(corpus, '693_UNCR.dcm') : undefined;
  if (ct && existsSync(ct)) {
    const b = readFileSync(ct);
    return Buffer.from(b.subarray(b.length - FRAME_BYTES)); // the pixel data is the last element
  }
  const f = Buffer.alloc(FRAME_BYTES);
  for (let i = 0; i < f.length; i += 2) f.writeUInt16LE((i * 7) & 0x0fff, i);
  return f;
}

/** SHA-256 of the data set of a Part 10 file or of a (sealed) spool file, streamed. */
async function sha256OfDataset(file: string): Promise<string> {
  const f = await openSpoolFile(file);
  try {
    const head = Buffer.alloc(4096);
    await f.read(head, 0);
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 20);
    for (let pos = readPart10Header(head)!.datasetOffset; pos < f.size; ) {
      const n = await f.read(buf, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
    return h.digest('hex');
  } finally {
    f.close();
  }
}

function vmHwmMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)![1]);
  return kb / 1024;
}

describe('receive: a 1 GiB multi-frame object', () => {
  it('is stored intact with the gateway peak RSS ≤ 240 MB', async () => {
    const tmp = tempDir();
    try {
      const uid = testUid();
      // Everything but the pixel data through the fixture encoder; the pixel data header by hand.
      const els = ctElements({ sopInstanceUid: uid, rows: 512, cols: 512, frames: FRAMES }).filter((e) => e.tag !== 0x7fe00010);
      const head = part10({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, ts: TS_UID.explicit, dataset: encodeDataset(els, ExplicitLE) });
      const pixelHeader = Buffer.alloc(12);
      pixelHeader.writeUInt16LE(0x7fe0, 0);
      pixelHeader.writeUInt16LE(0x0010, 2);
      pixelHeader.write('OW', 4, 'latin1');
      pixelHeader.writeUInt32LE(FRAMES * FRAME_BYTES, 8);
      const file = path.join(tmp.dir, 'big.dcm');
      const fd = openSync(file, 'w');
      writeSync(fd, Buffer.concat([head, pixelHeader]));
      const frame = frameSource();
      for (let i = 0; i < FRAMES; i++) writeSync(fd, frame);
      closeSync(fd);

      const gw = await startGateway({ dir: tmp.dir, config: { log: { level: 'info' } } });
      let peak: number;
      let before: number;
      try {
        // What the running gateway already held (start-up, installation check, codec pools idle).
        before = vmHwmMb(gw.proc.pid!);
        const r = await storescu({ port: gw.port, files: [file], timeoutMs: 300_000 });
        expect(r.acked, r.stdout.slice(-2000)).toEqual([1]);
        peak = vmHwmMb(gw.proc.pid!);
      } finally {
        await gw.stop();
      }
      console.log(`1 GiB object: gateway peak RSS ${peak.toFixed(1)} MB (${before.toFixed(1)} MB before it; Node ${process.version})`);
      // Streaming: the object (1 GiB) never sits in memory; what it adds is buffers and the
      // collector's slack (encrypting 16 384 segments makes garbage), far below its size.
      expect(peak - before, 'RSS the 1 GiB object added (MB)').toBeLessThanOrEqual(128);
      expect(peak, 'gateway peak RSS (MB)').toBeLessThanOrEqual(240);
      const stored = (await import('node:fs')).readdirSync(path.join(gw.spoolDir, 'objects')).filter((n) => n.endsWith('.dcm'));
      expect(stored).toHaveLength(1);
      expect(await sha256OfDataset(path.join(gw.spoolDir, 'objects', stored[0]!))).toBe(await sha256OfDataset(file));
    } finally {
      tmp.cleanup();
    }
  }, 600_000);
});
