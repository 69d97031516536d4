import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { ctElements, ctFile, encodeDataset, ExplicitLE, part10, testUid, TS_UID, writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * Modality (DCMTK storescu) → gateway → central PACS (DCMTK storescp, bit-preserving), all real
 * processes on loopback. Fast retries so the failure cases run in seconds.
 */
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 10 };

const dcmFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.dcm'));

async function status(configFile: string) {
  const r = await run(process.execPath, [CLI, 'status', '--config', configFile, '--json']);
  return JSON.parse(r.stdout) as { destinations: { name: string; pending: number; deadLetter: number; state?: string; sent?: number }[] };
}

describe('forward: modality → gateway → PACS', () => {
  it('delivers every object byte for byte (data set equal to what the gateway received)', async () => {
    const tmp = tempDir();
    const pacsDir = path.join(tmp.dir, 'pacs');
    (await import('node:fs')).mkdirSync(pacsDir);
    const pacs = await startStorescp(pacsDir, 'PACS', { fork: true });
    const gw = await startGateway({ dir: tmp.dir, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port }], forwarding: FAST } });
    try {
      const study = writeStudy(tmp.dir, 30);
      // An encapsulated (JPEG-LS) object and a deflated one travel in their own syntax.
      const jlsUid = testUid();
      const jls = path.join(tmp.dir, 'jls.dcm');
      writeFileSync(jls, part10({ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: jlsUid, ts: '1.2.840.10008.1.2.4.80', dataset: encodeDataset(ctElements({ sopInstanceUid: jlsUid, fragments: [Buffer.from('frame-one-bytes!')] }), ExplicitLE) }));
      const defl = ctFile({ ts: TS_UID.deflate });
      const deflFile = path.join(tmp.dir, 'deflate.dcm');
      writeFileSync(deflFile, defl.bytes);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(30);
      expect((await storescu({ port: gw.port, files: [jls], extraArgs: ['-xt'] })).acked).toEqual([1]);
      expect((await storescu({ port: gw.port, files: [deflFile], extraArgs: ['-xd'] })).acked).toEqual([1]);
      await waitFor(() => dcmFiles(pacsDir).length >= 32 || undefined, { what: '32 objects at the PACS' });
      // Every object arrives with the data set the modality sent (our fixtures are encoded the
      // way DCMTK sends them), in the syntax it was sent in. storescu re-deflates with its own
      // settings, so for the deflated one the inflated content is compared.
      const atPacs = new Map<string, Buffer>();
      for (const n of dcmFiles(pacsDir)) {
        const b = readFileSync(path.join(pacsDir, n));
        atPacs.set(readPart10Header(b)!.sopInstanceUid, b);
      }
      for (const [uid, file] of [...study.map((s) => [s.uid, s.file] as const), [jlsUid, jls] as const]) {
        const theirs = atPacs.get(uid);
        expect(theirs, `PACS has ${uid}`).toBeDefined();
        expect(readPart10Header(theirs!)!.transferSyntaxUid).toBe(readPart10Header(readFileSync(file))!.transferSyntaxUid);
        expect(datasetBytes(theirs!).equals(datasetBytes(file)), `${path.basename(file)} byte-identical at the PACS`).toBe(true);
      }
      const d = atPacs.get(defl.sopInstanceUid)!;
      expect(readPart10Header(d)!.transferSyntaxUid).toBe(TS_UID.deflate);
      expect(inflateRawSync(datasetBytes(d)).equals(inflateRawSync(datasetBytes(deflFile)))).toBe(true);
      // Delivered objects leave the spool (spool.keepForwardedHours: 0).
      await waitFor(async () => (await status(gw.configFile)).destinations[0]!.pending === 0 || undefined, { what: 'an empty queue' });
      expect(dcmFiles(path.join(gw.spoolDir, 'objects'))).toEqual([]);
    } finally {
      await gw.stop();
      await pacs.stop();
      tmp.cleanup();
    }
  });
});
