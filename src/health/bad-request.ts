import { Code, PacsEdgeError } from '../errors.js';

/** A remote command (MQTT) or control request that is malformed: the caller's fault, answered with why. */
export function badRequest(message: string): PacsEdgeError {
  return new PacsEdgeError(Code.CONTROL_BAD_REQUEST, message, { retryable: false });
}
