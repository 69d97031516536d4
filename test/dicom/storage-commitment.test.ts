import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  decodeCommitment,
  encodeCommitmentRequest,
  encodeCommitmentResult,
  EVENT_ALL_COMMITTED,
  EVENT_FAILURES_EXIST,
  eventTypeOf,
  newTransactionUid,
} from '../../src/dicom/storage-commitment.js';
import { Status } from '../../src/dicom/status.js';
import { isValidUid } from '../../src/dicom/uids.js';
import { parseError } from '../helpers/expect-error.js';
import { encodeDataset, ExplicitLE, ImplicitLE } from '../helpers/dicom-builder.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const refs = [
  { sopClassUid: CT, sopInstanceUid: '1.2.3.4.5' },
  { sopClassUid: CT, sopInstanceUid: '1.2.3.4.66' },
];

/** An item or sequence delimiter: (FFFE,E00D) / (FFFE,E0DD) with length 0. */
function delimiter(element: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(0xfffe, 0);
  b.writeUInt16LE(element, 2);
  return b;
}

describe('storage commitment data sets (PS3.4 J.3, PS3.3 C.14.1)', () => {
  for (const explicitVr of [true, false]) {
    const enc = { explicitVr };
    it(`round-trips a request and a result in ${explicitVr ? 'Explicit' : 'Implicit'} VR LE`, () => {
      const rq = decodeCommitment(encodeCommitmentRequest({ transactionUid: '2.25.1', refs }, enc), enc);
      expect(rq).toEqual({ transactionUid: '2.25.1', committed: refs, failed: [] });
      const result = { transactionUid: '2.25.1', committed: [refs[0]!], failed: [{ ...refs[1]!, reason: Status.NoSuchObjectInstance.code }] };
      expect(decodeCommitment(encodeCommitmentResult(result, enc), enc)).toEqual(result);
      expect(eventTypeOf(result)).toBe(EVENT_FAILURES_EXIST);
      expect(eventTypeOf({ ...result, failed: [] })).toBe(EVENT_ALL_COMMITTED);
    });
  }

  it('reads undefined-length sequences and items, and skips attributes it does not need', () => {
    // (0008,1195) UI, then (0008,1199) SQ of undefined length with one undefined-length item, then (0088,0130) SH.
    const head = Buffer.from([0x08, 0x00, 0x95, 0x11, 0x55, 0x49, 0x06, 0x00, ...Buffer.from('2.25.7')]);
    const sq = Buffer.from([0x08, 0x00, 0x99, 0x11, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    const item = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
    const body = encodeDataset(
      [
        { tag: 0x00081150, vr: 'UI', value: CT },
        { tag: 0x00081155, vr: 'UI', value: '9.8.7' },
      ],
      ExplicitLE,
    );
    const tail = encodeDataset([{ tag: 0x00880130, vr: 'SH', value: 'MEDIA01' }], ExplicitLE);
    const ds = Buffer.concat([head, sq, item, body, delimiter(0xe00d), delimiter(0xe0dd), tail]);
    expect(decodeCommitment(ds, { explicitVr: true })).toEqual({ transactionUid: '2.25.7', committed: [{ sopClassUid: CT, sopInstanceUid: '9.8.7' }], failed: [] });
  });

  it('refuses malformed data sets with a parse error, never a crash', () => {
    const good = encodeCommitmentRequest({ transactionUid: '2.25.1', refs }, { explicitVr: true });
    expect(parseError(() => decodeCommitment(good.subarray(0, good.length - 3), { explicitVr: true })).code).toMatch(/DATASET_(TRUNCATED|MALFORMED)/);
    expect(parseError(() => decodeCommitment(encodeDataset([{ tag: 0x00081150, vr: 'UI', value: CT }], ImplicitLE), { explicitVr: false })).message).toMatch(/Transaction UID/);
    // An undefined-length item that never ends.
    const sq = Buffer.from([0x08, 0x00, 0x95, 0x11, 0x55, 0x49, 0x02, 0x00, 0x31, 0x00, 0x08, 0x00, 0x99, 0x11, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
    expect(parseError(() => decodeCommitment(sq, { explicitVr: true })).code).toBe('DATASET_TRUNCATED');
  });

  it('makes fresh, valid Transaction UIDs', () => {
    const a = newTransactionUid(randomBytes);
    expect(isValidUid(a)).toBe(true);
    expect(a).not.toBe(newTransactionUid(randomBytes));
  });
});
