import { Code, PacsEdgeError } from '../errors.js';

/**
 * A frame that does not decode, or an image a codec cannot encode: the file's fault, not the
 * gateway's. The object is then kept as received (compression is skipped), never lost.
 */
export function codecFailed(message: string): PacsEdgeError {
  return new PacsEdgeError(Code.CODEC_FAILED, message, { retryable: false });
}
