import { DicomParseError } from '../errors.js';

/**
 * Upper Layer PDUs: decoding A-ASSOCIATE-RQ and encoding what an association acceptor sends.
 * Pure functions on Buffers, no I/O.
 *
 * @see PS3.8 §9.3 (PDU structure)
 */
export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PData: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

const ItemType = {
  ApplicationContext: 0x10,
  PresentationContextRq: 0x20,
  PresentationContextAc: 0x21,
  AbstractSyntax: 0x30,
  TransferSyntax: 0x40,
  UserInformation: 0x50,
  MaxLength: 0x51,
  ImplementationClassUid: 0x52,
  AsyncOperationsWindow: 0x53,
  RoleSelection: 0x54,
  ImplementationVersionName: 0x55,
} as const;

/** A-ASSOCIATE-RJ result/source/reason values. @see PS3.8 Table 9-21 */
export const Reject = {
  Result: { Permanent: 1, Transient: 2 },
  Source: { ServiceUser: 1, ServiceProviderAcse: 2, ServiceProviderPresentation: 3 },
  /** Reasons when Source = ServiceUser */
  UserReason: { NoReasonGiven: 1, ApplicationContextNameNotSupported: 2, CallingAeNotRecognized: 3, CalledAeNotRecognized: 7 },
  /** Reasons when Source = ServiceProviderAcse */
  AcseReason: { NoReasonGiven: 1, ProtocolVersionNotSupported: 2 },
  /** Reasons when Source = ServiceProviderPresentation */
  PresentationReason: { TemporaryCongestion: 1, LocalLimitExceeded: 2 },
} as const;

/** A-ABORT source/reason values. @see PS3.8 Table 9-26 */
export const Abort = {
  Source: { ServiceUser: 0, ServiceProvider: 2 },
  Reason: {
    NotSpecified: 0,
    UnrecognizedPdu: 1,
    UnexpectedPdu: 2,
    UnrecognizedPduParameter: 4,
    UnexpectedPduParameter: 5,
    InvalidPduParameterValue: 6,
  },
} as const;

/** Presentation context results in A-ASSOCIATE-AC. @see PS3.8 Table 9-18 */
export const ContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface ProposedContext {
  readonly id: number;
  readonly abstractSyntax: string;
  readonly transferSyntaxes: readonly string[];
}

export interface AssociateRq {
  readonly protocolVersion: number;
  /** Raw 16-byte fields, echoed back in the A-ASSOCIATE-AC as PS3.8 §9.3.3 asks. */
  readonly calledAeRaw: Buffer;
  readonly callingAeRaw: Buffer;
  readonly calledAeTitle: string;
  readonly callingAeTitle: string;
  readonly applicationContext: string;
  readonly contexts: readonly ProposedContext[];
  /** Peer's maximum P-DATA-TF length; 0 means unlimited. */
  readonly maxPduLength: number;
  readonly implementationClassUid: string;
  readonly implementationVersionName: string;
  /** SCP/SCU Role Selection sub-items, by SOP class UID. @see PS3.7 Annex D.3.3.4 */
  readonly roles: ReadonlyMap<string, RoleSelection>;
}

/** Roles the association requestor proposes for one SOP class (default: requestor is SCU only). */
export interface RoleSelection {
  readonly scu: boolean;
  readonly scp: boolean;
}

const uidString = (b: Buffer): string => b.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
/** AE titles: leading and trailing spaces are not significant. @see PS3.5 Table 6.2-1 (AE) */
export const aeString = (b: Buffer): string => b.toString('latin1').replace(/\0+$/, '').trim();

/**
 * Decode the body of an A-ASSOCIATE-RQ (everything after the 6-byte PDU header).
 * @see PS3.8 §9.3.2
 */
export function decodeAssociateRq(body: Buffer): AssociateRq {
  if (body.length < 68) throw new DicomParseError('PDU_MALFORMED', `A-ASSOCIATE-RQ too short (${body.length} bytes)`);
  const protocolVersion = body.readUInt16BE(0);
  const calledAeRaw = Buffer.from(body.subarray(4, 20));
  const callingAeRaw = Buffer.from(body.subarray(20, 36));
  let applicationContext = '';
  const contexts: ProposedContext[] = [];
  let maxPduLength = 0;
  let implementationClassUid = '';
  let implementationVersionName = '';
  const roles = new Map<string, RoleSelection>();
  forEachItem(body, 68, body.length, (type, start, end) => {
    if (type === ItemType.ApplicationContext) {
      applicationContext = uidString(body.subarray(start, end));
    } else if (type === ItemType.PresentationContextRq) {
      if (end - start < 4) throw new DicomParseError('PDU_MALFORMED', 'presentation context item too short');
      const id = body[start]!;
      let abstractSyntax = '';
      const transferSyntaxes: string[] = [];
      forEachItem(body, start + 4, end, (sub, s, e) => {
        if (sub === ItemType.AbstractSyntax) abstractSyntax = uidString(body.subarray(s, e));
        else if (sub === ItemType.TransferSyntax) transferSyntaxes.push(uidString(body.subarray(s, e)));
      });
      contexts.push({ id, abstractSyntax, transferSyntaxes });
    } else if (type === ItemType.UserInformation) {
      forEachItem(body, start, end, (sub, s, e) => {
        if (sub === ItemType.MaxLength && e - s >= 4) maxPduLength = body.readUInt32BE(s);
        else if (sub === ItemType.ImplementationClassUid) implementationClassUid = uidString(body.subarray(s, e));
        else if (sub === ItemType.ImplementationVersionName) implementationVersionName = aeString(body.subarray(s, e));
        else if (sub === ItemType.RoleSelection) {
          if (e - s < 4) throw new DicomParseError('PDU_MALFORMED', 'role selection item too short');
          const n = body.readUInt16BE(s);
          if (s + 2 + n + 2 > e) throw new DicomParseError('PDU_MALFORMED', 'role selection UID runs past its item');
          roles.set(uidString(body.subarray(s + 2, s + 2 + n)), { scu: body[s + 2 + n] === 1, scp: body[s + 3 + n] === 1 });
        }
      });
    }
    // Unknown items are ignored, as PS3.8 §9.3.1 requires of an acceptor.
  });
  return {
    protocolVersion,
    calledAeRaw,
    callingAeRaw,
    calledAeTitle: aeString(calledAeRaw),
    callingAeTitle: aeString(callingAeRaw),
    applicationContext,
    contexts,
    maxPduLength,
    implementationClassUid,
    implementationVersionName,
    roles,
  };
}

/** Walk `type(1) reserved(1) length(2 BE) value` items between `from` and `to`. */
function forEachItem(buf: Buffer, from: number, to: number, fn: (type: number, start: number, end: number) => void): void {
  let off = from;
  while (off < to) {
    if (off + 4 > to) throw new DicomParseError('PDU_MALFORMED', `item header truncated at byte ${off}`);
    const type = buf[off]!;
    const len = buf.readUInt16BE(off + 2);
    const start = off + 4;
    const end = start + len;
    if (end > to) throw new DicomParseError('PDU_MALFORMED', `item 0x${type.toString(16)} runs past its parent`);
    fn(type, start, end);
    off = end;
  }
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

export interface ContextDecision {
  readonly id: number;
  readonly result: number;
  /** The accepted transfer syntax; ignored by the peer unless result is Acceptance. */
  readonly transferSyntax: string;
}

/**
 * User Information item: maximum length, implementation class UID, role selections and
 * version name (sub-items in ascending type order). @see PS3.7 Annex D.3.3
 */
function userInformation(opts: {
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
  roles?: ReadonlyMap<string, RoleSelection> | undefined;
}): Buffer {
  const max = Buffer.alloc(4);
  max.writeUInt32BE(opts.maxPduLength, 0);
  const roles = [...(opts.roles ?? new Map<string, RoleSelection>())].map(([uid, r]) => {
    const u = Buffer.from(uid, 'latin1');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(u.length, 0);
    return item(ItemType.RoleSelection, Buffer.concat([len, u, Buffer.from([r.scu ? 1 : 0, r.scp ? 1 : 0])]));
  });
  return item(
    ItemType.UserInformation,
    Buffer.concat([
      item(ItemType.MaxLength, max),
      item(ItemType.ImplementationClassUid, Buffer.from(opts.implementationClassUid, 'latin1')),
      ...roles,
      item(ItemType.ImplementationVersionName, Buffer.from(opts.implementationVersionName, 'latin1')),
    ]),
  );
}

/** Encode an A-ASSOCIATE-AC. @see PS3.8 §9.3.3 */
export function encodeAssociateAc(opts: {
  rq: AssociateRq;
  contexts: readonly ContextDecision[];
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
  /** Role selections answered (only for SOP classes the requestor proposed roles for). */
  roles?: ReadonlyMap<string, RoleSelection> | undefined;
}): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(0x0001, 0);
  opts.rq.calledAeRaw.copy(fixed, 4);
  opts.rq.callingAeRaw.copy(fixed, 20);
  const items: Buffer[] = [item(ItemType.ApplicationContext, Buffer.from(opts.rq.applicationContext, 'latin1'))];
  for (const c of opts.contexts) {
    const head = Buffer.from([c.id, 0, c.result, 0]);
    items.push(item(ItemType.PresentationContextAc, Buffer.concat([head, item(ItemType.TransferSyntax, Buffer.from(c.transferSyntax, 'latin1'))])));
  }
  items.push(userInformation(opts));
  return pdu(PduType.AssociateAc, Buffer.concat([fixed, ...items]));
}

/** Encode an A-ASSOCIATE-RJ. @see PS3.8 §9.3.4 */
export function encodeAssociateRj(result: number, source: number, reason: number): Buffer {
  return pdu(PduType.AssociateRj, Buffer.from([0, result, source, reason]));
}

/** Encode an A-ABORT. @see PS3.8 §9.3.8 */
export function encodeAbort(source: number, reason: number): Buffer {
  return pdu(PduType.Abort, Buffer.from([0, 0, source, reason]));
}

/** Encode an A-RELEASE-RP. @see PS3.8 §9.3.7 */
export function encodeReleaseRp(): Buffer {
  return pdu(PduType.ReleaseRp, Buffer.alloc(4));
}

/** Encode an A-RELEASE-RQ. @see PS3.8 §9.3.6 */
export function encodeReleaseRq(): Buffer {
  return pdu(PduType.ReleaseRq, Buffer.alloc(4));
}

/** A 16-byte AE title field, space padded. @see PS3.8 §9.3.2 */
function aeField(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' ').slice(0, 16), 'latin1');
}

/** Encode an A-ASSOCIATE-RQ (requestor side). @see PS3.8 §9.3.2 */
export function encodeAssociateRq(opts: {
  calledAeTitle: string;
  callingAeTitle: string;
  contexts: readonly ProposedContext[];
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
  applicationContext?: string;
  /** Role selections proposed (e.g. SCP role for a Storage Commitment report). */
  roles?: ReadonlyMap<string, RoleSelection> | undefined;
}): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(0x0001, 0);
  aeField(opts.calledAeTitle).copy(fixed, 4);
  aeField(opts.callingAeTitle).copy(fixed, 20);
  const items: Buffer[] = [item(ItemType.ApplicationContext, Buffer.from(opts.applicationContext ?? '1.2.840.10008.3.1.1.1', 'latin1'))];
  for (const c of opts.contexts) {
    items.push(
      item(
        ItemType.PresentationContextRq,
        Buffer.concat([
          Buffer.from([c.id, 0, 0, 0]),
          item(ItemType.AbstractSyntax, Buffer.from(c.abstractSyntax, 'latin1')),
          ...c.transferSyntaxes.map((t) => item(ItemType.TransferSyntax, Buffer.from(t, 'latin1'))),
        ]),
      ),
    );
  }
  items.push(userInformation(opts));
  return pdu(PduType.AssociateRq, Buffer.concat([fixed, ...items]));
}

export interface AssociateAc {
  /** Per proposed context id: result and the transfer syntax the acceptor chose. */
  readonly contexts: ReadonlyMap<number, { result: number; transferSyntax: string }>;
  /** Acceptor's maximum P-DATA-TF length; 0 means unlimited. */
  readonly maxPduLength: number;
  readonly implementationClassUid: string;
  readonly implementationVersionName: string;
}

/** Decode the body of an A-ASSOCIATE-AC. @see PS3.8 §9.3.3 */
export function decodeAssociateAc(body: Buffer): AssociateAc {
  if (body.length < 68) throw new DicomParseError('PDU_MALFORMED', `A-ASSOCIATE-AC too short (${body.length} bytes)`);
  const contexts = new Map<number, { result: number; transferSyntax: string }>();
  let maxPduLength = 0;
  let implementationClassUid = '';
  let implementationVersionName = '';
  forEachItem(body, 68, body.length, (type, start, end) => {
    if (type === ItemType.PresentationContextAc) {
      if (end - start < 4) throw new DicomParseError('PDU_MALFORMED', 'presentation context item too short');
      let transferSyntax = '';
      forEachItem(body, start + 4, end, (sub, s, e) => {
        if (sub === ItemType.TransferSyntax) transferSyntax = uidString(body.subarray(s, e));
      });
      contexts.set(body[start]!, { result: body[start + 2]!, transferSyntax });
    } else if (type === ItemType.UserInformation) {
      forEachItem(body, start, end, (sub, s, e) => {
        if (sub === ItemType.MaxLength && e - s >= 4) maxPduLength = body.readUInt32BE(s);
        else if (sub === ItemType.ImplementationClassUid) implementationClassUid = uidString(body.subarray(s, e));
        else if (sub === ItemType.ImplementationVersionName) implementationVersionName = aeString(body.subarray(s, e));
      });
    }
  });
  return { contexts, maxPduLength, implementationClassUid, implementationVersionName };
}

/** Decode the 4-byte body of an A-ASSOCIATE-RJ. @see PS3.8 §9.3.4 */
export function decodeAssociateRj(body: Buffer): { result: number; source: number; reason: number } {
  if (body.length < 4) throw new DicomParseError('PDU_MALFORMED', 'A-ASSOCIATE-RJ too short');
  return { result: body[1]!, source: body[2]!, reason: body[3]! };
}
