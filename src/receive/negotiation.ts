import type { CallerConfig, GatewayConfig } from '../config/types.js';
import { isKnownStorageSopClass, VERIFICATION_SOP_CLASS } from '../dicom/sop-classes.js';
import { transferSyntax, TS } from '../dicom/transfer-syntaxes.js';
import { APPLICATION_CONTEXT_NAME, isValidUid } from '../dicom/uids.js';
import { type AssociateRq, type ContextDecision, ContextResult, Reject } from '../dicom/pdu.js';

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

export type Decision =
  | { kind: 'reject'; result: number; source: number; reason: number; why: string }
  | { kind: 'accept'; decisions: ContextDecision[]; accepted: Map<number, AcceptedContext> };

type ReceivePolicy = Pick<GatewayConfig['receive'], 'aeTitle' | 'callers' | 'unknownSopClasses' | 'transferSyntaxes'>;

/** Syntaxes Verification is accepted with (no data set is ever exchanged). */
const VERIFICATION_SYNTAXES = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian, TS.ExplicitVRBigEndian]);

export function negotiate(rq: AssociateRq, policy: ReceivePolicy, remoteAddress: string): Decision {
  if ((rq.protocolVersion & 0x0001) === 0) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceProviderAcse, Reject.AcseReason.ProtocolVersionNotSupported, `protocol version 0x${rq.protocolVersion.toString(16)} not supported`);
  }
  if (rq.applicationContext !== APPLICATION_CONTEXT_NAME) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.ApplicationContextNameNotSupported, `application context "${rq.applicationContext}" not supported`);
  }
  if (rq.calledAeTitle !== policy.aeTitle) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CalledAeNotRecognized, `called AE title "${rq.calledAeTitle}" is not "${policy.aeTitle}"`);
  }
  if (!callerAllowed(policy.callers, rq.callingAeTitle, remoteAddress)) {
    return reject(Reject.Result.Permanent, Reject.Source.ServiceUser, Reject.UserReason.CallingAeNotRecognized, `calling AE title "${rq.callingAeTitle}" from ${remoteAddress} is not in receive.callers`);
  }

  const decisions: ContextDecision[] = [];
  const accepted = new Map<number, AcceptedContext>();
  for (const pc of rq.contexts) {
    const verification = pc.abstractSyntax === VERIFICATION_SOP_CLASS;
    const storage = !verification && isKnownStorageSopClass(pc.abstractSyntax);
    const allowedUnknown = !verification && !storage && policy.unknownSopClasses === 'accept' && isValidUid(pc.abstractSyntax);
    if (!verification && !storage && !allowedUnknown) {
      decisions.push({ id: pc.id, result: ContextResult.AbstractSyntaxNotSupported, transferSyntax: TS.ImplicitVRLittleEndian });
      continue;
    }
    const chosen = pc.transferSyntaxes.find((ts) =>
      verification ? VERIFICATION_SYNTAXES.has(ts) : transferSyntax(ts) !== undefined && (policy.transferSyntaxes === 'all' || policy.transferSyntaxes.includes(ts)),
    );
    if (!chosen) {
      decisions.push({ id: pc.id, result: ContextResult.TransferSyntaxesNotSupported, transferSyntax: TS.ImplicitVRLittleEndian });
      continue;
    }
    decisions.push({ id: pc.id, result: ContextResult.Acceptance, transferSyntax: chosen });
    accepted.set(pc.id, { id: pc.id, abstractSyntax: pc.abstractSyntax, transferSyntax: chosen });
  }
  return { kind: 'accept', decisions, accepted };
}

/** Normalise an IPv4-mapped IPv6 address so that "::ffff:127.0.0.1" matches "127.0.0.1". */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function callerAllowed(callers: readonly CallerConfig[], callingAe: string, remoteAddress: string): boolean {
  const addr = normalizeAddress(remoteAddress);
  return callers.some((c) => (c.aeTitle === '*' || c.aeTitle === callingAe) && (c.host === undefined || normalizeAddress(c.host) === addr));
}

function reject(result: number, source: number, reason: number, why: string): Decision {
  return { kind: 'reject', result, source, reason, why };
}
