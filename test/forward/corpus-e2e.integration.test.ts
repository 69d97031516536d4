import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { corpusDir, corpusMissing } from '../helpers/corpus.js';
import { datasetBytes, startStorescp, storescu, storescuArgsFor } from '../helpers/dcmtk.js';
import { type Orthanc, ORTHANC, ORTHANC_HOW, startOrthanc } from '../helpers/orthanc.js';
import { CLI, type GatewayProcess, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * End to end over the public corpus: DCMTK storescu (modality) → gateway → DCMTK storescp
 * (bit-preserving PACS) and Orthanc (a full PACS, checked through its REST API). "What was
 * sent" is captured by a second storescp receiving the same file straight from storescu: the
 * PACS must hold exactly that data set, byte for byte.
 */
const CORPUS = corpusDir();

const WHAT = 'forward: every corpus file storescu can send, modality → gateway → storescp and Orthanc';

describe.skipIf(skipSuite(WHAT, corpusMissing() ?? missingTools({ [ORTHANC]: ORTHANC_HOW })))(WHAT, () => {
  const tmp = tempDir();
  const pacsDir = path.join(tmp.dir, 'pacs');
  const refDir = path.join(tmp.dir, 'ref');
  let pacs: Awaited<ReturnType<typeof startStorescp>>;
  let ref: Awaited<ReturnType<typeof startStorescp>>;
  let orthanc: Orthanc;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mkdirSync(pacsDir);
    mkdirSync(refDir);
    pacs = await startStorescp(pacsDir, 'PACS', { fork: true, uniqueFilenames: true });
    ref = await startStorescp(refDir, 'REF', { uniqueFilenames: true });
    mkdirSync(path.join(tmp.dir, 'orthanc'));
    // Several corpus files share a SOP Instance UID: Orthanc must keep the latest, as storescp does.
    orthanc = await startOrthanc(path.join(tmp.dir, 'orthanc'), { OverwriteInstances: true });
    gw = await startGateway({
      dir: tmp.dir,
      receive: { unknownSopClasses: 'accept' },
      config: {
        log: { level: 'info' },
        forward: [
          { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' },
          { name: 'orthanc', aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.port, compression: 'none' },
        ],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 2 },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    await pacs?.stop();
    await ref?.stop();
    await orthanc?.stop();
    tmp.cleanup();
  });

  /** Newest file in `dir` whose File Meta names this SOP Instance UID. */
  const newest = (dir: string, uid: string): Buffer | undefined => {
    const hits = readdirSync(dir)
      .map((n) => path.join(dir, n))
      .map((p) => ({ p, t: statSync(p, { bigint: true }).mtimeNs, b: readFileSync(p) }))
      .filter((x) => readPart10Header(x.b)?.sopInstanceUid === uid)
      .sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : 0));
    return hits[0]?.b;
  };

  it('each data set arrives at storescp byte-identical to what storescu sent, and Orthanc has it', async () => {
    const summary = { sent: 0, identical: 0, atOrthanc: 0, orthancDeadLettered: [] as string[], notSendable: [] as string[] };
    for (const name of readdirSync(CORPUS!).filter((n) => n.endsWith('.dcm')).sort()) {
      const file = path.join(CORPUS!, name);
      const extraArgs = storescuArgsFor(file);
      if (!extraArgs) {
        summary.notSendable.push(name);
        continue;
      }
      const direct = await storescu({ port: ref.port, files: [file], calledAe: 'REF', extraArgs });
      if (!direct.acked.includes(1)) {
        summary.notSendable.push(name);
        continue;
      }
      const viaGateway = await storescu({ port: gw.port, files: [file], extraArgs });
      expect(viaGateway.acked, `${name} acknowledged by the gateway`).toEqual([1]);
      summary.sent++;
      const uid = String(dicomParser.parseDicom(readFileSync(file), { untilTag: 'x00080018' }).string('x00080018'));
      const sentBytes = datasetBytes(newest(refDir, uid)!);
      // Wait until both destinations are done with it (delivered or dead-lettered).
      await waitFor(() => nothingPending(gw.spoolDir), { what: `${name} forwarded`, intervalMs: 20 });
      const atPacs = newest(pacsDir, uid);
      expect(atPacs, `${name} at storescp`).toBeDefined();
      expect(datasetBytes(atPacs!).equals(sentBytes), `${name}: data set at the PACS byte-identical to what storescu sent`).toBe(true);
      summary.identical++;
      const ids = ((await orthanc.rest('/tools/lookup', uid)) as { Type: string; ID: string }[]).filter((x) => x.Type === 'Instance').map((x) => x.ID);
      if (ids.length) {
        const body = await orthanc.restBytes!(`/instances/${ids[0]}/file`);
        expect(datasetBytes(body).equals(sentBytes), `${name}: data set at Orthanc byte-identical`).toBe(true);
        summary.atOrthanc++;
      } else summary.orthancDeadLettered.push(name);
    }
    console.log(`corpus end to end: ${JSON.stringify(summary)}`);
    expect(summary.sent).toBeGreaterThan(40);
    expect(summary.identical).toBe(summary.sent);
    // Orthanc takes what it can store; what it refused must be in the dead-letter list with a reason.
    const dl = JSON.parse((await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', gw.configFile, '--json'])).stdout) as { destination: string }[];
    expect(dl.filter((d) => d.destination === 'orthanc').length).toBeGreaterThanOrEqual(summary.orthancDeadLettered.length);
    expect(summary.atOrthanc).toBeGreaterThan(40);
  });
});

