import { codeInfo } from '../../error-codes.js';
import { DicomParseError, PacsEdgeError } from '../../errors.js';
import { Abort, type AssociateAc, type AssociateRq } from '../pdu.js';
import { type Action, type Event, EVENTS, type State, STATES } from './fsm.js';
import type { MessageSink } from './pdv.js';

/**
 * What passes between the upper layer provider and its user: the indications and
 * confirmations it issues, why an association ended, and the error for a primitive issued in
 * the wrong state.
 *
 * @see PS3.8 §7 (service primitives), §9.3.8 and Table 9-26 (A-ABORT source and reason)
 */

/** Why an association ended other than by release. */
export interface AbortInfo {
  /**
   * - `peer`: the peer sent an A-ABORT (AA-3);
   * - `protocol`: the peer sent something unrecognised, invalid or out of place, and we sent an
   *   A-ABORT (AA-1 before the association exists, AA-7/AA-8 after);
   * - `local`: our own user aborted (AA-1 on Evt15), e.g. a timeout or an internal error;
   * - `transport`: the connection closed or failed under us (AA-4).
   */
  readonly kind: 'peer' | 'protocol' | 'local' | 'transport';
  /** A-ABORT source and reason, as received (`peer`) or as sent (`protocol`, `local`). */
  readonly source?: number;
  readonly reason?: number;
  /** What was wrong with the peer's bytes (`protocol`), or the socket's error (`transport`). */
  readonly error?: Error;
}

/**
 * The indications and confirmations the provider issues to its user (PS3.8 §7). Every one is
 * optional: the acceptor and the requestor each use the half that concerns them. An exception
 * thrown by a callback is the user's failure: a {@link DicomParseError} (the peer's message
 * broke a DIMSE rule) is handled as Evt19, anything else as a local abort.
 */
export interface UpperLayerUser extends Partial<MessageSink> {
  /** AE-6: an acceptable A-ASSOCIATE-RQ; answer with accept() (Evt7) or reject() (Evt8). */
  onAssociateRequest?(rq: AssociateRq): void;
  /** AE-3 */
  onAssociateAccept?(ac: AssociateAc): void;
  /** AE-4 */
  onAssociateReject?(rj: { result: number; source: number; reason: number }): void;
  /** AR-2, and AR-8 (release collision): answer with releaseResponse() (Evt14) once done. */
  onReleaseRequest?(): void;
  /** AR-3 and AR-10 */
  onReleaseConfirm?(): void;
  /** AA-1, AA-3, AA-4, AA-7, AA-8: why the association (or its establishment) is over. */
  onAbort?(info: AbortInfo): void;
  /** The transport connection is closed: the machine is back in Sta1 for good. */
  onClosed?(): void;
  /** A whole PDU or PDV arrived (what counts as the peer's activity for an idle timer). */
  onActivity?(): void;
}

export interface UpperLayerOptions {
  readonly role: 'acceptor' | 'requestor';
  /** ARTIM timer (PS3.8 §9.1.5): awaiting an A-ASSOCIATE-RQ, and awaiting the close in Sta13. */
  readonly artimSeconds: number;
  /**
   * ARTIM after we sent an A-ABORT (AA-1, AA-8): PS3.8 leaves the value to the implementation.
   * A peer that was aborted for silence or garbage is not likely to close promptly, and its
   * connection counts against the association limit: the acceptor waits less than a full ARTIM.
   */
  readonly abortArtimSeconds?: number | undefined;
  /** Largest P-DATA-TF accepted: our advertised maximum, with room for a peer that ignores it. */
  readonly maxPDataLength: number;
  /** Largest other PDU accepted (an A-ASSOCIATE-RQ with many contexts is the largest). */
  readonly maxControlPduLength: number;
  /** Largest command set accepted. */
  readonly maxCommandBytes: number;
  /** Every transition, for tests and debugging. */
  readonly onTransition?: ((t: { from: State; event: Event; action: Action; to: State }) => void) | undefined;
}

/** Thrown when the local user issues a primitive that the current state does not allow. */
export class PrimitiveNotAllowed extends Error {
  constructor(
    readonly event: Event,
    readonly state: State,
  ) {
    super(`${EVENTS[event]} is not allowed in ${state}: ${STATES[state]}`);
    this.name = 'PrimitiveNotAllowed';
  }
}

/** The A-ABORT reason for bytes that are wrong (PS3.8 Table 9-26). */
export function abortReason(event: Event, error: Error | undefined): number {
  if (event !== 'Evt19') return Abort.Reason.UnexpectedPdu;
  const code = error instanceof PacsEdgeError ? error.code : undefined;
  return Abort.Reason[(code && codeInfo(code).abort) || 'InvalidPduParameterValue'];
}

/** A PDU out of place, as an error for the abort indication and the log. */
export function outOfPlace(event: Event, state: State): DicomParseError {
  return new DicomParseError('PDU_UNEXPECTED', `${EVENTS[event]} in ${state}`);
}

