import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_NESTING } from '../../src/dicom/dataset-walker.js';
import { PduType } from '../../src/dicom/pdu.js';
import { controlGet } from '../../src/health/control-server.js';
import { Status } from '../../src/dicom/status.js';
import { echoscu, storescu } from '../helpers/dcmtk.js';
import { CT_IMAGE_STORAGE, ctElements, encodeDataset, ExplicitLE, testUid, TS_UID, writeStudy } from '../helpers/dicom-builder.js';
import { type GatewayProcess, startGateway, tempDir } from '../helpers/processes.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';

/**
 * Data sets built to hurt the receiver, sent by a peer with a real association: the gateway
 * answers each with its specific status, stores nothing of it, keeps answering others while it
 * arrives, and serves a real storescu afterwards.
 */
describe('receive: hostile data sets', () => {
  const tmp = tempDir();
  let gw: GatewayProcess;

  /** Small enough that a deflate bomb can be made in the test, large enough for any test object. */
  const MAX_OBJECT = 64 * 1024 * 1024;

  beforeAll(async () => {
    gw = await startGateway({ dir: tmp.dir, receive: { maxObjectBytes: MAX_OBJECT } });
  });
  afterAll(async () => {
    await gw?.stop();
    tmp.cleanup();
  });

  /** A CT data set followed by `pairs` nested undefined-length sequences (each with one item). */
  const nested = (uid: string, pairs: number) => {
    const head = (tag: number, vr: string, length: number) => {
      const b = Buffer.alloc(vr === 'SQ' ? 12 : 8);
      b.writeUInt16LE(tag >>> 16, 0);
      b.writeUInt16LE(tag & 0xffff, 2);
      if (vr === 'SQ') {
        b.write('SQ', 4, 'latin1');
        b.writeUInt32LE(length, 8);
      } else b.writeUInt32LE(length, 4);
      return b;
    };
    const open = Buffer.concat([head(0x0040a730, 'SQ', 0xffffffff), head(0xfffee000, '', 0xffffffff)]);
    const close = Buffer.concat([head(0xfffee00d, '', 0), head(0xfffee0dd, '', 0)]);
    const ct = encodeDataset(ctElements({ sopInstanceUid: uid, rows: 4, cols: 4 }), ExplicitLE);
    return Buffer.concat([ct, ...Array<Buffer>(pairs).fill(open), ...Array<Buffer>(pairs).fill(close)]);
  };

  it(`refuses sequences nested deeper than ${MAX_NESTING} levels with 0xC005 (several MB of them), answers C-ECHO meanwhile, stores nothing of it`, async () => {
    const scu = await RawScu.connect(gw.port);
    try {
      scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] }] }));
      expect((await scu.next())?.type).toBe(PduType.AssociateAc);
      const uid = testUid();
      // 300 000 levels, 5.4 MB: a walk that looked up the stack per element would take hours.
      const bomb = nested(uid, 150_000);
      expect(bomb.length).toBeGreaterThan(5_000_000);
      const echoes = Promise.all([echoscu(gw.port), echoscu(gw.port)]);
      scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: bomb });
      const rsp = await scu.response(60_000);
      expect(rsp?.status).toBe(Status.CannotUnderstandTooDeep.code);
      for (const e of await echoes) expect(e.code).toBe(0);
      await gw.waitForLog((l) => l.sopInstanceUid === uid && l.error === 'DATASET_TOO_DEEP');
      // Just within the limit is an ordinary object, on the same association.
      const fine = testUid();
      scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: fine, dataset: nested(fine, MAX_NESTING / 2) });
      expect((await scu.response())?.status).toBe(Status.Success.code);
    } finally {
      scu.close();
    }
    const study = writeStudy(tmp.dir, 3);
    expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(3);
    const s = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { spool: { objects: number } };
    expect(s.spool.objects, 'the one within the limit and the study; nothing of the refused one').toBe(4);
  });

  it('refuses a deflate bomb (300 KB that inflate to 300 MB) with 0xA700 once it inflates past receive.maxObjectBytes, stores nothing of it', async () => {
    const scu = await RawScu.connect(gw.port);
    const before = ((await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { spool: { objects: number } }).spool.objects;
    try {
      scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.deflate] }] }));
      expect((await scu.next())?.type).toBe(PduType.AssociateAc);
      const uid = testUid();
      const ct = encodeDataset(ctElements({ sopInstanceUid: uid, rows: 4, cols: 4 }), ExplicitLE);
      // A private OB element of 300 MB of zeros after the image: a valid data set, only too big.
      const ob = Buffer.alloc(12);
      ob.writeUInt16LE(0x0009, 0);
      ob.writeUInt16LE(0x1010, 2);
      ob.write('OB', 4, 'latin1');
      ob.writeUInt32LE(300_000_000, 8);
      const bomb = deflateRawSync(Buffer.concat([ct, ob, Buffer.alloc(300_000_000)]));
      expect(bomb.length).toBeLessThan(MAX_OBJECT / 100);
      scu.sendStore({ contextId: 1, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: uid, dataset: bomb });
      expect((await scu.response(60_000))?.status).toBe(Status.OutOfResources.code);
      await gw.waitForLog((l) => l.sopInstanceUid === uid && l.error === 'DEFLATE_TOO_LARGE');
      expect((await echoscu(gw.port)).code).toBe(0);
    } finally {
      scu.close();
    }
    const s = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { spool: { objects: number } };
    expect(s.spool.objects).toBe(before);
  });
});
