import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/dicom/command.js';
import { PduType } from '../../src/dicom/pdu.js';
import { Status } from '../../src/dicom/status.js';
import { Tag } from '../../src/dicom/tags.js';
import { CT_IMAGE_STORAGE, ctElements, encodeDataset, ExplicitLE, testUid, TS_UID } from '../helpers/dicom-builder.js';
import { pDataPdu, pdv } from '../helpers/pdu-builder.js';
import { type GatewayProcess, startGateway, tempDir } from '../helpers/processes.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';

/**
 * Regressions for what test/faults/fuzz.integration.test.ts found: C-STORE-RQs whose command
 * set was broken (no Message ID or Priority, a group length that lies, a US element of the
 * wrong size) were answered Success and stored, and a PDV with reserved message control header
 * bits set was read as if they were 0.
 */
describe('receive: malformed command sets and PDV headers', () => {
  const tmp = tempDir();
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await startGateway({ dir: tmp.dir });
  });
  afterAll(async () => {
    await gw?.stop();
    tmp.cleanup();
  });

  const associate = async () => {
    const scu = await RawScu.connect(gw.port);
    scu.write(associateRq({ contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_UID.explicit] }, { id: 3, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_UID.implicit] }] }));
    expect((await scu.next())?.type).toBe(PduType.AssociateAc);
    return scu;
  };

  /** A C-STORE-RQ command set, with `edit` applied to its encoded bytes. */
  const command = (uid: string, opts: { drop?: number; edit?: (b: Buffer) => Buffer } = {}) => {
    const values = [
      { tag: Tag.AffectedSopClassUid, vr: 'UI' as const, value: CT_IMAGE_STORAGE },
      { tag: Tag.CommandField, vr: 'US' as const, value: 0x0001 },
      { tag: Tag.MessageId, vr: 'US' as const, value: 9 },
      { tag: Tag.Priority, vr: 'US' as const, value: 0 },
      { tag: Tag.CommandDataSetType, vr: 'US' as const, value: 0 },
      { tag: Tag.AffectedSopInstanceUid, vr: 'UI' as const, value: uid },
    ].filter((v) => v.tag !== opts.drop);
    const b = encodeCommand(values);
    return opts.edit ? opts.edit(b) : b;
  };
  const send = (scu: RawScu, cmd: Buffer, uid: string) => {
    scu.write(pDataPdu(pdv(1, 0x03, cmd)));
    scu.write(pDataPdu(pdv(1, 0x02, encodeDataset(ctElements({ sopInstanceUid: uid }), ExplicitLE))));
  };

  it('answers 0x0120 to a C-STORE-RQ without Message ID or Priority, and stays in step', async () => {
    const scu = await associate();
    try {
      for (const drop of [Tag.MessageId, Tag.Priority]) {
        const uid = testUid();
        send(scu, command(uid, { drop }), uid);
        expect((await scu.response())?.status).toBe(Status.MissingAttribute.code);
      }
      const uid = testUid();
      send(scu, command(uid), uid);
      expect((await scu.response())?.status).toBe(Status.Success.code);
    } finally {
      scu.close();
    }
  });

  it('answers 0x0212 to a lying Command Group Length or a US element of 4 bytes, storing nothing', async () => {
    const scu = await associate();
    try {
      const lie = testUid();
      send(scu, command(lie, { edit: (b) => (b.writeUInt32LE(b.readUInt32LE(8) + 2, 8), b) }), lie);
      const r1 = await scu.response();
      expect(r1?.status).toBe(Status.MistypedArgument.code);
      expect(r1?.comment).toMatch(/group length/);
      const wide = testUid();
      // Priority (0000,0700) as 4 bytes, the group length kept true.
      const widen = (b: Buffer) => {
        const at = b.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x07, 0x02, 0x00, 0x00, 0x00]));
        const out = Buffer.concat([b.subarray(0, at + 4), Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), b.subarray(at + 10)]);
        out.writeUInt32LE(out.length - 12, 8);
        return out;
      };
      send(scu, command(wide, { edit: widen }), wide);
      expect((await scu.response())?.status).toBe(Status.MistypedArgument.code);
      await gw.waitForLog((l) => l.msg.startsWith('C-STORE refused') && l.sopInstanceUid === wide);
      expect(gw.logs.some((l) => l.msg === 'stored' && (l.sopInstanceUid === lie || l.sopInstanceUid === wide))).toBe(false);
    } finally {
      scu.close();
    }
  });

  it('aborts on a PDV whose message control header has reserved bits set', async () => {
    const scu = await associate();
    const echo = encodeCommand([
      { tag: Tag.AffectedSopClassUid, vr: 'UI', value: '1.2.840.10008.1.1' },
      { tag: Tag.CommandField, vr: 'US', value: 0x0030 },
      { tag: Tag.MessageId, vr: 'US', value: 1 },
      { tag: Tag.CommandDataSetType, vr: 'US', value: 0x0101 },
    ]);
    scu.write(pDataPdu(pdv(3, 0x03 | 0x80, echo)));
    expect((await scu.next())?.type).toBe(PduType.Abort);
    await scu.closedPromise;
    await gw.waitForLog((l) => l.msg.includes('reserved bits set'));
  });
});
