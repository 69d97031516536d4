import { codeInfo } from '../error-codes.js';
import { PacsEdgeError } from '../errors.js';

/**
 * Exit codes of every `pacs-edge` command, documented in docs/operations.md ("Exit codes") and used by the
 * systemd unit (`RestartPreventExitStatus=`): a restart cannot fix a wrong key or a tampered
 * installation, so the unit stays down and says why instead of looping.
 */
export const EXIT = {
  ok: 0,
  /** Failed: the message says why (a taken port, an unreadable file, a refused request). */
  failed: 1,
  /** Usage: an unknown command or option, a missing argument. */
  usage: 2,
  /** `audit verify`: the audit trail is not intact. */
  auditNotIntact: 3,
  /** The installation failed its integrity check (security.integrity: enforce). */
  integrity: 4,
  /** The device key is missing, or opens none of the spool's sealed objects: nothing was changed. */
  spoolKey: 5,
  /** The spool is in use by another process (a gateway starting or stopping, another command), or its index is missing. */
  spoolBusy: 6,
  /** The spool or the audit trail was written by a newer release (a downgrade too far): nothing was changed. */
  formatNewer: 7,
  /** The caller's role may not run this command (or the caller has no role): nothing was done. */
  roleDenied: 8,
} as const;

/** The exit code for an error that ended a command or a start: the `exit` of its code in the error table. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof PacsEdgeError)) return EXIT.failed;
  const exit = codeInfo(err.code).exit;
  return exit === undefined ? EXIT.failed : EXIT[exit];
}
