import { COMPRESSION_SYNTAX, type Compression, DECODABLE } from '../compress/transcode.js';
import { TS } from '../dicom/transfer-syntaxes.js';

/**
 * Which transfer syntaxes the forwarder proposes for an object stored in `stored`, in the
 * order it prefers them, and how it gets each one from the spooled file.
 *
 * - the destination's lossless compression first (when the object is stored uncompressed);
 * - the stored syntax (sent byte for byte);
 * - Explicit VR Little Endian, decoded from a lossless compressed syntax the gateway can decode.
 *
 * Each syntax gets its own presentation context, so the destination accepts or refuses each,
 * and the choice is made object by object: an object that cannot be compressed (no pixel
 * data, float pixels…) goes in the stored syntax on the same association.
 *
 * @see PS3.8 §9.3.2.2 (one abstract syntax, its transfer syntaxes, per presentation context)
 */
export type Step = { ts: string; how: 'as-stored' } | { ts: string; how: 'encode'; compression: Exclude<Compression, 'none'> } | { ts: string; how: 'decode' };

export function syntaxPlan(stored: string, compression: Compression): Step[] {
  const plan: Step[] = [];
  if (compression !== 'none' && stored === TS.ExplicitVRLittleEndian) plan.push({ ts: COMPRESSION_SYNTAX[compression], how: 'encode', compression });
  plan.push({ ts: stored, how: 'as-stored' });
  if (DECODABLE.has(stored)) plan.push({ ts: TS.ExplicitVRLittleEndian, how: 'decode' });
  return plan;
}
