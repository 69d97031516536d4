import { describe, expect, it } from 'vitest';
import { type PduHandler, PduReader } from '../../src/dicom/pdu-reader.js';
import { encodeReleaseRq } from '../../src/dicom/pdu.js';
import { associateRqPdu, pdu, pDataPdu, pdv } from '../helpers/pdu-builder.js';
import { parseError } from '../helpers/expect-error.js';

type Event =
  | { e: 'pdu'; type: number; body: string }
  | { e: 'start'; ctx: number; control: number; length: number }
  | { e: 'data'; hex: string }
  | { e: 'end' };

/** Records handler calls; consecutive data slices are merged (their split depends on the chunking). */
function recorder(): { handler: PduHandler; events: Event[]; slices: Buffer[] } {
  const events: Event[] = [];
  const slices: Buffer[] = [];
  return {
    events,
    slices,
    handler: {
      onPdu: (type, body) => events.push({ e: 'pdu', type, body: body.toString('hex') }),
      onPdvStart: (ctx, control, length) => events.push({ e: 'start', ctx, control, length }),
      onPdvData: (d) => {
        expect(d.length).toBeGreaterThan(0);
        slices.push(d);
        const last = events[events.length - 1];
        if (last?.e === 'data') last.hex += d.toString('hex');
        else events.push({ e: 'data', hex: d.toString('hex') });
      },
      onPdvEnd: () => events.push({ e: 'end' }),
    },
  };
}

const LIMITS = { maxPDataLength: 1 << 20, maxControlPduLength: 65536 };

function reader(limits = LIMITS) {
  const r = recorder();
  return { ...r, reader: new PduReader(r.handler, limits) };
}


const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

// A realistic stream: A-ASSOCIATE-RQ, a P-DATA with a whole command PDV, a P-DATA with two data
// set PDVs (one empty), another with the last fragment, then A-RELEASE-RQ.
const command = bytes(40, 1);
const frag1 = bytes(33, 2);
const frag2 = bytes(17, 3);
const stream = Buffer.concat([
  associateRqPdu({ contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.1'] }] }),
  pDataPdu(pdv(1, 0x03, command)),
  pDataPdu(pdv(1, 0x00, frag1), pdv(1, 0x00, Buffer.alloc(0)), pdv(3, 0x00, Buffer.from([0xaa]))),
  pDataPdu(pdv(1, 0x02, frag2)),
  encodeReleaseRq(),
]);

const expectedEvents: Event[] = [
  { e: 'pdu', type: 0x01, body: associateRqPdu({ contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.1'] }] }).subarray(6).toString('hex') },
  { e: 'start', ctx: 1, control: 0x03, length: 40 },
  { e: 'data', hex: command.toString('hex') },
  { e: 'end' },
  { e: 'start', ctx: 1, control: 0x00, length: 33 },
  { e: 'data', hex: frag1.toString('hex') },
  { e: 'end' },
  { e: 'start', ctx: 1, control: 0x00, length: 0 },
  { e: 'end' },
  { e: 'start', ctx: 3, control: 0x00, length: 1 },
  { e: 'data', hex: 'aa' },
  { e: 'end' },
  { e: 'start', ctx: 1, control: 0x02, length: 17 },
  { e: 'data', hex: frag2.toString('hex') },
  { e: 'end' },
  { e: 'pdu', type: 0x05, body: '00000000' },
];

describe('PduReader framing', () => {
  it('reports PDUs and PDVs of a stream in one chunk', () => {
    const { reader: r, events } = reader();
    r.push(stream);
    expect(events).toEqual(expectedEvents);
    expect(r.idle).toBe(true);
  });

  it('gives the same events for every two-chunk split', () => {
    for (let i = 0; i <= stream.length; i++) {
      const { reader: r, events } = reader();
      r.push(stream.subarray(0, i));
      r.push(stream.subarray(i));
      if (JSON.stringify(events) !== JSON.stringify(expectedEvents)) expect(events, `split at ${i}`).toEqual(expectedEvents);
      expect(r.idle).toBe(true);
    }
  });

  it('gives the same events for every three-chunk split of the P-DATA part', () => {
    const pdata = Buffer.concat([pDataPdu(pdv(1, 0x00, frag1), pdv(1, 0x00, Buffer.alloc(0))), pDataPdu(pdv(1, 0x02, frag2))]);
    const { reader: ref, events: want } = reader();
    ref.push(pdata);
    for (let i = 0; i <= pdata.length; i++) {
      for (let j = i; j <= pdata.length; j++) {
        const { reader: r, events } = reader();
        r.push(pdata.subarray(0, i));
        r.push(pdata.subarray(i, j));
        r.push(pdata.subarray(j));
        if (JSON.stringify(events) !== JSON.stringify(want)) expect(events, `split at ${i}/${j}`).toEqual(want);
      }
    }
  });

  it('gives the same events byte by byte', () => {
    const { reader: r, events } = reader();
    for (let i = 0; i < stream.length; i++) r.push(stream.subarray(i, i + 1));
    expect(events).toEqual(expectedEvents);
  });

  it('delivers PDV data as slices of the pushed chunk (no copy) whose total is the PDV length', () => {
    const { reader: r, slices } = reader();
    const chunk = pDataPdu(pdv(1, 0x00, frag1));
    r.push(chunk);
    expect(slices.length).toBe(1);
    expect(slices[0]!.buffer).toBe(chunk.buffer);
    expect(slices[0]!.byteOffset).toBe(chunk.byteOffset + 12);
  });

  it('delivers non-P-DATA PDUs whole, however they were chunked', () => {
    const rq = associateRqPdu({ contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }] });
    const { reader: r, events } = reader();
    for (let i = 0; i < rq.length; i += 5) r.push(rq.subarray(i, i + 5));
    expect(events).toEqual([{ e: 'pdu', type: 1, body: rq.subarray(6).toString('hex') }]);
  });

  it('delivers every control PDU type 0x01-0x07 except P-DATA through onPdu', () => {
    const { reader: r, events } = reader();
    for (const t of [0x01, 0x02, 0x03, 0x05, 0x06, 0x07]) r.push(pdu(t, Buffer.from([t, 0, 0, 0])));
    expect(events.map((e) => (e.e === 'pdu' ? e.type : -1))).toEqual([1, 2, 3, 5, 6, 7]);
  });

  it('handles a control PDU with an empty body', () => {
    const { reader: r, events } = reader();
    r.push(Buffer.concat([pdu(0x05, Buffer.alloc(0)), pdu(0x06, Buffer.alloc(0))]));
    expect(events).toEqual([
      { e: 'pdu', type: 5, body: '' },
      { e: 'pdu', type: 6, body: '' },
    ]);
    expect(r.idle).toBe(true);
  });

  it('accepts an empty P-DATA-TF and goes on with the next PDU', () => {
    const { reader: r, events } = reader();
    r.push(pDataPdu());
    expect(r.idle).toBe(true);
    r.push(Buffer.concat([pDataPdu(), encodeReleaseRq()]));
    expect(events).toEqual([{ e: 'pdu', type: 5, body: '00000000' }]);
  });
});

describe('PduReader.idle', () => {
  it('is true before anything and false while any PDU is half read', () => {
    const { reader: r } = reader();
    expect(r.idle).toBe(true);
    const p = pDataPdu(pdv(1, 0x00, frag1), pdv(1, 0x02, frag2));
    const states: boolean[] = [];
    for (let i = 0; i < p.length; i++) {
      r.push(p.subarray(i, i + 1));
      states.push(r.idle);
    }
    expect(states.slice(0, -1).every((s) => s === false)).toBe(true);
    expect(states.at(-1)).toBe(true);
  });

  it('is false in the middle of a control PDU body and header', () => {
    const { reader: r } = reader();
    const rel = encodeReleaseRq();
    r.push(rel.subarray(0, 3));
    expect(r.idle).toBe(false);
    r.push(rel.subarray(3, 8));
    expect(r.idle).toBe(false);
    r.push(rel.subarray(8));
    expect(r.idle).toBe(true);
  });
});

describe('PduReader errors', () => {
  it('unknown PDU types → PDU_UNRECOGNIZED', () => {
    for (const t of [0x00, 0x08, 0x09, 0x10, 0xff]) {
      const { reader: r, events } = reader();
      const err = parseError(() => r.push(pdu(t, Buffer.alloc(4))));
      expect(err.code).toBe('PDU_UNRECOGNIZED');
      expect(err.details.pduType).toBe(t);
      expect(events).toEqual([]);
    }
  });

  it('notices an unknown type as soon as the 6-byte header is complete', () => {
    const { reader: r } = reader();
    const p = pdu(0x4a, Buffer.alloc(100));
    expect(() => r.push(p.subarray(0, 5))).not.toThrow();
    expect(parseError(() => r.push(p.subarray(5, 6))).code).toBe('PDU_UNRECOGNIZED');
  });

  it('a PDV item longer than what is left of its P-DATA-TF → PDV_MALFORMED', () => {
    const good = pdv(1, 0x00, frag1);
    const p = pdu(0x04, good);
    p.writeUInt32BE(frag1.length + 3, 6); // item length one byte more than the PDU holds
    const { reader: r, events } = reader();
    const err = parseError(() => r.push(p));
    expect(err.code).toBe('PDV_MALFORMED');
    expect(err.details.itemLength).toBe(frag1.length + 3);
    expect(events).toEqual([]);
  });

  it('a second PDV overrunning the PDU → PDV_MALFORMED after the first was delivered', () => {
    const body = Buffer.concat([pdv(1, 0x00, frag1), pdv(1, 0x02, frag2)]);
    const p = pdu(0x04, body.subarray(0, body.length - 1)); // PDU length one short for the second PDV
    const { reader: r, events } = reader();
    const err = parseError(() => r.push(Buffer.concat([p, Buffer.alloc(8)])));
    expect(err.code).toBe('PDV_MALFORMED');
    expect(events.filter((e) => e.e === 'end').length).toBe(1);
  });

  it('a PDV item length below 2 (no room for context id and control header) → PDV_MALFORMED', () => {
    for (const len of [0, 1]) {
      const b = Buffer.alloc(6);
      b.writeUInt32BE(len, 0);
      const { reader: r } = reader();
      expect(parseError(() => r.push(pdu(0x04, b))).code).toBe('PDV_MALFORMED');
    }
  });

  it('a P-DATA-TF longer than maxPDataLength → PDU_TOO_LONG, before any of its data', () => {
    const { reader: r, events } = reader({ maxPDataLength: 100, maxControlPduLength: 65536 });
    r.push(pDataPdu(pdv(1, 0, bytes(94, 1)))); // exactly 100: fine
    expect(events.filter((e) => e.e === 'end').length).toBe(1);
    const err = parseError(() => r.push(pDataPdu(pdv(1, 0, bytes(95, 1))).subarray(0, 6)));
    expect(err.code).toBe('PDU_TOO_LONG');
    expect(err.details.length).toBe(101);
  });

  it('a control PDU longer than maxControlPduLength → PDU_TOO_LONG', () => {
    const { reader: r } = reader({ maxPDataLength: 1 << 20, maxControlPduLength: 64 });
    r.push(pdu(0x01, Buffer.alloc(64)));
    expect(parseError(() => r.push(pdu(0x01, Buffer.alloc(65)))).code).toBe('PDU_TOO_LONG');
  });
});
