import { isIP } from 'node:net';
import { peerText } from '../util/peer-text.js';
import type { CallerConfig, GatewayConfig } from '../config/types.js';
import { isKnownStorageSopClass, VERIFICATION_SOP_CLASS } from '../dicom/sop-classes.js';
import { transferSyntax, TS } from '../dicom/transfer-syntaxes.js';
import { APPLICATION_CONTEXT_NAME, isValidUid } from '../dicom/uids.js';
import { type AssociateRq, type ContextDecision, ContextResult, Reject, type RoleSelection } from '../dicom/pdu.js';
import { STORAGE_COMMITMENT_PUSH_MODEL } from '../dicom/storage-commitment.js';

/**
 * Association acceptance policy: who may associate, and which presentation contexts are
 * accepted with which transfer syntax. Pure: the caller sends the PDUs.
 *
 * Transfer syntax choice is "what the modality proposes, unconverted": for each context the
 * first proposed syntax (the SCU's order of preference) that the gateway knows and the
 * configuration allows. Storage never converts, so any known syntax can be kept byte for byte.
 *
 * @see PS3.8 §7.1.1 (A-ASSOCIATE parameters), PS3.7 Annex D.3.3 (negotiation)
 */
export interface AcceptedContext {
  readonly id: number;
  readonly abstractSyntax: string;
  readonly transferSyntax: string;
}

/**
 * Why an association was refused, as a fixed code: what statistics, metrics and MQTT count by
 * (a bounded set, whatever peers send). `why` says it in words, with the peer's values made safe
 * ({@link peerText}).
 */
export type RejectCode = 'protocol-version' | 'application-context' | 'called-ae' | 'calling-ae' | 'max-associations' | 'audit-failure';

export type Decision =
  | { kind: 'reject'; result: number; source: number; reason: number; code: RejectCode; why: string }
  | { kind: 'accept'; decisions: ContextDecision[]; accepted: Map<number, AcceptedContext>; roles: Map<string, RoleSelection> };

type ReceivePolicy = Pick<GatewayConfig['receive'], 'aeTitle' | 'callers' | 'unknownSopClasses' | 'transferSyntaxes'> & {
  commitment?: { enabled: boolean } | undefined;
};

/**
 * Destinations asked for Storage Commitment (`forward[].commit`): they may associate to deliver
 * their N-EVENT-REPORT on a new association, and for nothing else (no storage contexts).
 */
export interface CommitPeer {
  aeTitle: string;
  host: string;
}

/** Syntaxes the Storage Commitment data sets are exchanged in (small; no need for more). */
const COMMITMENT_SYNTAXES = new Set<string>([TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian]);

/** Syntaxes Verification is accepted with (no data set is ever exchanged). */
const VERIFICATION_SYNTAXES = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian, TS.ExplicitVRBigEndian]);

export function negotiate(rq: AssociateRq, policy: ReceivePolicy, remoteAddress: string, commitPeers: readonly CommitPeer[] = []): Decision {
  if ((rq.protocolVersion & 0x0001) === 0) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceProviderAcse, Reject.AcseReason.ProtocolVersionNotSupported, 'protocol-version', `protocol version 0x${rq.protocolVersion.toString(16)} not supported`);
  }
  if (rq.applicationContext !== APPLICATION_CONTEXT_NAME) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.ApplicationContextNameNotSupported, 'application-context', `application context "${peerText(rq.applicationContext ?? '')}" not supported`);
  }
  if (rq.calledAeTitle !== policy.aeTitle) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CalledAeNotRecognized, 'called-ae', `called AE title "${peerText(rq.calledAeTitle)}" is not "${policy.aeTitle}"`);
  }
  const caller = callerAllowed(policy.callers, rq.callingAeTitle, remoteAddress);
  const commitPeer = commitPeers.some((p) => p.aeTitle === rq.callingAeTitle && (isIP(p.host) === 0 || normalizeAddress(p.host) === normalizeAddress(remoteAddress)));
  if (!caller && !commitPeer) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CallingAeNotRecognized, 'calling-ae', `calling AE title "${peerText(rq.callingAeTitle)}" from ${peerText(remoteAddress)} is not in receive.callers`);
  }

  const decisions: ContextDecision[] = [];
  const accepted = new Map<number, AcceptedContext>();
  const roles = new Map<string, RoleSelection>();
  // A modality may ask us to commit (if enabled); a destination may report on its commitment.
  const commitmentOk = (caller && policy.commitment?.enabled === true) || commitPeer;
  for (const pc of rq.contexts) {
    const verification = pc.abstractSyntax === VERIFICATION_SOP_CLASS;
    const commitment = pc.abstractSyntax === STORAGE_COMMITMENT_PUSH_MODEL && commitmentOk;
    // A commitment peer that is not also a caller gets no storage contexts.
    const storage = !verification && !commitment && caller && isKnownStorageSopClass(pc.abstractSyntax);
    const allowedUnknown = !verification && !commitment && !storage && caller && pc.abstractSyntax !== STORAGE_COMMITMENT_PUSH_MODEL && policy.unknownSopClasses === 'accept' && isValidUid(pc.abstractSyntax);
    if (!verification && !commitment && !storage && !allowedUnknown) {
      decisions.push({ id: pc.id, result: ContextResult.AbstractSyntaxNotSupported, transferSyntax: TS.ImplicitVRLittleEndian });
      continue;
    }
    const chosen = pc.transferSyntaxes.find((ts) =>
      verification
        ? VERIFICATION_SYNTAXES.has(ts)
        : commitment
          ? COMMITMENT_SYNTAXES.has(ts)
          : transferSyntax(ts) !== undefined && (policy.transferSyntaxes === 'all' || policy.transferSyntaxes.includes(ts)),
    );
    // Storage Commitment works in both roles (we request of destinations, we answer modalities):
    // whatever roles the requestor proposes for it are accepted. @see PS3.7 D.3.3.4
    const proposedRole = rq.roles.get(pc.abstractSyntax);
    if (commitment && proposedRole && chosen) roles.set(pc.abstractSyntax, proposedRole);
    if (!chosen) {
      decisions.push({ id: pc.id, result: ContextResult.TransferSyntaxesNotSupported, transferSyntax: TS.ImplicitVRLittleEndian });
      continue;
    }
    decisions.push({ id: pc.id, result: ContextResult.Acceptance, transferSyntax: chosen });
    accepted.set(pc.id, { id: pc.id, abstractSyntax: pc.abstractSyntax, transferSyntax: chosen });
  }
  return { kind: 'accept', decisions, accepted, roles };
}

/** Normalise an IPv4-mapped IPv6 address so that "::ffff:127.0.0.1" matches "127.0.0.1". */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function callerAllowed(callers: readonly CallerConfig[], callingAe: string, remoteAddress: string): boolean {
  const addr = normalizeAddress(remoteAddress);
  return callers.some((c) => (c.aeTitle === '*' || c.aeTitle === callingAe) && (c.host === undefined || normalizeAddress(c.host) === addr));
}

function reject(result: number, source: number, reason: number, code: RejectCode, why: string): Decision {
  return { kind: 'reject', result, source, reason, code, why };
}
