import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { transferSyntax, TS } from '../../src/dicom/transfer-syntaxes.js';
import { corpusDir, corpusMissing } from '../helpers/corpus.js';
import { datasetBytes, startStorescp, storescu, storescuArgsFor } from '../helpers/dcmtk.js';
import { maxAbsDiff, referenceDecoding } from '../helpers/decode-oracle.js';
import { canonicalSamples, differingAttributes } from '../helpers/pixel-compare.js';
import { type Orthanc, ORTHANC, ORTHANC_HOW, startOrthanc } from '../helpers/orthanc.js';
import { CLI, type GatewayProcess, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * The whole public corpus through a gateway that compresses with JPEG-LS: to DCMTK storescp
 * preferring JPEG-LS (every compressed object decoded again by DCMTK's dcmdjpls and compared
 * with what storescu sent), and to Orthanc (which must decode what it got: its preview works).
 */
const CORPUS = corpusDir();

/** A file decoded by a DCMTK tool; its data set. */
async function dcmtkDecode(tool: string, file: string): Promise<Buffer> {
  const out = `${file}.decoded`;
  const d = await run(tool, [file, out]);
  if (d.code !== 0) throw new Error(`${tool} failed on ${path.basename(file)}: ${d.stderr}`);
  return datasetBytes(readFileSync(out));
}

/** Same pixels and same attributes (Pixel Data and Planar Configuration compared by value). */
async function sameImage(name: string, got: Buffer, want: Buffer): Promise<void> {
  expect(canonicalSamples(got), `${name}: pixels`).toEqual(canonicalSamples(want));
  expect(differingAttributes(got, want), `${name}: attributes that differ`).toEqual([]);
}

const WHAT = 'compression over the corpus: gateway JPEG-LS → storescp (+dcmdjpls) and Orthanc';

describe.skipIf(skipSuite(WHAT, corpusMissing() ?? missingTools({ [ORTHANC]: ORTHANC_HOW })))(WHAT, () => {
  const tmp = tempDir();
  const pacsDir = path.join(tmp.dir, 'pacs');
  const refDir = path.join(tmp.dir, 'ref');
  const oracleDir = path.join(tmp.dir, 'oracle');
  let pacs: Awaited<ReturnType<typeof startStorescp>>;
  let ref: Awaited<ReturnType<typeof startStorescp>>;
  /** The same kind of PACS as `pacs` (JPEG-LS and uncompressed only), that storescu sends to directly: what it takes, the gateway must deliver. */
  let direct: Awaited<ReturnType<typeof startStorescp>>;
  let orthanc: Orthanc;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mkdirSync(pacsDir);
    mkdirSync(refDir);
    mkdirSync(oracleDir);
    mkdirSync(path.join(tmp.dir, 'direct'));
    direct = await startStorescp(path.join(tmp.dir, 'direct'), 'DIRECT', { uniqueFilenames: true, syntaxes: ['+xt'] });
    pacs = await startStorescp(pacsDir, 'PACS', { fork: true, uniqueFilenames: true, syntaxes: ['+xt'] });
    ref = await startStorescp(refDir, 'REF', { uniqueFilenames: true });
    mkdirSync(path.join(tmp.dir, 'orthanc'));
    orthanc = await startOrthanc(path.join(tmp.dir, 'orthanc'), { OverwriteInstances: true });
    gw = await startGateway({
      dir: tmp.dir,
      receive: { unknownSopClasses: 'accept' },
      config: {
        forward: [
          { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'jpeg-ls' },
          { name: 'orthanc', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.port, compression: 'jpeg-ls' },
        ],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 2 },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    await pacs?.stop();
    await ref?.stop();
    await direct?.stop();
    await orthanc?.stop();
    tmp.cleanup();
  });

  const newest = (dir: string, uid: string, names?: string[]): { p: string; b: Buffer } | undefined =>
    (names ?? readdirSync(dir))
      .filter((n) => !n.endsWith('.decoded'))
      .map((n) => path.join(dir, n))
      .map((p) => ({ p, t: statSync(p, { bigint: true }).mtimeNs, b: readFileSync(p) }))
      .filter((x) => readPart10Header(x.b)?.sopInstanceUid === uid)
      .sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : 0))[0];

  it('every compressed object decodes (dcmdjpls) to the pixels and attributes storescu sent; the rest arrive unchanged; Orthanc decodes them', async () => {
    const notDelivered: string[] = [];
    const seen = new Set<string>();
    const summary = { sent: 0, compressed: 0, asSent: 0, decoded: 0, orthancPreview: 0, bytesSent: 0, bytesAtPacs: 0 };
    for (const name of readdirSync(CORPUS!).filter((n) => n.endsWith('.dcm')).sort()) {
      const file = path.join(CORPUS!, name);
      const extraArgs = storescuArgsFor(file);
      if (!extraArgs) continue;
      if (!(await storescu({ port: ref.port, files: [file], calledAe: 'REF', extraArgs })).acked.includes(1)) continue;
      expect((await storescu({ port: gw.port, files: [file], extraArgs })).acked, name).toEqual([1]);
      summary.sent++;
      const uid = String(dicomParser.parseDicom(readFileSync(file), { untilTag: 'x00080018' }).string('x00080018'));
      const sent = datasetBytes(newest(refDir, uid)!.b);
      await waitFor(() => nothingPending(gw.spoolDir), { what: `${name} forwarded`, intervalMs: 20 });
      // Several corpus files share a SOP Instance UID: only a file written for this send counts.
      const fresh = readdirSync(pacsDir).filter((n) => !n.endsWith('.decoded') && !seen.has(n));
      for (const n of fresh) seen.add(n);
      const at = fresh.length ? newest(pacsDir, uid, fresh) : undefined;
      if (!at) {
        // Stored in a syntax this PACS refuses and the gateway cannot decode (1-bit J2K segmentations, say): a stated dead letter.
        // Never one that DCMTK's own storescu gets into the same PACS (issue 17: no object stranded);
        // storescu with its defaults proposes uncompressed syntaxes and decompresses what DCMTK can.
        const directly = (await storescu({ port: direct.port, files: [file], calledAe: 'DIRECT' })).acked.includes(1);
        expect(directly, `${name}: storescu delivers it to a storescp +xt, the gateway left it a dead letter`).toBe(false);
        notDelivered.push(`${name} (${readPart10Header(newest(refDir, uid)!.b)!.transferSyntaxUid})`);
        continue;
      }
      const storedTs = readPart10Header(newest(refDir, uid)!.b)!.transferSyntaxUid;
      // The compression's gain is measured on what was received uncompressed (objects received
      // compressed and decoded for this PACS grow, as they must).
      if (storedTs === TS.ExplicitVRLittleEndian || storedTs === TS.ImplicitVRLittleEndian) {
        summary.bytesSent += sent.length;
        summary.bytesAtPacs += datasetBytes(at!.b).length;
      }
      const atTs = readPart10Header(at.b)!.transferSyntaxUid;
      if (atTs === storedTs) {
        expect(datasetBytes(at.b).equals(sent), `${name}: sent as stored, unchanged`).toBe(true);
        summary.asSent++;
      } else if (atTs === TS.JPEGLSLossless) {
        // Compressed by the gateway: DCMTK decodes it back to what the modality sent.
        expect(storedTs).toBe(TS.ExplicitVRLittleEndian);
        await sameImage(name, await dcmtkDecode('dcmdjpls', at.p), sent);
        summary.compressed++;
      } else {
        // Decoded by the gateway for a PACS that does not take the stored syntax: equal to DCMTK's decoding of what was sent.
        expect(atTs, name).toBe(TS.ExplicitVRLittleEndian);
        const tool = { [TS.RLELossless]: 'dcmdrle', [TS.JPEGLSLossless]: 'dcmdjpls' }[storedTs];
        if (tool) await sameImage(name, datasetBytes(at.b), await dcmtkDecode(tool, newest(refDir, uid)!.p));
        else {
          // JPEG, JPEG 2000, HTJ2K (issue 17): the samples of DCMTK's or OpenJPEG's decoding, exact when the syntax is lossless.
          const ref = await referenceDecoding(newest(refDir, uid)!.p, oracleDir);
          expect(maxAbsDiff(canonicalSamples(datasetBytes(at.b)), ref.samples), `${name} vs ${ref.tool}`).toBeLessThanOrEqual(transferSyntax(storedTs)?.lossless === true ? 0 : 1);
        }
        summary.decoded++;
      }
      const ids = ((await orthanc.rest('/tools/lookup', uid)) as { Type: string; ID: string }[]).filter((x) => x.Type === 'Instance').map((x) => x.ID);
      if (ids.length && readPart10Header(at.b)!.transferSyntaxUid === TS.JPEGLSLossless) {
        const png = await orthanc.restBytes(`/instances/${ids[0]}/preview`).catch(() => undefined);
        if (png && png.subarray(1, 4).toString('latin1') === 'PNG') summary.orthancPreview++;
      }
    }
    const dl = JSON.parse((await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', gw.configFile, '--json'])).stdout) as { destination: string; sopInstanceUid: string; reason: string }[];
    expect(dl.filter((d) => d.destination === 'pacs')).toHaveLength(notDelivered.length);
    for (const d of dl.filter((x) => x.destination === 'pacs')) expect(d.reason).toMatch(/none of the syntaxes/);
    console.log(`corpus compression: ${JSON.stringify({ ...summary, deadLettered: notDelivered })}`);
    expect(summary.sent).toBeGreaterThan(40);
    expect(summary.compressed).toBeGreaterThan(10);
    expect(summary.compressed + summary.asSent + summary.decoded + notDelivered.length).toBe(summary.sent);
    expect(summary.orthancPreview).toBeGreaterThan(5);
    expect(summary.bytesAtPacs).toBeLessThan(summary.bytesSent);
  }, 300_000);
});
