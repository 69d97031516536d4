import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { IMAGE_MATRIX, imageFile } from '../helpers/image-fixtures.js';
import { canonicalSamples, differingAttributes, differingValues } from '../helpers/pixel-compare.js';
import { CLI, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * Compression before forwarding, end to end with real DCMTK on both sides: storescu as the
 * modality, storescp as the PACS, and DCMTK's own decoders (dcmdjpls, dcmdrle, dcmconv) as the
 * independent judges that every pixel arrived unchanged and every other attribute is equal.
 */
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 20 };

const tmp = tempDir();
const sent = new Map<string, { name: string; dataset: Buffer }>();
const files: string[] = [];

beforeAll(() => {
  for (const { name, spec } of IMAGE_MATRIX) {
    const f = imageFile(spec);
    const file = path.join(tmp.dir, `${name.replace(/\W+/g, '_')}.dcm`);
    writeFileSync(file, f.bytes);
    files.push(file);
    sent.set(f.sopInstanceUid, { name, dataset: datasetBytes(f.bytes) });
  }
});
afterAll(() => tmp.cleanup());

/**
 * Forward every fixture through a gateway with `compression` to a storescp started with
 * `syntaxes`; returns what the PACS stored, by SOP Instance UID.
 */
async function forwardAll(compression: string, syntaxes: string[], sendArgs: string[] = []): Promise<Map<string, { file: string; ts: string }>> {
  const dir = path.join(tmp.dir, `${compression}-${syntaxes.join('') || 'default'}${sendArgs.join('')}`);
  const pacsDir = path.join(dir, 'pacs');
  mkdirSync(pacsDir, { recursive: true });
  const pacs = await startStorescp(pacsDir, 'PACS', { syntaxes });
  const gw = await startGateway({ dir, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression }], forwarding: FAST } });
  try {
    expect((await storescu({ port: gw.port, files, extraArgs: sendArgs })).acked).toHaveLength(files.length);
    // Confirmed by the PACS: storescp answers only once it has written the whole file.
    await waitFor(() => nothingPending(gw.spoolDir), { what: `${files.length} objects confirmed by the PACS`, timeoutMs: 30_000 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; gateway: ${gw.output().slice(-1500)}; storescp: ${pacs.log().slice(-1500)}`);
    });
    const st = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json'])).stdout) as { destinations: { compression: Record<string, number> }[] };
    const out = new Map<string, { file: string; ts: string }>();
    for (const n of readdirSync(pacsDir)) {
      const file = path.join(pacsDir, n);
      const h = readPart10Header(readFileSync(file))!;
      out.set(h.sopInstanceUid, { file, ts: h.transferSyntaxUid });
    }
    (out as unknown as { status: unknown }).status = st.destinations[0]!.compression;
    expect(gw.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    return out;
  } finally {
    await gw.stop();
    await pacs.stop();
  }
}

/** Decode a received file with a DCMTK tool and check it against what the modality sent. */
async function checkDecoded(received: Map<string, { file: string; ts: string }>, tool: string[], expectTs: string): Promise<void> {
  for (const [uid, r] of received) {
    const original = sent.get(uid)!;
    expect(r.ts, original.name).toBe(expectTs);
    const out = `${r.file}.decoded`;
    const d = await run(tool[0]!, [...tool.slice(1), r.file, out]);
    expect(d.code, `${tool[0]} on ${original.name}: ${d.stderr}`).toBe(0);
    const ds = datasetBytes(out);
    expect(canonicalSamples(ds), original.name).toEqual(canonicalSamples(original.dataset));
    expect(differingAttributes(ds, original.dataset), original.name).toEqual([]);
  }
}

/** The PACS holds every object the modality sent, each once (by SOP Instance UID). */
function expectEveryObject(got: Map<string, unknown>): void {
  expect([...got.keys()].sort(), 'objects at the PACS').toEqual([...sent.keys()].sort());
}

/** The destination's compression counters (pacs-edge status): every object went out compressed. */
function expectAllCompressed(got: Map<string, unknown>): void {
  const zip = (got as unknown as { status: { compressed: number; bytesIn: number; bytesOut: number } }).status;
  expect(zip.compressed, 'objects the gateway compressed').toBe(files.length);
}

describe('compression before forwarding (real DCMTK peers and decoders)', () => {
  it('JPEG-LS: storescp preferring JPEG-LS gets JPEG-LS, and dcmdjpls decodes every pixel back', async () => {
    const got = await forwardAll('jpeg-ls', ['+xt']);
    expect(got.size).toBe(files.length);
    await checkDecoded(got, ['dcmdjpls'], TS.JPEGLSLossless);
    const zip = (got as unknown as { status: { compressed: number; bytesIn: number; bytesOut: number } }).status;
    expect(zip.compressed).toBe(files.length);
    expect(zip.bytesOut).toBeLessThan(zip.bytesIn);
  });

  it('RLE: dcmdrle decodes every pixel back', async () => {
    const got = await forwardAll('rle', ['+xr']);
    expectEveryObject(got);
    expectAllCompressed(got);
    await checkDecoded(got, ['dcmdrle'], TS.RLELossless);
  });

  it('Deflate: dcmconv inflates every data set back to the bytes the modality sent', async () => {
    const got = await forwardAll('deflate', ['+xd']);
    expectEveryObject(got);
    expectAllCompressed(got);
    for (const [uid, r] of got) {
      expect(r.ts).toBe(TS.DeflatedExplicitVRLittleEndian);
      const out = `${r.file}.inflated`;
      expect((await run('dcmconv', ['+te', r.file, out])).code).toBe(0);
      expect(datasetBytes(out).equals(sent.get(uid)!.dataset), sent.get(uid)!.name).toBe(true);
    }
  });

  it('objects received in Implicit VR are compressed too: dcmdjpls gives back their pixels and values', async () => {
    const got = await forwardAll('jpeg-ls', ['+xt'], ['-xi']);
    expect(got.size).toBe(files.length);
    for (const [uid, r] of got) {
      const original = sent.get(uid)!;
      expect(r.ts, original.name).toBe(TS.JPEGLSLossless);
      const out = `${r.file}.decoded`;
      expect((await run('dcmdjpls', [r.file, out])).code).toBe(0);
      const ds = datasetBytes(out);
      expect(canonicalSamples(ds), original.name).toEqual(canonicalSamples(original.dataset));
      expect(differingValues(ds, original.dataset), original.name).toEqual([]);
    }
  });

  it('a PACS that takes only Implicit VR gets objects received in Explicit VR converted, values unchanged', async () => {
    const got = await forwardAll('none', ['+xi']);
    expect(got.size).toBe(files.length);
    for (const [uid, r] of got) {
      expect(r.ts).toBe(TS.ImplicitVRLittleEndian);
      const explicit = `${r.file}.explicit`;
      expect((await run('dcmconv', ['+te', r.file, explicit])).code).toBe(0);
      const ds = datasetBytes(explicit);
      expect(canonicalSamples(ds)).toEqual(canonicalSamples(sent.get(uid)!.dataset));
      expect(differingValues(ds, sent.get(uid)!.dataset)).toEqual([]);
    }
  });

  it('a PACS that takes only uncompressed data gets every object uncompressed, byte for byte', async () => {
    const got = await forwardAll('jpeg-ls', []);
    expect(got.size).toBe(files.length);
    for (const [uid, r] of got) {
      expect(r.ts).toBe(TS.ExplicitVRLittleEndian);
      expect(datasetBytes(r.file).equals(sent.get(uid)!.dataset)).toBe(true);
    }
  });
});
