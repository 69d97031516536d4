import { describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../../../src/config/types.js';
import { type Decision, negotiate, normalizeAddress } from '../../../src/receive/negotiation.js';
import { ContextResult, decodeAssociateRq } from '../../../src/dicom/pdu.js';
import { type AssociateRqSpec, associateRqBody, type ProposedContextSpec } from '../../helpers/pdu-builder.js';

const VERIFICATION = '1.2.840.10008.1.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const PRIVATE_SOP = '1.3.46.670589.11.0.0.12.1'; // a vendor-private storage class
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';
const BIG_ENDIAN = '1.2.840.10008.1.2.2';
const JPEG_LS = '1.2.840.10008.1.2.4.80';
const J2K = '1.2.840.10008.1.2.4.90';
const DEFLATE = '1.2.840.10008.1.2.1.99';
const UNKNOWN_TS = '1.2.3.4.5.6.7.8';

type Policy = Pick<GatewayConfig['receive'], 'aeTitle' | 'callers' | 'unknownSopClasses' | 'transferSyntaxes'>;

const basePolicy: Policy = {
  aeTitle: 'PACS_EDGE',
  callers: [{ aeTitle: 'CT01' }, { aeTitle: 'MR01', host: '10.1.2.3' }, { aeTitle: 'LOCAL', host: '127.0.0.1' }],
  unknownSopClasses: 'reject',
  transferSyntaxes: 'all',
};

function rq(spec: AssociateRqSpec = {}) {
  return decodeAssociateRq(associateRqBody({ calledAe: 'PACS_EDGE', callingAe: 'CT01', ...spec }));
}

function decide(spec: AssociateRqSpec, policy: Partial<Policy> = {}, addr = '192.168.0.10'): Decision {
  return negotiate(rq(spec), { ...basePolicy, ...policy }, addr);
}

function accepted(d: Decision) {
  if (d.kind !== 'accept') return expect.fail(`expected acceptance, got reject: ${d.why}`);
  return d;
}

function rejected(d: Decision) {
  if (d.kind !== 'reject') return expect.fail('expected a rejection');
  return d;
}

/** Decision for a single proposed context. */
function one(ctx: Omit<ProposedContextSpec, 'id'>, policy: Partial<Policy> = {}) {
  const d = accepted(decide({ contexts: [{ id: 1, ...ctx }] }, policy));
  expect(d.decisions).toHaveLength(1);
  return { decision: d.decisions[0]!, accepted: d.accepted.get(1) };
}

describe('association rejection (A-ASSOCIATE-RJ parameters, PS3.8 Table 9-21)', () => {
  it('called AE title mismatch → permanent (1), service user (1), reason 7', () => {
    const d = rejected(decide({ calledAe: 'OTHER_SCP' }));
    expect({ result: d.result, source: d.source, reason: d.reason }).toEqual({ result: 1, source: 1, reason: 7 });
    expect(d.why).toContain('OTHER_SCP');
  });

  it('called AE title comparison ignores padding spaces but is case sensitive', () => {
    expect(decide({ calledAe: '  PACS_EDGE  ' }).kind).toBe('accept');
    expect(rejected(decide({ calledAe: 'pacs_edge' })).reason).toBe(7);
  });

  it('unknown calling AE title → permanent, service user, reason 3', () => {
    const d = rejected(decide({ callingAe: 'STRANGER' }));
    expect({ result: d.result, source: d.source, reason: d.reason }).toEqual({ result: 1, source: 1, reason: 3 });
    expect(d.why).toContain('STRANGER');
  });

  it('a caller with a host restriction is accepted only from that address', () => {
    expect(decide({ callingAe: 'MR01' }, {}, '10.1.2.3').kind).toBe('accept');
    expect(rejected(decide({ callingAe: 'MR01' }, {}, '10.1.2.4')).reason).toBe(3);
    // The IPv4-mapped IPv6 form a dual-stack socket reports matches too.
    expect(decide({ callingAe: 'MR01' }, {}, '::ffff:10.1.2.3').kind).toBe('accept');
    expect(decide({ callingAe: 'LOCAL' }, {}, '::ffff:127.0.0.1').kind).toBe('accept');
    expect(rejected(decide({ callingAe: 'LOCAL' }, {}, '::1')).reason).toBe(3);
  });

  it('a host given in IPv4-mapped form in the configuration matches the plain address', () => {
    const policy = { callers: [{ aeTitle: 'CT01', host: '::ffff:192.168.7.7' }] };
    expect(decide({}, policy, '192.168.7.7').kind).toBe('accept');
    expect(decide({}, policy, '::ffff:192.168.7.7').kind).toBe('accept');
    expect(decide({}, policy, '192.168.7.8').kind).toBe('reject');
  });

  it('a caller without host is accepted from any address', () => {
    for (const addr of ['10.0.0.1', '::ffff:172.16.0.1', '::1', 'fe80::1']) expect(decide({}, {}, addr).kind).toBe('accept');
  });

  it('"*" accepts any calling AE title (with its host restriction if any)', () => {
    expect(decide({ callingAe: 'ANYONE' }, { callers: [{ aeTitle: '*' }] }).kind).toBe('accept');
    expect(decide({ callingAe: 'X' }, { callers: [{ aeTitle: '*', host: '127.0.0.1' }] }, '::ffff:127.0.0.1').kind).toBe('accept');
    expect(rejected(decide({ callingAe: 'X' }, { callers: [{ aeTitle: '*', host: '127.0.0.1' }] }, '10.0.0.9')).reason).toBe(3);
  });

  it('an empty caller list rejects everyone', () => {
    expect(rejected(decide({}, { callers: [] })).reason).toBe(3);
  });

  it('wrong application context name → service user, reason 2', () => {
    const d = rejected(decide({ applicationContext: '1.2.840.10008.3.1.1.2' }));
    expect({ result: d.result, source: d.source, reason: d.reason }).toEqual({ result: 1, source: 1, reason: 2 });
    expect(rejected(decide({ applicationContext: null })).reason).toBe(2);
  });

  it('protocol version without bit 0 → service provider ACSE (2), reason 2', () => {
    for (const v of [0x0000, 0x0002, 0x8000]) {
      const d = rejected(decide({ protocolVersion: v }));
      expect({ result: d.result, source: d.source, reason: d.reason }).toEqual({ result: 1, source: 2, reason: 2 });
    }
    // Bit 0 set with other bits is still version 1 (PS3.8 §9.3.2: each bit is a version).
    expect(decide({ protocolVersion: 0x0003 }).kind).toBe('accept');
  });

  it('checks in order: protocol version, application context, called AE, calling AE', () => {
    const all = { protocolVersion: 0, applicationContext: '1.2', calledAe: 'X', callingAe: 'Y' };
    expect(rejected(decide(all)).source).toBe(2);
    expect(rejected(decide({ ...all, protocolVersion: 1 })).reason).toBe(2);
    expect(rejected(decide({ ...all, protocolVersion: 1, applicationContext: undefined })).reason).toBe(7);
    expect(rejected(decide({ ...all, protocolVersion: 1, applicationContext: undefined, calledAe: 'PACS_EDGE' })).reason).toBe(3);
  });
});

describe('presentation contexts', () => {
  it('Verification is accepted with Implicit VR LE', () => {
    const { decision, accepted: acc } = one({ abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] });
    expect(decision).toEqual({ id: 1, result: ContextResult.Acceptance, transferSyntax: IMPLICIT });
    expect(acc).toEqual({ id: 1, abstractSyntax: VERIFICATION, transferSyntax: IMPLICIT });
  });

  it('Verification takes the first of the native syntaxes proposed, regardless of the storage allowlist', () => {
    expect(one({ abstractSyntax: VERIFICATION, transferSyntaxes: [JPEG_LS, EXPLICIT, IMPLICIT] }).decision.transferSyntax).toBe(EXPLICIT);
    expect(one({ abstractSyntax: VERIFICATION, transferSyntaxes: [BIG_ENDIAN] }).decision.transferSyntax).toBe(BIG_ENDIAN);
    expect(one({ abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] }, { transferSyntaxes: [JPEG_LS] }).decision.result).toBe(0);
    expect(one({ abstractSyntax: VERIFICATION, transferSyntaxes: [JPEG_LS, DEFLATE] }).decision.result).toBe(ContextResult.TransferSyntaxesNotSupported);
  });

  it('storage (CT) accepts the FIRST proposed known syntax, without conversion', () => {
    const { decision, accepted: acc } = one({ abstractSyntax: CT, transferSyntaxes: [JPEG_LS, EXPLICIT] });
    expect(decision).toEqual({ id: 1, result: 0, transferSyntax: JPEG_LS });
    expect(acc).toEqual({ id: 1, abstractSyntax: CT, transferSyntax: JPEG_LS });
    expect(one({ abstractSyntax: CT, transferSyntaxes: [EXPLICIT, JPEG_LS] }).decision.transferSyntax).toBe(EXPLICIT);
    expect(one({ abstractSyntax: CT, transferSyntaxes: [DEFLATE, IMPLICIT] }).decision.transferSyntax).toBe(DEFLATE);
    expect(one({ abstractSyntax: CT, transferSyntaxes: [BIG_ENDIAN] }).decision.transferSyntax).toBe(BIG_ENDIAN);
  });

  it('skips unknown transfer syntaxes and takes the next known one', () => {
    expect(one({ abstractSyntax: CT, transferSyntaxes: [UNKNOWN_TS, J2K, EXPLICIT] }).decision.transferSyntax).toBe(J2K);
  });

  it('only unknown transfer syntaxes → result 4 (transfer syntaxes not supported)', () => {
    const { decision, accepted: acc } = one({ abstractSyntax: CT, transferSyntaxes: [UNKNOWN_TS, '1.2.3'] });
    expect(decision.result).toBe(ContextResult.TransferSyntaxesNotSupported);
    expect(decision.result).toBe(4);
    expect(acc).toBeUndefined();
  });

  it('no transfer syntax at all → result 4', () => {
    expect(one({ abstractSyntax: CT, transferSyntaxes: [] }).decision.result).toBe(4);
  });

  it('honours the receive.transferSyntaxes allowlist', () => {
    const allow = { transferSyntaxes: [EXPLICIT, IMPLICIT] };
    expect(one({ abstractSyntax: CT, transferSyntaxes: [JPEG_LS, EXPLICIT] }, allow).decision).toEqual({ id: 1, result: 0, transferSyntax: EXPLICIT });
    expect(one({ abstractSyntax: CT, transferSyntaxes: [JPEG_LS, J2K] }, allow).decision.result).toBe(4);
    // A UID in the allowlist that the gateway does not know is still not accepted.
    expect(one({ abstractSyntax: CT, transferSyntaxes: [UNKNOWN_TS] }, { transferSyntaxes: [UNKNOWN_TS] }).decision.result).toBe(4);
  });

  it('unknown private SOP class → result 3 with unknownSopClasses "reject"', () => {
    const { decision, accepted: acc } = one({ abstractSyntax: PRIVATE_SOP, transferSyntaxes: [EXPLICIT] }, { unknownSopClasses: 'reject' });
    expect(decision.result).toBe(ContextResult.AbstractSyntaxNotSupported);
    expect(decision.result).toBe(3);
    expect(acc).toBeUndefined();
  });

  it('unknown private SOP class is accepted with unknownSopClasses "accept" (same syntax rules)', () => {
    const { decision, accepted: acc } = one({ abstractSyntax: PRIVATE_SOP, transferSyntaxes: [UNKNOWN_TS, JPEG_LS] }, { unknownSopClasses: 'accept' });
    expect(decision).toEqual({ id: 1, result: 0, transferSyntax: JPEG_LS });
    expect(acc?.abstractSyntax).toBe(PRIVATE_SOP);
    expect(one({ abstractSyntax: PRIVATE_SOP, transferSyntaxes: [UNKNOWN_TS] }, { unknownSopClasses: 'accept' }).decision.result).toBe(4);
  });

  it('an abstract syntax that is not a valid UID is refused even with "accept"', () => {
    for (const bad of ['not-a-uid', '1.2.03', '', `1.${'2'.repeat(70)}`]) {
      expect(one({ abstractSyntax: bad, transferSyntaxes: [EXPLICIT] }, { unknownSopClasses: 'accept' }).decision.result, bad).toBe(3);
    }
  });

  it('decides each context independently, in proposal order, and maps only accepted ones', () => {
    const d = accepted(
      decide({
        contexts: [
          { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
          { id: 3, abstractSyntax: CT, transferSyntaxes: [JPEG_LS, EXPLICIT] },
          { id: 5, abstractSyntax: PRIVATE_SOP, transferSyntaxes: [EXPLICIT] },
          { id: 7, abstractSyntax: MR, transferSyntaxes: [UNKNOWN_TS] },
          { id: 9, abstractSyntax: MR, transferSyntaxes: [IMPLICIT] },
        ],
      }),
    );
    expect(d.decisions.map((x) => [x.id, x.result])).toEqual([
      [1, 0],
      [3, 0],
      [5, 3],
      [7, 4],
      [9, 0],
    ]);
    expect([...d.accepted.keys()]).toEqual([1, 3, 9]);
    expect(d.accepted.get(3)).toEqual({ id: 3, abstractSyntax: CT, transferSyntax: JPEG_LS });
    expect(d.accepted.get(9)).toEqual({ id: 9, abstractSyntax: MR, transferSyntax: IMPLICIT });
    // Refused contexts still carry a transfer syntax field (ignored by the peer) for the AC encoding.
    for (const x of d.decisions) expect(typeof x.transferSyntax).toBe('string');
  });

  it('an association with no acceptable context is still accepted at the ACSE level (PS3.8 leaves that to the SCU)', () => {
    const d = accepted(decide({ contexts: [{ id: 1, abstractSyntax: PRIVATE_SOP, transferSyntaxes: [EXPLICIT] }] }));
    expect(d.accepted.size).toBe(0);
  });
});

describe('normalizeAddress', () => {
  it('strips the IPv4-mapped IPv6 prefix only from IPv4-mapped addresses', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::1')).toBe('::1');
    expect(normalizeAddress('::ffff:abcd')).toBe('::ffff:abcd');
  });
});

describe('negotiation: Storage Commitment Push Model', () => {
  const COMMIT = '1.2.840.10008.1.20.1';
  /** Role Selection sub-item (0x54): UID, SCU role, SCP role. */
  function roleItem(uid: string, scu: number, scp: number): Buffer {
    const u = Buffer.from(uid, 'latin1');
    const body = Buffer.concat([Buffer.from([u.length >> 8, u.length & 0xff]), u, Buffer.from([scu, scp])]);
    return Buffer.concat([Buffer.from([0x54, 0, body.length >> 8, body.length & 0xff]), body]);
  }
  const ctx = [
    { id: 1, abstractSyntax: COMMIT, transferSyntaxes: [BIG_ENDIAN, EXPLICIT] },
    { id: 3, abstractSyntax: CT, transferSyntaxes: [EXPLICIT] },
  ];

  it('is accepted from a caller, in Explicit or Implicit VR LE only, when enabled', () => {
    const d = accepted(negotiate(rq({ contexts: ctx }), { ...basePolicy, commitment: { enabled: true } }, '192.168.0.10'));
    expect(d.accepted.get(1)?.transferSyntax).toBe(EXPLICIT);
    const off = accepted(negotiate(rq({ contexts: ctx }), { ...basePolicy, commitment: { enabled: false } }, '192.168.0.10'));
    expect(off.accepted.has(1)).toBe(false);
  });

  it('answers the roles a reporting peer proposes (SCP role for an N-EVENT-REPORT on a new association)', () => {
    const d = accepted(negotiate(rq({ contexts: ctx, extraUserItems: [roleItem(COMMIT, 0, 1)] }), { ...basePolicy, commitment: { enabled: true } }, '192.168.0.10'));
    expect(d.roles.get(COMMIT)).toEqual({ scu: false, scp: true });
  });

  it('lets a commit destination associate to report, and for nothing else', () => {
    const peers = [{ aeTitle: 'PACS', host: '10.9.9.9' }];
    const d = accepted(negotiate(rq({ callingAe: 'PACS', contexts: ctx }), { ...basePolicy, commitment: { enabled: false } }, '10.9.9.9', peers));
    expect([...d.accepted.keys()]).toEqual([1]); // no storage context for a peer that is not a caller
    const wrongHost = negotiate(rq({ callingAe: 'PACS', contexts: ctx }), basePolicy, '10.9.9.8', peers);
    expect(wrongHost.kind).toBe('reject');
  });
});

describe('refusals say why with bounded, printable peer values, counted by a fixed code', () => {
  const rejected = (d: Decision) => (d.kind === 'reject' ? d : expect.fail('expected a rejection'));

  it('a 64 KiB application context name becomes a short reason; control bytes are escaped', () => {
    const d = rejected(decide({ applicationContext: `1.2.${'9'.repeat(65_000)}` }));
    expect(d.code).toBe('application-context');
    expect(d.why.length).toBeLessThan(200);
    expect(d.why).toMatch(/…\(65004 characters\)/);
    const ae = rejected(decide({ callingAe: 'EV\nIL"\u0007' }));
    expect(ae.code).toBe('calling-ae');
    expect(ae.why).toContain('EV\\x0aIL\\x22\\x07');
    expect(ae.why).not.toMatch(/[\n\u0007]/);
  });

  it('statistics count refusals by code: a thousand different callers make one entry', async () => {
    const { ReceiveStats } = await import('../../../src/receive/stats.js');
    const stats = new ReceiveStats();
    for (let i = 0; i < 1000; i++) {
      const d = rejected(decide({ callingAe: `INTRUDER${i}` }));
      stats.associationRejected({ callingAeTitle: `INTRUDER${i}`, calledAeTitle: 'PACS_EDGE', address: '10.9.9.9', code: d.code, why: d.why });
    }
    expect(stats.rejectedByReason).toEqual({ 'calling-ae': 1000 });
  });
});
