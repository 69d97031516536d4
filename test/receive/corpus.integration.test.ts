import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { Status } from '../../src/dicom/status.js';
import { PduType } from '../../src/dicom/pdu.js';
import { corpusDir, corpusMissing } from '../helpers/corpus.js';
import { skipSuite } from '../helpers/requirements.js';
import { datasetBytes, startStorescp, storescu, storescuArgsFor } from '../helpers/dcmtk.js';
import { type GatewayProcess, startGateway, tempDir } from '../helpers/processes.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * Every file of the public corpus ($PACS_EDGE_CORPUS, set by `make test`) through the real gateway:
 *  - with DCMTK storescu, compared byte for byte with what DCMTK storescp (+B) stored of the
 *    same send: the gateway keeps exactly what the modality put on the wire;
 *  - with the raw SCU, which sends each file's data set bytes untouched in its own transfer
 *    syntax (including syntaxes DCMTK 3.6.7 cannot propose, such as HTJ2K): stored == file.
 * Skipped, with a note, when the corpus is not there (a fresh clone without shared/); with CI
 * set, that fails instead (test/helpers/corpus.ts).
 */
const CORPUS = corpusDir();
/** Files that are truncated on purpose: the gateway must refuse them with 0xC001. */
const TRUNCATED = new Set(['emri_small_jpeg_2k_lossless_too_short.dcm']);

describe.skipIf(skipSuite('the corpus receive test', corpusMissing()))(`corpus: every file of ${CORPUS ?? '$PACS_EDGE_CORPUS (not found)'}`, () => {
  const tmp = tempDir();
  const ref = tempDir();
  let gw: GatewayProcess;
  let scp: Awaited<ReturnType<typeof startStorescp>>;
  const files = CORPUS ? readdirSync(CORPUS!).filter((n) => n.endsWith('.dcm')).sort() : [];

  beforeAll(async () => {
    gw = await startGateway({ dir: tmp.dir });
    scp = await startStorescp(ref.dir);
  });
  afterAll(async () => {
    await gw?.stop();
    await scp?.stop();
    tmp.cleanup();
    ref.cleanup();
  });

  const storedByUid = () => {
    const map = new Map<string, Buffer>();
    // Ids grow with arrival, so in sorted order a later version of a UID replaces an earlier one
    // (several corpus files share UIDs; storescp keeps the last one it received under a UID).
    for (const n of readdirSync(path.join(gw.spoolDir, 'objects')).filter((x) => x.endsWith('.dcm')).sort()) {
      const b = readSpoolFile(path.join(gw.spoolDir, 'objects', n));
      const h = readPart10Header(b)!;
      map.set(`${h.sopInstanceUid}|${h.transferSyntaxUid}`, b.subarray(h.datasetOffset));
    }
    return map;
  };

  it('DCMTK storescu → gateway stores exactly what storescp (+B) stores of the same send', async () => {
    const summary = { sent: 0, identical: 0, bothRefused: 0, notSendable: [] as string[], storescpChoseOtherSyntax: [] as string[] };
    for (const name of files) {
      const file = path.join(CORPUS!, name);
      const extraArgs = storescuArgsFor(file);
      if (!extraArgs) {
        summary.notSendable.push(name);
        continue;
      }
      const toScp = await storescu({ port: scp.port, files: [file], calledAe: 'STORESCP', extraArgs, timeoutMs: 60_000 });
      const logMark = gw.logs.length;
      const toGw = await storescu({ port: gw.port, files: [file], extraArgs, timeoutMs: 60_000 });
      if (!toScp.acked.includes(1)) {
        // DCMTK could not send it (e.g. no decoder); the gateway must not have stored anything different.
        expect(toGw.acked.includes(1) && toScp.statuses.size > 0, `${name}: storescp refused but the gateway accepted`).toBe(false);
        summary.bothRefused++;
        continue;
      }
      summary.sent++;
      expect(toGw.acked, `${name}: gateway acknowledged\n${toGw.stdout.slice(-1500)}`).toEqual([1]);
      // Compare right after the send: several corpus files share a UID and storescp overwrites.
      const uid = String(dicomParser.parseDicom(readFileSync(file), { untilTag: 'x00080018' }).string('x00080018'));
      // storescp names files <modality prefix>.<uid>.dcm ("US." and "USm." can share a UID): newest wins.
      const refName = readdirSync(ref.dir)
        .filter((n) => n.endsWith(`.${uid}.dcm`))
        .sort((a, b) => statSync(path.join(ref.dir, b)).mtimeMs - statSync(path.join(ref.dir, a)).mtimeMs)[0];
      expect(refName, `storescp stored ${name}`).toBeDefined();
      const stored = await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === uid && gw.logs.indexOf(l) >= logMark, 5000);
      const mineFile = readSpoolFile(path.join(gw.spoolDir, 'objects', `${stored.id as string}.dcm`));
      const refFile = readFileSync(path.join(ref.dir, refName!));
      const mineTs = readPart10Header(mineFile)!.transferSyntaxUid;
      if (mineTs !== readPart10Header(refFile)!.transferSyntaxUid) {
        // storescp +xa picks its own preference among the proposed syntaxes (e.g. it takes
        // Explicit LE where storescu offered RLE first and can decode RLE). The gateway takes the
        // modality's first choice, which is the file's own syntax: no conversion on our side.
        expect(mineTs, `${name}: gateway kept the file's transfer syntax`).toBe(readPart10Header(readFileSync(file))!.transferSyntaxUid);
        summary.storescpChoseOtherSyntax.push(name);
        continue;
      }
      expect(datasetBytes(mineFile).equals(datasetBytes(refFile)), `${name}: data set byte-identical to storescp's`).toBe(true);
      summary.identical++;
    }
    console.log(`corpus via storescu: ${JSON.stringify(summary)}`);
    expect(summary.sent).toBeGreaterThan(40);
    expect(summary.identical + summary.storescpChoseOtherSyntax.length).toBe(summary.sent);
  });

  it('raw data set bytes of every Part 10 file, in its own transfer syntax → stored == file', async () => {
    const summary = { stored: 0, truncatedRefused: 0, notPart10: [] as string[], refused: [] as string[] };
    for (const name of files) {
      const bytes = readFileSync(path.join(CORPUS!, name));
      const h = readPart10Header(bytes);
      if (!h || !h.transferSyntaxUid || !h.sopClassUid) {
        summary.notPart10.push(name);
        continue;
      }
      const ds = datasetBytes(bytes);
      // The command carries the data set's own SOP Instance UID, as a modality does (one corpus
      // file's File Meta disagrees with its data set). Read with dicom-parser, an independent parser.
      const sopInstanceUid = String(dicomParser.parseDicom(bytes, { untilTag: 'x00080018' }).string('x00080018') ?? h.sopInstanceUid);
      const scu = await RawScu.connect(gw.port);
      try {
        scu.write(associateRq({ callingAe: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: h.sopClassUid, transferSyntaxes: [h.transferSyntaxUid] }] }));
        const ac = await scu.next();
        expect(ac?.type, `${name}: association`).toBe(PduType.AssociateAc);
        scu.sendStore({ contextId: 1, sopClassUid: h.sopClassUid, sopInstanceUid, dataset: ds });
        const rsp = await scu.response(30_000);
        if (TRUNCATED.has(name)) {
          expect(rsp?.status, `${name} is truncated`).toBe(Status.CannotUnderstandTruncated.code);
          summary.truncatedRefused++;
          continue;
        }
        if (rsp?.status !== Status.Success.code) {
          summary.refused.push(`${name}: 0x${rsp?.status.toString(16)} ${rsp?.comment ?? ''}`);
          continue;
        }
      } finally {
        scu.close();
      }
      const stored = storedByUid().get(`${sopInstanceUid}|${h.transferSyntaxUid}`);
      expect(stored, `${name} stored`).toBeDefined();
      expect(stored!.equals(ds), `${name}: stored data set equals the file's`).toBe(true);
      summary.stored++;
    }
    console.log(`corpus via raw SCU: ${JSON.stringify(summary)}`);
    expect(summary.refused, 'no well-formed corpus file is refused').toEqual([]);
    expect(summary.truncatedRefused).toBe(TRUNCATED.size);
  });
});
