import { describe, expect, it } from 'vitest';
import { PduReader } from '../../src/dicom/pdu-reader.js';
import {
  Abort,
  ContextResult,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodeReleaseRp,
  encodeReleaseRq,
  PduType,
  Reject,
} from '../../src/dicom/pdu.js';
import { encodePData } from '../../src/dicom/ul/pdv.js';
import { aeField, APP_CONTEXT, associateRqBody, associateRqPdu, parseItems, pduItem } from '../helpers/pdu-builder.js';
import { parseError } from '../helpers/expect-error.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';
const JPEG_LS = '1.2.840.10008.1.2.4.80';


describe('the hand-built A-ASSOCIATE-RQ follows PS3.8 §9.3.2', () => {
  it('has the fixed layout the decoder expects', () => {
    const p = associateRqPdu({ calledAe: 'PACS_EDGE', callingAe: 'CT01', contexts: [{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }] });
    expect(p[0]).toBe(0x01);
    expect(p[1]).toBe(0x00);
    expect(p.readUInt32BE(2)).toBe(p.length - 6);
    expect(p.readUInt16BE(6)).toBe(0x0001);
    expect(p.readUInt16BE(8)).toBe(0x0000);
    expect(p.toString('latin1', 10, 26)).toBe('PACS_EDGE       ');
    expect(p.toString('latin1', 26, 42)).toBe('CT01            ');
    expect(p.subarray(42, 74).every((b) => b === 0)).toBe(true);
    expect(parseItems(p.subarray(74)).map((i) => i.type)).toEqual([0x10, 0x20, 0x50]);
  });
});

describe('decodeAssociateRq', () => {
  const body = associateRqBody({
    calledAe: 'PACS_EDGE',
    callingAe: ' CT_SCANNER_01',
    contexts: [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_LS, EXPLICIT, IMPLICIT] },
      { id: 5, abstractSyntax: `${MR}\0`, transferSyntaxes: [`${EXPLICIT}\0`] },
    ],
    maxPduLength: 65536,
    implementationClassUid: '1.2.276.0.7230010.3.0.3.6.7',
    implementationVersionName: 'OFFIS_DCMTK_367',
  });
  const rq = decodeAssociateRq(body);

  it('reads protocol version, AE titles (trimmed) and keeps the raw 16-byte fields', () => {
    expect(rq.protocolVersion).toBe(1);
    expect(rq.calledAeTitle).toBe('PACS_EDGE');
    expect(rq.callingAeTitle).toBe('CT_SCANNER_01');
    expect(rq.calledAeRaw).toEqual(aeField('PACS_EDGE'));
    expect(rq.callingAeRaw.toString('latin1')).toBe(' CT_SCANNER_01  ');
    expect(rq.calledAeRaw.length).toBe(16);
    // The raw fields are copies, not views into the socket buffer.
    body[4] = 0x58;
    expect(rq.calledAeRaw[0]).toBe(0x50);
    body[4] = 0x50;
  });

  it('reads the application context and every presentation context in order', () => {
    expect(rq.applicationContext).toBe(APP_CONTEXT);
    expect(rq.contexts).toEqual([
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_LS, EXPLICIT, IMPLICIT] },
      // NUL padding (some SCUs pad UIDs to even length) is stripped.
      { id: 5, abstractSyntax: MR, transferSyntaxes: [EXPLICIT] },
    ]);
  });

  it('reads the user information sub-items', () => {
    expect(rq.maxPduLength).toBe(65536);
    expect(rq.implementationClassUid).toBe('1.2.276.0.7230010.3.0.3.6.7');
    expect(rq.implementationVersionName).toBe('OFFIS_DCMTK_367');
  });

  it('treats AE titles of all spaces or NULs as empty and strips trailing NULs', () => {
    const r = decodeAssociateRq(associateRqBody({ calledAe: Buffer.alloc(16, 0x20), callingAe: Buffer.from('AE\0\0\0\0\0\0\0\0\0\0\0\0\0\0', 'latin1') }));
    expect(r.calledAeTitle).toBe('');
    expect(r.callingAeTitle).toBe('AE');
  });

  it('ignores unknown and optional items (async window 0x53, role selection 0x54, unknown 0x99)', () => {
    const window = pduItem(0x53, Buffer.from([0, 1, 0, 1]));
    const role = pduItem(0x54, Buffer.concat([Buffer.from([0, CT.length]), Buffer.from(CT), Buffer.from([1, 0])]));
    const r = decodeAssociateRq(
      associateRqBody({
        contexts: [{ id: 7, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }],
        extraUserItems: [window, role],
        extraItems: [pduItem(0x99, 'whatever')],
      }),
    );
    expect(r.contexts).toEqual([{ id: 7, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }]);
    expect(r.maxPduLength).toBe(16384);
  });

  it('defaults: no user information → max length 0 (unlimited) and empty strings', () => {
    const r = decodeAssociateRq(associateRqBody({ noUserInformation: true, applicationContext: null }));
    expect(r.maxPduLength).toBe(0);
    expect(r.implementationClassUid).toBe('');
    expect(r.implementationVersionName).toBe('');
    expect(r.applicationContext).toBe('');
    expect(r.contexts).toEqual([]);
  });

  it('a max-length sub-item shorter than 4 bytes is ignored', () => {
    const r = decodeAssociateRq(associateRqBody({ maxPduLength: null, extraUserItems: [pduItem(0x51, Buffer.from([0, 1]))] }));
    expect(r.maxPduLength).toBe(0);
  });

  it('rejects a body shorter than the 68-byte fixed part', () => {
    expect(parseError(() => decodeAssociateRq(Buffer.alloc(67))).code).toBe('PDU_MALFORMED');
    expect(decodeAssociateRq(Buffer.alloc(68)).contexts).toEqual([]);
  });

  it('rejects an item that runs past the PDU', () => {
    const b = associateRqBody({ contexts: [{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }] });
    // Truncate inside the last (user information) item.
    expect(parseError(() => decodeAssociateRq(b.subarray(0, b.length - 2))).code).toBe('PDU_MALFORMED');
  });

  it('rejects a truncated item header', () => {
    const b = Buffer.concat([associateRqBody(), Buffer.from([0x99, 0x00])]);
    expect(parseError(() => decodeAssociateRq(b)).code).toBe('PDU_MALFORMED');
  });

  it('rejects a sub-item that runs past its presentation context item', () => {
    const bad = pduItem(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from([0x30, 0, 0, 50]), Buffer.from(CT)]));
    const b = Buffer.concat([associateRqBody({ noUserInformation: true }), bad]);
    expect(parseError(() => decodeAssociateRq(b)).code).toBe('PDU_MALFORMED');
  });

  it('rejects a presentation context item shorter than its 4-byte header', () => {
    const b = Buffer.concat([associateRqBody({ noUserInformation: true }), pduItem(0x20, Buffer.from([1, 0]))]);
    expect(parseError(() => decodeAssociateRq(b)).code).toBe('PDU_MALFORMED');
  });
});

describe('encodeAssociateAc (PS3.8 §9.3.3)', () => {
  const rq = decodeAssociateRq(
    associateRqBody({
      calledAe: '  PACS_EDGE',
      callingAe: 'MOD',
      contexts: [
        { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
        { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_LS] },
        { id: 5, abstractSyntax: '1.2.3.4.5', transferSyntaxes: [EXPLICIT] },
      ],
    }),
  );
  const ac = encodeAssociateAc({
    rq,
    contexts: [
      { id: 1, result: ContextResult.Acceptance, transferSyntax: IMPLICIT },
      { id: 3, result: ContextResult.Acceptance, transferSyntax: JPEG_LS },
      { id: 5, result: ContextResult.AbstractSyntaxNotSupported, transferSyntax: IMPLICIT },
    ],
    maxPduLength: 262144,
    implementationClassUid: '2.25.1234',
    implementationVersionName: 'PACS_EDGE_0_1',
  });

  it('has the A-ASSOCIATE-AC header and fixed fields, echoing the raw AE fields', () => {
    expect(ac[0]).toBe(PduType.AssociateAc);
    expect(ac[1]).toBe(0);
    expect(ac.readUInt32BE(2)).toBe(ac.length - 6);
    expect(ac.readUInt16BE(6)).toBe(0x0001);
    expect(ac.readUInt16BE(8)).toBe(0);
    // Echoed byte for byte, leading spaces included (PS3.8 §9.3.3: "shall be returned").
    expect(ac.subarray(10, 26)).toEqual(rq.calledAeRaw);
    expect(ac.toString('latin1', 10, 26)).toBe('  PACS_EDGE     ');
    expect(ac.subarray(26, 42)).toEqual(rq.callingAeRaw);
    expect(ac.subarray(42, 74).every((b) => b === 0)).toBe(true);
  });

  it('holds the application context, one 0x21 item per context, then user information', () => {
    const items = parseItems(ac.subarray(74));
    expect(items.map((i) => i.type)).toEqual([0x10, 0x21, 0x21, 0x21, 0x50]);
    expect(items[0]!.value.toString('latin1')).toBe(APP_CONTEXT);
    const pcs = items.filter((i) => i.type === 0x21).map((i) => {
      const sub = parseItems(i.value.subarray(4));
      expect(sub.map((s) => s.type)).toEqual([0x40]);
      expect(i.value[1]).toBe(0);
      expect(i.value[3]).toBe(0);
      return { id: i.value[0], result: i.value[2], ts: sub[0]!.value.toString('latin1') };
    });
    expect(pcs).toEqual([
      { id: 1, result: 0, ts: IMPLICIT },
      { id: 3, result: 0, ts: JPEG_LS },
      { id: 5, result: 3, ts: IMPLICIT },
    ]);
  });

  it('announces its maximum P-DATA length, implementation class UID and version name', () => {
    const user = parseItems(parseItems(ac.subarray(74)).find((i) => i.type === 0x50)!.value);
    expect(user.map((u) => u.type)).toEqual([0x51, 0x52, 0x55]);
    expect(user[0]!.value.length).toBe(4);
    expect(user[0]!.value.readUInt32BE(0)).toBe(262144);
    expect(user[1]!.value.toString('latin1')).toBe('2.25.1234');
    expect(user[2]!.value.toString('latin1')).toBe('PACS_EDGE_0_1');
  });

  it('echoes the requested application context name', () => {
    const other = decodeAssociateRq(associateRqBody({ applicationContext: '1.2.840.10008.3.1.1.1' }));
    const b = encodeAssociateAc({ rq: other, contexts: [], maxPduLength: 0, implementationClassUid: '1.2', implementationVersionName: 'X' });
    expect(parseItems(b.subarray(74))[0]!.value.toString('latin1')).toBe('1.2.840.10008.3.1.1.1');
    expect(parseItems(b.subarray(74)).map((i) => i.type)).toEqual([0x10, 0x50]);
  });
});

describe('A-ASSOCIATE-RJ, A-ABORT, A-RELEASE', () => {
  it('encodeAssociateRj writes type 3, length 4, reserved, result, source, reason', () => {
    expect([...encodeAssociateRj(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CalledAeNotRecognized)]).toEqual([
      0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x01, 0x07,
    ]);
    expect([...encodeAssociateRj(Reject.Result.Transient, Reject.Source.ServiceProviderPresentation, Reject.PresentationReason.LocalLimitExceeded)]).toEqual([
      0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x02, 0x03, 0x02,
    ]);
  });

  it('encodeAbort writes type 7, length 4, two reserved bytes, source, reason', () => {
    expect([...encodeAbort(Abort.Source.ServiceProvider, Abort.Reason.UnexpectedPdu)]).toEqual([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x02]);
    expect([...encodeAbort(Abort.Source.ServiceUser, Abort.Reason.NotSpecified)]).toEqual([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]);
  });

  it('release PDUs are type 5/6 with four reserved bytes', () => {
    expect([...encodeReleaseRq()]).toEqual([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    expect([...encodeReleaseRp()]).toEqual([0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
  });

  it('reject and abort code tables match PS3.8 Tables 9-21 and 9-26', () => {
    expect(Reject.UserReason).toEqual({ NoReasonGiven: 1, ApplicationContextNameNotSupported: 2, CallingAeNotRecognized: 3, CalledAeNotRecognized: 7 });
    expect(Reject.AcseReason.ProtocolVersionNotSupported).toBe(2);
    expect(Abort.Reason.InvalidPduParameterValue).toBe(6);
    expect(ContextResult.TransferSyntaxesNotSupported).toBe(4);
  });
});

describe('encodePData', () => {
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff));

  /** Check each PDU's framing and return { control, payload } per PDU. */
  function unpack(pdus: Buffer[], contextId: number): { control: number; payload: Buffer }[] {
    return pdus.map((p) => {
      expect(p[0]).toBe(0x04);
      expect(p[1]).toBe(0);
      expect(p.readUInt32BE(2)).toBe(p.length - 6);
      const itemLength = p.readUInt32BE(6);
      expect(itemLength).toBe(p.length - 10); // exactly one PDV per PDU
      expect(p[10]).toBe(contextId);
      return { control: p[11]!, payload: p.subarray(12) };
    });
  }

  for (const max of [16, 100, 1006, 4096, 16384]) {
    it(`fragments 1000 bytes to a peer maximum of ${max}`, () => {
      const pdus = encodePData(5, true, data, max);
      for (const p of pdus) {
        expect(p.length).toBeLessThanOrEqual(max + 6);
        expect(p.readUInt32BE(2)).toBeLessThanOrEqual(max);
      }
      const frags = unpack(pdus, 5);
      expect(frags.length).toBe(Math.ceil(data.length / (max - 6)));
      frags.forEach((f, i) => {
        const last = i === frags.length - 1;
        expect(f.control & 0x01, 'command bit').toBe(1);
        expect(f.control & 0x02, `last-fragment bit of fragment ${i}`).toBe(last ? 2 : 0);
        expect(f.control & 0xfc).toBe(0);
        if (!last) expect(f.payload.length).toBe(max - 6);
      });
      expect(Buffer.concat(frags.map((f) => f.payload))).toEqual(data);
    });
  }

  it('does not add an empty fragment when the data is an exact multiple of the fragment size', () => {
    const pdus = encodePData(1, false, data.subarray(0, 30), 16); // fragments of 10
    expect(pdus.length).toBe(3);
    expect(unpack(pdus, 1).map((f) => f.payload.length)).toEqual([10, 10, 10]);
    expect(encodePData(1, false, data.subarray(0, 31), 16).length).toBe(4);
  });

  it('data set fragments have the command bit clear', () => {
    const frags = unpack(encodePData(9, false, data, 256), 9);
    expect(frags.map((f) => f.control)).toEqual([...Array(frags.length - 1).fill(0x00), 0x02]);
  });

  it('a peer maximum of 0 means unlimited: one PDU', () => {
    const pdus = encodePData(1, true, data, 0);
    expect(pdus.length).toBe(1);
    expect(unpack(pdus, 1)[0]).toEqual({ control: 0x03, payload: data });
  });

  it('empty data gives one empty last fragment', () => {
    const pdus = encodePData(3, false, Buffer.alloc(0), 16384);
    expect(pdus.length).toBe(1);
    expect([...pdus[0]!]).toEqual([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 3, 0x02]);
  });

  it('round-trips through PduReader', () => {
    const pdus = encodePData(7, false, data, 128);
    const got: Buffer[] = [];
    const controls: number[] = [];
    const reader = new PduReader(
      {
        onPdu: () => expect.fail('no control PDU expected'),
        onPdvStart: (ctx, control) => {
          expect(ctx).toBe(7);
          controls.push(control);
        },
        onPdvData: (d) => got.push(Buffer.from(d)),
        onPdvEnd: () => {},
      },
      { maxPDataLength: 128, maxControlPduLength: 65536 },
    );
    reader.push(Buffer.concat(pdus));
    expect(Buffer.concat(got)).toEqual(data);
    expect(controls.at(-1)).toBe(0x02);
    expect(controls.slice(0, -1).every((c) => c === 0)).toBe(true);
    expect(reader.idle).toBe(true);
  });
});
