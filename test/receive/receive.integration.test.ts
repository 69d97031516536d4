import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Status } from '../../src/dicom/status.js';
import { PduType, Reject } from '../../src/dicom/pdu.js';
import { datasetBytes, echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import { CT_IMAGE_STORAGE, ctElements, ctFile, encodeDataset, ExplicitLE, part10, testUid, TS_UID } from '../helpers/dicom-builder.js';
import { CLI, type GatewayProcess, run, startGateway, tempDir } from '../helpers/processes.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * The real gateway process against DCMTK as the modality (and storescp as the reference of
 * what DCMTK puts on the wire). Faults DCMTK will not make on purpose use the raw SCU.
 */
describe('receive: gateway process with DCMTK as the modality', () => {
  const tmp = tempDir();
  let gw: GatewayProcess;
  const files: Record<string, { file: string; uid: string }> = {};

  beforeAll(async () => {
    gw = await startGateway({
      dir: tmp.dir,
      receive: { callers: [{ aeTitle: 'STORESCU' }, { aeTitle: 'ECHOSCU' }, { aeTitle: 'RAWSCU', host: '127.0.0.1' }], maxAssociations: 4, idleTimeoutSeconds: 2 },
    });
    for (const [name, ts] of Object.entries({ explicit: TS_UID.explicit, implicit: TS_UID.implicit, bigEndian: TS_UID.bigEndian, deflate: TS_UID.deflate })) {
      const f = ctFile({ ts });
      const file = path.join(tmp.dir, `${name}.dcm`);
      writeFileSync(file, f.bytes);
      files[name] = { file, uid: f.sopInstanceUid };
    }
    // Encapsulated pixel data with a JPEG-LS transfer syntax: stored as received, never decoded.
    const uid = testUid();
    const ds = encodeDataset(ctElements({ sopInstanceUid: uid, fragments: [Buffer.from('fake-jls-frame-1'), Buffer.from('frame2')] }), ExplicitLE);
    const jls = path.join(tmp.dir, 'jpegls.dcm');
    writeFileSync(jls, part10({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, ts: '1.2.840.10008.1.2.4.80', dataset: ds }));
    files.jpegls = { file: jls, uid };
  });

  afterAll(async () => {
    await gw?.stop();
    tmp.cleanup();
  });

  const storedFile = async (uid: string): Promise<string> => {
    const line = await gw.waitForLog((l) => l.msg === 'stored' && l.sopInstanceUid === uid);
    return path.join(gw.spoolDir, 'objects', `${line.id as string}.dcm`);
  };

  it('answers C-ECHO', async () => {
    const r = await echoscu(gw.port);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toContain('Received Echo Response (Success)');
  });

  it('stores every transfer syntax byte for byte as DCMTK sent it (storescp +B is the reference)', async () => {
    const ref = tempDir();
    const scp = await startStorescp(ref.dir);
    try {
      // storescu proposes a compressed file's own syntax only when told to (-xd deflate, -xt JPEG-LS).
      const batches: [string[], string[]][] = [
        [[files.explicit!.file, files.implicit!.file, files.bigEndian!.file], []],
        [[files.deflate!.file], ['-xd']],
        [[files.jpegls!.file], ['-xt']],
      ];
      for (const [batch, extraArgs] of batches) {
        const toGateway = await storescu({ port: gw.port, files: batch, extraArgs });
        expect(toGateway.code, toGateway.stdout.slice(-2500) + toGateway.stderr).toBe(0);
        expect(toGateway.acked).toEqual(batch.map((_, i) => i + 1));
        const toScp = await storescu({ port: scp.port, files: batch, calledAe: 'STORESCP', extraArgs });
        expect(toScp.code).toBe(0);
      }
      for (const f of Object.values(files)) {
        const ours = datasetBytes(await storedFile(f.uid));
        const refFile = readdirSync(ref.dir).find((n) => n.includes(f.uid))!;
        expect(refFile, `storescp stored ${f.uid}`).toBeDefined();
        const theirs = datasetBytes(path.join(ref.dir, refFile));
        expect(ours.equals(theirs), `data set of ${path.basename(f.file)} is byte-identical`).toBe(true);
      }
      // What DCMTK sends of these fixtures equals the source files: private tags, DS "5.000000",
      // ISO_IR 100, the undefined-length sequence, deflated and encapsulated bytes all survive.
      for (const name of ['explicit', 'bigEndian', 'jpegls']) {
        const stored = datasetBytes(await storedFile(files[name]!.uid));
        expect(stored.equals(datasetBytes(files[name]!.file)), `${name} equals its source file`).toBe(true);
      }
      // storescu re-deflates with its own zlib settings: the deflated bytes differ, the content not.
      const deflated = datasetBytes(await storedFile(files.deflate!.uid));
      expect(inflateRawSync(deflated).equals(inflateRawSync(datasetBytes(files.deflate!.file)))).toBe(true);
      const explicit = datasetBytes(await storedFile(files.explicit!.uid));
      expect(explicit.includes(Buffer.from('5.000000'))).toBe(true);
      expect(explicit.includes(Buffer.from('PACS_EDGE TEST'))).toBe(true);
    } finally {
      await scp.stop();
      ref.cleanup();
    }
  });

  it('builds a File Meta that names the object, its syntax and the calling AE', async () => {
    const stored = readSpoolFile(await storedFile(files.deflate!.uid));
    const meta = stored.subarray(0, 400).toString('latin1');
    expect(meta.slice(128, 132)).toBe('DICM');
    expect(meta).toContain(TS_UID.deflate);
    expect(meta).toContain(files.deflate!.uid);
    expect(meta).toContain('STORESCU');
  });

  it('rejects a wrong called AE title with A-ASSOCIATE-RJ reason 7, and logs why', async () => {
    const r = await echoscu(gw.port, { calledAe: 'NOT_ME' });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Called AE Title Not Recognized/i);
    await gw.waitForLog((l) => l.msg.includes('association rejected') && l.calledAe === 'NOT_ME' && l.reason === 7);
  });

  it('rejects an unknown calling AE title with reason 3, and a caller from the wrong host', async () => {
    const r = await echoscu(gw.port, { callingAe: 'INTRUDER' });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Calling AE Title Not Recognized/i);
    await gw.waitForLog((l) => l.msg.includes('association rejected') && l.callingAe === 'INTRUDER' && l.reason === 3);
    // RAWSCU is allowed only from 127.0.0.1: from 127.0.0.2 it is unknown. The gateway listens on
    // 127.0.0.1 only, so the caller dials that address from 127.0.0.2 (all of 127/8 is loopback
    // on Linux): the gateway sees the wrong host as the peer's address.
    const scu = await RawScu.connect(gw.port, '127.0.0.1', '127.0.0.2');
    expect(scu.socket.localAddress, 'the caller really is 127.0.0.2').toBe('127.0.0.2');
    scu.write(associateRq({ callingAe: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_UID.implicit] }] }));
    const pdu = await scu.next();
    expect(pdu?.type).toBe(PduType.AssociateRj);
    expect([...pdu!.body.subarray(1, 4)]).toEqual([Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CallingAeNotRecognized]);
    scu.close();
    await gw.waitForLog((l) => l.msg.includes('association rejected') && l.callingAe === 'RAWSCU' && l.reason === 3 && String(l.remote).includes('127.0.0.2'));
    // The same caller from its own host is accepted: it is the host that was refused, not the title.
    const ok = await RawScu.connect(gw.port, '127.0.0.1', '127.0.0.1');
    ok.write(associateRq({ callingAe: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_UID.implicit] }] }));
    expect((await ok.next())?.type).toBe(PduType.AssociateAc);
    ok.close();
  });

  it('answers 0xC001 to a data set cut short, logs why, stores nothing, keeps the association', async () => {
    const uid = testUid();
    const full = encodeDataset(ctElements({ sopInstanceUid: uid, rows: 64, cols: 64 }), ExplicitLE);
    const scu = await RawScu.connect(gw.port);
    scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] }] }));
    expect((await scu.next())?.type).toBe(PduType.AssociateAc);
    scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: full.subarray(0, full.length - 1000) });
    const rsp = await scu.response();
    expect(rsp?.status).toBe(Status.CannotUnderstandTruncated.code);
    expect(rsp?.comment).toMatch(/ends inside an element/);
    await gw.waitForLog((l) => l.msg.startsWith('C-STORE refused') && l.sopInstanceUid === uid && l.status === '0xC001');
    // Same association, a good object: the gateway is still in step.
    const uid2 = testUid();
    scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid2, dataset: encodeDataset(ctElements({ sopInstanceUid: uid2 }), ExplicitLE), messageId: 2 });
    expect((await scu.response())?.status).toBe(Status.Success.code);
    scu.close();
    const status = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json'])).stdout);
    expect(status.receive.failuresByStatus['0xC001']).toBe(1);
  });

  it('keeps undefined-length sequences, odd private values and fragments exactly as sent', async () => {
    const uid = testUid();
    const ds = Buffer.concat([
      encodeDataset(ctElements({ sopInstanceUid: uid, undefinedLengthSequence: true, fragments: [Buffer.from('frame-one'), Buffer.from('f2')] }), ExplicitLE),
    ]);
    const scu = await RawScu.connect(gw.port);
    try {
      scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: ['1.2.840.10008.1.2.4.80'] }] }));
      expect((await scu.next())?.type).toBe(PduType.AssociateAc);
      scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: ds });
      expect((await scu.response())?.status).toBe(Status.Success.code);
    } finally {
      scu.close();
    }
    expect(datasetBytes(await storedFile(uid)).equals(ds)).toBe(true);
  });

  it('answers 0xC002 to a malformed data set and 0xC003 to a UID that differs from the command', async () => {
    const scu = await RawScu.connect(gw.port);
    onTestFinished(() => scu.close());
    scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] }] }));
    expect((await scu.next())?.type).toBe(PduType.AssociateAc);
    const uid = testUid();
    // Three good elements, then one whose VR bytes are not a VR.
    const good = encodeDataset(ctElements({ sopInstanceUid: uid }).slice(0, 3), ExplicitLE);
    const garbage = Buffer.concat([good, Buffer.from([0x08, 0x00, 0x20, 0x00]), Buffer.from('??'), Buffer.from([0x04, 0x00]), Buffer.from('abcd')]);
    scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: garbage });
    expect((await scu.response())?.status).toBe(Status.CannotUnderstandMalformed.code);
    const other = testUid();
    scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: testUid(), dataset: encodeDataset(ctElements({ sopInstanceUid: other }), ExplicitLE), messageId: 2 });
    expect((await scu.response())?.status).toBe(Status.CannotUnderstandInstanceMismatch.code);
    scu.close();
  });

  it('refuses a C-STORE on the Verification context with 0x0122, without storing it', async () => {
    const scu = await RawScu.connect(gw.port);
    onTestFinished(() => scu.close());
    scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_UID.explicit] }] }));
    expect((await scu.next())?.type).toBe(PduType.AssociateAc);
    const uid = testUid();
    scu.sendStore({ contextId: 1, sopClassUid: '1.2.840.10008.1.1', sopInstanceUid: uid, dataset: encodeDataset(ctElements({ sopInstanceUid: uid, sopClassUid: '1.2.840.10008.1.1' }), ExplicitLE) });
    expect((await scu.response())?.status).toBe(Status.SopClassNotSupported.code);
  });

  it('answers garbage on the port with A-ABORT, logs it, and keeps serving', async () => {
    const scu = await RawScu.connect(gw.port);
    scu.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const pdu = await scu.next();
    expect(pdu?.type).toBe(PduType.Abort);
    await scu.closedPromise;
    await gw.waitForLog((l) => l.msg.startsWith('protocol error') && l.code === 'PDU_UNRECOGNIZED');
    expect((await echoscu(gw.port)).code).toBe(0);
  });

  it('rejects associations beyond receive.maxAssociations as transient (local limit exceeded)', async () => {
    const held: RawScu[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const s = await RawScu.connect(gw.port);
        s.write(associateRq({ contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_UID.implicit] }] }));
        expect((await s.next())?.type).toBe(PduType.AssociateAc);
        held.push(s);
      }
      const r = await echoscu(gw.port);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/Rejected Transient|Local Limit Exceeded/i);
      await gw.waitForLog((l) => l.msg.includes('receive.maxAssociations reached'));
    } finally {
      for (const s of held) s.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await echoscu(gw.port)).code).toBe(0);
  });

  it('aborts an association that stays silent past idleTimeoutSeconds, and drops its partial object', async () => {
    const scu = await RawScu.connect(gw.port);
    scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] }] }));
    expect((await scu.next())?.type).toBe(PduType.AssociateAc);
    const uid = testUid();
    const ds = encodeDataset(ctElements({ sopInstanceUid: uid }), ExplicitLE);
    scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: ds, last: false });
    const pdu = await scu.next(5000);
    expect(pdu?.type).toBe(PduType.Abort);
    await scu.closedPromise;
    await gw.waitForLog((l) => l.msg === 'association closed: idle timeout');
    await gw.waitForLog((l) => l.msg.includes('partial object discarded'));
    expect(readdirSync(path.join(gw.spoolDir, 'objects')).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('status --json reports what the running gateway holds', async () => {
    const r = await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.running).toBe(true);
    expect(s.spool.objects).toBeGreaterThanOrEqual(5);
    expect(Array.isArray(s.destinations)).toBe(true);
    const text = await run(process.execPath, [CLI, 'status', '--config', gw.configFile]);
    expect(text.stdout).toContain('running');
  });

  it('never writes patient data to its logs', () => {
    // Every fixture carries PatientName "Test^Fixture"; no log line may contain it.
    expect(gw.output()).not.toContain('Test^Fixture');
    expect(gw.output()).not.toContain('Fixture');
  });
});

describe('receive: out of space', () => {
  it('answers 0xA700 below spool.minFreeBytes, logs why, and keeps serving', async () => {
    const tmp = tempDir();
    const gw = await startGateway({ dir: tmp.dir, spool: { minFreeBytes: '1000TiB' } });
    try {
      const f = ctFile();
      const file = path.join(tmp.dir, 'a.dcm');
      writeFileSync(file, f.bytes);
      const r = await storescu({ port: gw.port, files: [file] });
      expect(r.statuses.get(1)).toBe(Status.OutOfResources.code);
      expect(r.acked).toEqual([]);
      await gw.waitForLog((l) => l.msg.startsWith('C-STORE refused') && l.status === '0xA700' && /below spool.minFreeBytes/.test(String(l.detail)));
      expect((await echoscu(gw.port)).code).toBe(0);
      expect(readdirSync(path.join(gw.spoolDir, 'objects'))).toEqual([]);
    } finally {
      await gw.stop();
      tmp.cleanup();
    }
  });
});

describe('receive: object size limit', () => {
  it('answers 0xA700 to a data set larger than receive.maxObjectBytes, stores nothing of it, and keeps serving', async () => {
    const tmp = tempDir();
    const gw = await startGateway({ dir: tmp.dir, receive: { maxObjectBytes: '20KiB' } });
    try {
      const big = path.join(tmp.dir, 'big.dcm');
      const small = path.join(tmp.dir, 'small.dcm');
      writeFileSync(big, ctFile({ rows: 128, cols: 128 }).bytes); // 32 KiB of pixels
      writeFileSync(small, ctFile({ rows: 32, cols: 32 }).bytes);
      // (storescu itself stops an association after an Out of Resources answer.)
      const r = await storescu({ port: gw.port, files: [big] });
      expect(r.statuses.get(1)).toBe(Status.OutOfResources.code);
      expect((await storescu({ port: gw.port, files: [small] })).acked).toEqual([1]);
      await gw.waitForLog((l) => l.msg.startsWith('C-STORE refused') && l.error === 'OBJECT_TOO_LARGE');
      expect(readdirSync(path.join(gw.spoolDir, 'objects'))).toHaveLength(1);
    } finally {
      await gw.stop();
      tmp.cleanup();
    }
  });
});
