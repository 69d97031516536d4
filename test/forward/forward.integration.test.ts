import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { PduType } from '../../src/dicom/pdu.js';
import { Status } from '../../src/dicom/status.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { ctElements, ctFile, encodeDataset, ExplicitLE, part10, testUid, TS_UID, writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * Modality (DCMTK storescu) → gateway → central PACS (DCMTK storescp, bit-preserving), all real
 * processes on loopback. Fast retries so the failure cases run in seconds.
 */
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 10 };

const dcmFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.dcm'));

type Storescp = Awaited<ReturnType<typeof startStorescp>>;

/**
 * A gateway forwarding to one storescp "PACS" in a fresh temp dir. With `pacsUp: false` the PACS
 * port is reserved but nothing listens until `startPacs()`.
 */
async function scenario(opts: { pacsUp: boolean; storescp?: { fork?: boolean; promiscuous?: boolean }; associations?: number; receive?: Record<string, unknown> }) {
  const tmp = tempDir();
  const pacsDir = path.join(tmp.dir, 'pacs');
  mkdirSync(pacsDir);
  let pacs: Storescp | undefined;
  const startPacs = async (port?: number): Promise<Storescp> => {
    pacs = await startStorescp(pacsDir, 'PACS', { ...opts.storescp, ...(port ? { port } : {}) });
    return pacs;
  };
  const pacsPort = opts.pacsUp ? (await startPacs()).port : await freePort();
  const forward = { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none', ...(opts.associations ? { associations: opts.associations } : {}) };
  const gw = await startGateway({ dir: tmp.dir, ...(opts.receive ? { receive: opts.receive } : {}), config: { forward: [forward], forwarding: FAST } });
  return {
    tmp,
    pacsDir,
    gw,
    pacs: () => pacs,
    startPacs: () => startPacs(pacsPort),
    done: async () => {
      await gw.stop();
      await pacs?.stop();
      tmp.cleanup();
    },
  };
}


/**
 * Wait until the destination has confirmed everything it will get. storescp (+B) creates a
 * file when reception starts, so a file count alone can be reached before the last file is
 * complete; its C-STORE-RSP comes only after the file is written.
 */
async function settled(configFile: string, name = 'pacs'): Promise<void> {
  await waitFor(async () => (await status(configFile)).destinations.find((d) => d.name === name)?.pending === 0 || undefined, { what: `${name}: nothing pending`, timeoutMs: 30_000 });
}

async function status(configFile: string) {
  const r = await run(process.execPath, [CLI, 'status', '--config', configFile, '--json']);
  return JSON.parse(r.stdout) as { destinations: { name: string; pending: number; deadLetter: number; state?: string; sent?: number }[] };
}

describe('forward: modality → gateway → PACS', () => {
  it('delivers every object byte for byte (data set equal to what the gateway received)', async () => {
    const { tmp, pacsDir, gw, done } = await scenario({ pacsUp: true, storescp: { fork: true } });
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
      await settled(gw.configFile);
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
      // Delivered objects leave the spool (spool.keepForwardedHours: 0); their files go once the
      // index deletion is durable (within a second).
      await waitFor(async () => (await status(gw.configFile)).destinations[0]!.pending === 0 || undefined, { what: 'an empty queue' });
      await waitFor(() => dcmFiles(path.join(gw.spoolDir, 'objects')).length === 0 || undefined, { what: 'the spool files to be deleted' });
    } finally {
      await done();
    }
  });

  it('PACS down when the study arrives, up a few seconds later: all delivered, in order', async () => {
    // One association, so the arrival order at the PACS is the queue order.
    const { tmp, pacsDir, gw, startPacs, done } = await scenario({ pacsUp: false, associations: 1 });
    try {
      const study = writeStudy(tmp.dir, 20);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(20);
      const down = await waitFor(async () => {
        const d = (await status(gw.configFile)).destinations[0]!;
        return d.state === 'down' || d.state === 'backoff' ? d : undefined;
      }, { what: 'the destination to be reported down' });
      expect(down.pending).toBe(20);
      await gw.waitForLog((l) => l.msg === 'destination unreachable, will retry' && /CONNECT_FAILED/.test(String(l.reason)));
      await new Promise((r) => setTimeout(r, 2000));
      await startPacs();
      await waitFor(() => dcmFiles(pacsDir).length === 20 || undefined, { what: 'all 20 at the PACS', timeoutMs: 30_000 });
      await settled(gw.configFile);
      // storescp writes each object as it arrives (one association): file times give the order.
      const order = dcmFiles(pacsDir)
        .map((n) => ({ n, t: statSync(path.join(pacsDir, n), { bigint: true }).mtimeNs }))
        .sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0))
        .map(({ n }) => readPart10Header(readFileSync(path.join(pacsDir, n)))!.sopInstanceUid);
      expect(order).toEqual(study.map((s) => s.uid));
      const after = (await status(gw.configFile)).destinations[0]!;
      expect(after).toMatchObject({ pending: 0, deadLetter: 0 });
      expect(after.state).toBe('up');
    } finally {
      await done();
    }
  });

  it('a PACS that refuses one object permanently: it is dead-lettered with the reason, the rest flow', async () => {
    // Not promiscuous: storescp refuses SOP classes it does not know.
    const { tmp, pacsDir, gw, done } = await scenario({ pacsUp: true, storescp: { fork: true, promiscuous: false }, receive: { unknownSopClasses: 'accept' } });
    try {
      const privateClass = '1.2.826.0.1.3680043.9.9999.1';
      const odd = testUid();
      const oddFile = path.join(tmp.dir, 'private.dcm');
      writeFileSync(oddFile, part10({ sopClassUid: privateClass, sopInstanceUid: odd, ts: TS_UID.explicit, dataset: encodeDataset(ctElements({ sopInstanceUid: odd, sopClassUid: privateClass }), ExplicitLE) }));
      const before = writeStudy(tmp.dir, 3);
      expect((await storescu({ port: gw.port, files: [before[0]!.file, before[1]!.file] })).acked).toHaveLength(2);
      // storescu will not propose a SOP class it does not know: a modality with a private class is played by the raw SCU.
      const scu = await RawScu.connect(gw.port);
      try {
        scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: privateClass, transferSyntaxes: [TS_UID.explicit] }] }));
        expect((await scu.next())?.type).toBe(PduType.AssociateAc);
        scu.sendStore({ contextId: 1, sopClassUid: privateClass, sopInstanceUid: odd, dataset: datasetBytes(oddFile) });
        expect((await scu.response())?.status).toBe(Status.Success.code);
      } finally {
        scu.close();
      }
      expect((await storescu({ port: gw.port, files: [before[2]!.file] })).acked).toHaveLength(1);
      await waitFor(() => dcmFiles(pacsDir).length === 3 || undefined, { what: 'the 3 good objects at the PACS' });
      await settled(gw.configFile);
      const dl = await waitFor(async () => {
        const r = await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', gw.configFile, '--json']);
        const list = JSON.parse(r.stdout || '[]') as { sopInstanceUid: string; reason: string; destination: string }[];
        return list.length ? list : undefined;
      }, { what: 'a dead letter' });
      expect(dl).toHaveLength(1);
      expect(dl[0]).toMatchObject({ sopInstanceUid: odd, destination: 'pacs' });
      expect(dl[0]!.reason).toContain(privateClass);
      await gw.waitForLog((l) => l.msg.startsWith('object dead-lettered') && l.sopInstanceUid === odd);
      expect((await status(gw.configFile)).destinations[0]).toMatchObject({ pending: 0, deadLetter: 1 });
      // retry puts it back; the PACS refuses it again.
      const retried = await run(process.execPath, [CLI, 'dead-letter', 'retry', '--config', gw.configFile, '--destination', 'pacs']);
      expect(retried.stdout).toContain('1 object(s) queued again for pacs');
      await gw.waitForLog((l) => l.msg.startsWith('object dead-lettered') && l.sopInstanceUid === odd && gw.logs.filter((x) => x.msg.startsWith('object dead-lettered')).length >= 2);
      // purge needs --yes, is logged, and the object leaves the spool.
      const refused = await run(process.execPath, [CLI, 'dead-letter', 'purge', '--config', gw.configFile, '--destination', 'pacs']);
      expect(refused.code).toBe(2);
      const purged = await run(process.execPath, [CLI, 'dead-letter', 'purge', '--config', gw.configFile, '--destination', 'pacs', '--yes']);
      expect(purged.stdout).toContain('1 dead letter(s) purged for pacs');
      await gw.waitForLog((l) => l.msg.startsWith('dead letters purged') && l.purged === 1);
      expect((await status(gw.configFile)).destinations[0]).toMatchObject({ pending: 0, deadLetter: 0 });
      await waitFor(() => dcmFiles(path.join(gw.spoolDir, 'objects')).length === 0 || undefined, { what: 'the spool files to be deleted' });
    } finally {
      await done();
    }
  });

  it('two destinations, one down: the other receives everything, the down one keeps its queue', async () => {
    const tmp = tempDir();
    const pacsDir = path.join(tmp.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacs = await startStorescp(pacsDir, 'PACS', { fork: true });
    const deadPort = await freePort();
    const gw = await startGateway({
      dir: tmp.dir,
      config: {
        forward: [
          { name: 'archive', aeTitle: 'ARCHIVE', host: '127.0.0.1', port: deadPort, compression: 'none' },
          { name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' },
        ],
        forwarding: FAST,
      },
    });
    try {
      const study = writeStudy(tmp.dir, 40);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(40);
      await waitFor(() => dcmFiles(pacsDir).length === 40 || undefined, { what: 'all 40 at the live PACS' });
      await settled(gw.configFile);
      const s = await status(gw.configFile);
      expect(s.destinations.find((d) => d.name === 'pacs')).toMatchObject({ pending: 0, sent: 40 });
      expect(s.destinations.find((d) => d.name === 'archive')).toMatchObject({ pending: 40 });
      expect(['down', 'backoff']).toContain(s.destinations.find((d) => d.name === 'archive')!.state);
      // Still owed to the archive, so still in the spool.
      expect(dcmFiles(path.join(gw.spoolDir, 'objects'))).toHaveLength(40);
    } finally {
      await gw.stop();
      await pacs.stop();
      tmp.cleanup();
    }
  });

  it('a spool file damaged on disk is never completed at the PACS: aborted before its last fragment and dead-lettered', async () => {
    const { tmp, pacsDir, gw, startPacs, done } = await scenario({ pacsUp: false, associations: 1 });
    try {
      const study = writeStudy(tmp.dir, 3, { rows: 256, cols: 256 });
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(3);
      // Bit rot in the middle object's pixel data while the PACS is down.
      const stored = await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === study[1]!.uid);
      const file = path.join(gw.spoolDir, 'objects', `${stored.id as string}.dcm`);
      const bytes = readFileSync(file);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 100) ^ 0x10, bytes.length - 100);
      writeFileSync(file, bytes);
      await startPacs();
      await waitFor(() => dcmFiles(pacsDir).length === 2 || undefined, { what: 'the two intact objects at the PACS' });
      await settled(gw.configFile);
      await gw.waitForLog((l) => l.msg.startsWith('spooled object is corrupt') && l.sopInstanceUid === study[1]!.uid && /^corrupt: /.test(String(l.reason)));
      const uids = dcmFiles(pacsDir).map((n) => readPart10Header(readFileSync(path.join(pacsDir, n)))!.sopInstanceUid);
      expect(uids.sort()).toEqual([study[0]!.uid, study[2]!.uid].sort());
    } finally {
      await done();
    }
  });

  it('a destination that refuses the association permanently (unknown calling AE): down, with the reason; objects dead-lettered for retry', async () => {
    const tmp = tempDir();
    const pacsTmp = tempDir();
    // Another gateway plays a PACS that only knows the calling AE "SOMEONE_ELSE".
    const pacs = await startGateway({ dir: pacsTmp.dir, receive: { aeTitle: 'PACS', callers: [{ aeTitle: 'SOMEONE_ELSE' }] } });
    const gw = await startGateway({ dir: tmp.dir, config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }], forwarding: FAST } });
    try {
      const study = writeStudy(tmp.dir, 5);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(5);
      await gw.waitForLog((l) => l.msg.startsWith('destination refuses the association permanently') && /reason 3/.test(String(l.reason)));
      await pacs.waitForLog((l) => l.msg.includes('association rejected') && l.reason === 3);
      const s = await waitFor(async () => {
        const d = (await status(gw.configFile)).destinations[0]!;
        return d.deadLetter === 5 ? d : undefined;
      }, { what: 'all 5 dead-lettered' });
      expect(['backoff', 'down']).toContain(s.state);
      expect(s.pending).toBe(0);
      // The dead letters name their study, and a study's dead letters go back in one command.
      const list = JSON.parse((await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', gw.configFile, '--json'])).stdout) as { studyInstanceUid?: string }[];
      expect(list.map((d) => d.studyInstanceUid)).toEqual(study.map((x) => x.studyUid));
      const byStudy = await run(process.execPath, [CLI, 'dead-letter', 'retry', '--config', gw.configFile, '--destination', 'pacs', '--study', study[0]!.studyUid]);
      expect(byStudy.stdout, byStudy.stderr).toContain('5 object(s) queued again for pacs');
    } finally {
      await gw.stop();
      await pacs.stop();
      tmp.cleanup();
      pacsTmp.cleanup();
    }
  });
});
