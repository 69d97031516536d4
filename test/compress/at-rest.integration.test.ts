import { mkdirSync, readdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { ctFile } from '../helpers/dicom-builder.js';
import { canonicalSamples, differingAttributes } from '../helpers/pixel-compare.js';
import { IMAGE_MATRIX, imageFile } from '../helpers/image-fixtures.js';
import { freePort, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * spool.compressAtRest: while the PACS is away the spool holds its objects compressed, and
 * when it returns it gets exactly what the modality sent (or JPEG-LS, if it prefers that).
 * Crash safety of the file replacement is proven by SIGKILL at its two inner instants.
 */
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 20 };
const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A study of CT fixtures (realistic pixels) and the codec matrix, written to `dir`. */
function study(dir: string): { files: string[]; sent: Map<string, Buffer> } {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const sent = new Map<string, Buffer>();
  const add = (bytes: Buffer, uid: string) => {
    const f = path.join(dir, `${files.length}.dcm`);
    writeFileSync(f, bytes);
    files.push(f);
    sent.set(uid, datasetBytes(bytes));
  };
  for (const { spec } of IMAGE_MATRIX) {
    const f = imageFile(spec);
    add(f.bytes, f.sopInstanceUid);
  }
  const ct = ctFile(); // no pixel gain worth having: stays as received
  add(ct.bytes, ct.sopInstanceUid);
  return { files, sent };
}

interface AtRest {
  compressed: number;
  notNeeded: number;
  bytesIn: number;
  bytesOut: number;
  passedThrough: number;
  deliveredFirst: number;
  backlog: number;
}

async function atRest(spoolDir: string): Promise<AtRest> {
  const s = (await controlGet(path.join(spoolDir, 'control.sock'), '/status')) as { spool: { compressAtRest: AtRest } };
  return s.spool.compressAtRest;
}

/** Objects at the PACS by SOP Instance UID: transfer syntax and data set. */
function atPacs(dir: string): Map<string, { ts: string; file: string }> {
  const out = new Map<string, { ts: string; file: string }>();
  for (const n of readdirSync(dir).filter((x) => x.endsWith('.dcm'))) {
    const h = readPart10Header(readFileSync(path.join(dir, n)))!;
    out.set(h.sopInstanceUid, { ts: h.transferSyntaxUid, file: path.join(dir, n) });
  }
  return out;
}

async function scenario(name: string, env: Record<string, string> = {}) {
  const dir = path.join(tmp.dir, name);
  const pacsDir = path.join(dir, 'pacs');
  mkdirSync(pacsDir, { recursive: true });
  const { files, sent } = study(path.join(dir, 'study'));
  const pacsPort = await freePort(); // nothing listens yet: the PACS is down
  const config = { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: FAST };
  // A destination with compression: none decodes what is compressed at rest: it is compressed
  // only under disk pressure, here free space under 4 × spool.minFreeBytes (and above it: the
  // gateway still receives).
  const fs = statfsSync(dir);
  const gw = await startGateway({ dir, config, env, spool: { minFreeBytes: Math.floor((fs.bavail * fs.bsize) / 3) } });
  return { dir, pacsDir, files, sent, pacsPort, config, gw };
}

/**
 * Whether to compress at rest follows what the destination accepted on its last association
 * (src/forward/accepted-syntaxes.ts): a PACS that takes uncompressed data only would have every
 * object decoded again at send time, so without disk pressure nothing is compressed for it.
 */
describe('compression at rest pays only when the destination takes the compressed form', () => {
  for (const [label, syntaxes, compressed] of [
    ['a PACS that takes uncompressed only (storescp defaults): nothing is compressed at rest', [] as string[], false],
    ['a PACS that takes JPEG-LS (+xt): the images are compressed at rest', ['+xt'], true],
  ] as const) {
    it(label, async () => {
      const dir = path.join(tmp.dir, `decide-${compressed}`);
      const pacsDir = path.join(dir, 'pacs');
      mkdirSync(pacsDir, { recursive: true });
      const { files } = study(path.join(dir, 'study'));
      const pacsPort = await freePort();
      // The destination's default compression (jpeg-ls); no spool.maxBytes, plenty of free space: no pressure.
      const gw = await startGateway({ dir, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort }], forwarding: FAST } });
      try {
        // The PACS is up once: the gateway learns what it accepts (one object delivered).
        const pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort, syntaxes: [...syntaxes] });
        try {
          expect((await storescu({ port: gw.port, files: files.slice(0, 1) })).acked).toHaveLength(1);
          await waitFor(() => nothingPending(gw.spoolDir), { what: 'the first object at the PACS', timeoutMs: 30_000 });
        } finally {
          await pacs.stop();
        }
        // Then it is down while the rest arrives.
        const rest = files.slice(1);
        expect((await storescu({ port: gw.port, files: rest })).acked).toHaveLength(rest.length);
        const z = await waitFor(async () => {
          const a = await atRest(gw.spoolDir);
          return a.backlog === 0 && a.compressed + a.passedThrough + a.notNeeded >= rest.length ? a : undefined;
        }, { what: 'compression at rest done', timeoutMs: 30_000 });
        const onDisk = readdirSync(path.join(gw.spoolDir, 'objects')).map((n) => readPart10Header(readSpoolFile(path.join(gw.spoolDir, 'objects', n)))!.transferSyntaxUid);
        if (compressed) {
          expect(z.compressed).toBeGreaterThanOrEqual(IMAGE_MATRIX.length - 2);
          expect(z.notNeeded).toBe(0);
          expect(onDisk.filter((t) => t === TS.JPEGLSLossless).length).toBe(z.compressed);
        } else {
          expect(z.compressed).toBe(0);
          expect(z.notNeeded).toBeGreaterThanOrEqual(IMAGE_MATRIX.length - 2);
          expect(onDisk.filter((t) => t === TS.JPEGLSLossless)).toHaveLength(0);
        }
      } finally {
        await gw.stop();
      }
    });
  }
});

describe('compression at rest', () => {
  it('shrinks the spool while the PACS is down; the PACS then gets exactly what the modality sent', async () => {
    const s = await scenario('exact');
    try {
      expect((await storescu({ port: s.gw.port, files: s.files })).acked).toHaveLength(s.files.length);
      const z = await waitFor(async () => {
        const a = await atRest(s.gw.spoolDir);
        return a.backlog === 0 && a.compressed + a.passedThrough >= s.files.length ? a : undefined;
      }, { what: 'compression at rest done', timeoutMs: 30_000 });
      expect(z.compressed).toBeGreaterThanOrEqual(IMAGE_MATRIX.length - 1);
      expect(z.bytesOut).toBeLessThan(z.bytesIn);
      const onDisk = readdirSync(path.join(s.gw.spoolDir, 'objects')).map((n) => readPart10Header(readSpoolFile(path.join(s.gw.spoolDir, 'objects', n)))!.transferSyntaxUid);
      expect(onDisk.filter((t) => t === TS.JPEGLSLossless).length).toBe(z.compressed);
      // Queue figures follow the files: what is pending is what the spool now holds.
      const st = (await controlGet(path.join(s.gw.spoolDir, 'control.sock'), '/status')) as { spool: { bytes: number }; destinations: { pendingBytes: number }[] };
      expect(st.destinations[0]!.pendingBytes).toBe(st.spool.bytes);
      // The PACS (uncompressed only, as storescp is by default) comes up: every object arrives
      // in the syntax it was received in, its data set byte-identical to what was sent.
      const pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort, syntaxes: [] });
      try {
        await waitFor(() => nothingPending(s.gw.spoolDir), { what: 'all objects confirmed by the PACS', timeoutMs: 30_000 });
        expect(atPacs(s.pacsDir).size).toBe(s.files.length);
        for (const [uid, got] of atPacs(s.pacsDir)) {
          expect(got.ts).toBe(TS.ExplicitVRLittleEndian);
          expect(datasetBytes(got.file).equals(s.sent.get(uid)!), uid).toBe(true);
        }
      } finally {
        await pacs.stop();
      }
    } finally {
      await s.gw.stop();
    }
  });

  it('objects the PACS confirmed before their turn leave the backlog with the spool, without a pass', async () => {
    const s = await scenario('delivered-first');
    // A modality stays connected (an open association), so the compressor's pass keeps waiting,
    // as it did in `make demo` (status read ~1 s after the study: "backlog 50" next to "0 objects").
    const held = await RawScu.connect(s.gw.port);
    try {
      held.write(associateRq({ callingAe: 'HELD', contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }] }));
      expect((await held.next())?.type).toBe(0x02); // A-ASSOCIATE-AC
      const pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort, syntaxes: [] });
      try {
        expect((await storescu({ port: s.gw.port, files: s.files })).acked).toHaveLength(s.files.length);
        await waitFor(() => nothingPending(s.gw.spoolDir), { what: 'all objects confirmed by the PACS', timeoutMs: 30_000 });
        // Nothing is owed to the PACS any more: neither is anything waiting for compression, at
        // once (the spool tells the compressor), while the pass is still waiting.
        const z = await atRest(s.gw.spoolDir);
        expect(z.backlog, 'backlog 0 as soon as every object was delivered').toBe(0);
        expect(z).toMatchObject({ compressed: 0, passedThrough: 0, deliveredFirst: s.files.length });
        const st = (await controlGet(path.join(s.gw.spoolDir, 'control.sock'), '/status')) as { spool: { objects: number }; receive: { activeAssociations: number } };
        expect(st.spool.objects).toBe(0);
        expect(st.receive.activeAssociations).toBe(1); // still held: no pass could have run
      } finally {
        await pacs.stop();
      }
    } finally {
      held.close();
      await s.gw.stop();
    }
  });

  it('objects received in Implicit VR are compressed at rest and come back byte for byte', async () => {
    const s = await scenario('implicit');
    try {
      expect((await storescu({ port: s.gw.port, files: s.files, extraArgs: ['-xi'] })).acked).toHaveLength(s.files.length);
      const z = await waitFor(async () => {
        const a = await atRest(s.gw.spoolDir);
        return a.backlog === 0 && a.compressed + a.passedThrough >= s.files.length ? a : undefined;
      }, { what: 'compression at rest done', timeoutMs: 30_000 });
      expect(z.compressed).toBeGreaterThanOrEqual(IMAGE_MATRIX.length - 1);
      // What storescu sent: the same data sets in Implicit VR (storescp receiving them directly says so).
      const refDir = path.join(s.dir, 'ref');
      mkdirSync(refDir);
      const ref = await startStorescp(refDir, 'REF', { syntaxes: ['+xi'] });
      try {
        expect((await storescu({ port: ref.port, files: s.files, calledAe: 'REF', extraArgs: ['-xi'] })).acked).toHaveLength(s.files.length);
      } finally {
        await ref.stop();
      }
      const pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort, syntaxes: ['+xi'] });
      try {
        await waitFor(() => nothingPending(s.gw.spoolDir), { what: 'all objects confirmed by the PACS', timeoutMs: 30_000 });
        const want = atPacs(refDir);
        const got = atPacs(s.pacsDir);
        expect(got.size).toBe(s.files.length);
        for (const [uid, g] of got) {
          expect(g.ts).toBe(TS.ImplicitVRLittleEndian);
          expect(datasetBytes(g.file).equals(datasetBytes(want.get(uid)!.file)), uid).toBe(true);
        }
      } finally {
        await pacs.stop();
      }
    } finally {
      await s.gw.stop();
    }
  });

  it('a PACS preferring JPEG-LS gets the compressed files as they are (dcmdjpls gives back what was sent)', async () => {
    const s = await scenario('jls');
    try {
      expect((await storescu({ port: s.gw.port, files: s.files })).acked).toHaveLength(s.files.length);
      await waitFor(async () => {
        const a = await atRest(s.gw.spoolDir);
        return a.backlog === 0 && a.compressed + a.passedThrough >= s.files.length ? a : undefined;
      }, { what: 'compression at rest done', timeoutMs: 30_000 });
      await s.gw.stop();
      // Same spool, now with JPEG-LS for this destination.
      const gw = await startGateway({ dir: s.dir, port: s.gw.port, config: { ...s.config, forward: [{ ...s.config.forward[0], compression: 'jpeg-ls' }] } });
      const pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort, syntaxes: ['+xt'] });
      try {
        await waitFor(() => nothingPending(gw.spoolDir), { what: 'all objects confirmed by the PACS', timeoutMs: 30_000 });
        expect(atPacs(s.pacsDir).size).toBe(s.files.length);
        let jls = 0;
        for (const [uid, got] of atPacs(s.pacsDir)) {
          if (got.ts === TS.JPEGLSLossless) {
            jls++;
            const out = `${got.file}.raw`;
            expect((await run('dcmdjpls', [got.file, out])).code).toBe(0);
            // DCMTK's decoding: same pixels (colour may come back in the other planar layout) and attributes.
            const back = datasetBytes(readFileSync(out));
            expect(canonicalSamples(back)).toEqual(canonicalSamples(s.sent.get(uid)!));
            expect(differingAttributes(back, s.sent.get(uid)!)).toEqual([]);
          } else expect(datasetBytes(got.file).equals(s.sent.get(uid)!)).toBe(true);
        }
        expect(jls).toBeGreaterThanOrEqual(IMAGE_MATRIX.length - 1);
      } finally {
        await pacs.stop();
        await gw.stop();
      }
    } finally {
      await s.gw.stop().catch(() => undefined);
    }
  });

  for (const point of ['rewrite-after-intent:3', 'rewrite-after-rename:3']) {
    it(`SIGKILL inside the file replacement (${point}): after restart every object is intact and delivered exactly`, async () => {
      const s = await scenario(point.replace(/\W+/g, '_'), { PACS_EDGE_CRASHPOINT: point });
      expect((await storescu({ port: s.gw.port, files: s.files })).acked).toHaveLength(s.files.length);
      expect(await s.gw.exited).toBeNull(); // killed by its own crash point
      const gw = await startGateway({ dir: s.dir, port: s.gw.port, config: s.config });
      try {
        const recovered = gw.logs.find((l) => l.msg === 'spool recovered') as { recovered?: number; lost?: number } | undefined;
        expect(recovered).toMatchObject({ recovered: s.files.length, lost: 0 });
        const pacs = await startStorescp(s.pacsDir, 'PACS', { port: s.pacsPort, syntaxes: [] });
        try {
          await waitFor(() => nothingPending(gw.spoolDir), { what: 'all objects confirmed by the PACS', timeoutMs: 30_000 });
          expect(atPacs(s.pacsDir).size).toBe(s.files.length);
        expect(atPacs(s.pacsDir).size).toBe(s.files.length);
          for (const [uid, got] of atPacs(s.pacsDir)) expect(datasetBytes(got.file).equals(s.sent.get(uid)!), uid).toBe(true);
        } finally {
          await pacs.stop();
        }
      } finally {
        await gw.stop();
      }
    });
  }
});
