import { COMPRESSION_SYNTAX, type Compression, DECODABLE } from '../compress/transcode.js';
import { TS } from '../dicom/transfer-syntaxes.js';

/**
 * Which transfer syntaxes the forwarder proposes for an object stored in `stored`, in the
 * order it prefers them, and how it gets each one from the spooled file.
 *
 * - the destination's lossless compression first (when the object was received uncompressed);
 * - with `compression: none`, the syntax it was received in (if the spool compressed it at rest);
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

export function syntaxPlan(stored: string, compression: Compression, received: string = stored): Step[] {
  const plan: Step[] = [];
  const add = (step: Step) => {
    if (!plan.some((p) => p.ts === step.ts)) plan.push(step);
  };
  // An object received uncompressed (whatever the spool holds now, see at-rest.ts) can go in
  // the destination's compression, encoded from the stored form (decoded first if need be).
  if (compression !== 'none' && received === TS.ExplicitVRLittleEndian) add({ ts: COMPRESSION_SYNTAX[compression], how: stored === COMPRESSION_SYNTAX[compression] ? 'as-stored' : 'encode', compression } as Step);
  // No compression wanted: the syntax it was received in comes first (decoding gives back its exact bytes).
  if (compression === 'none' && received !== stored && received === TS.ExplicitVRLittleEndian && DECODABLE.has(stored)) add({ ts: received, how: 'decode' });
  add({ ts: stored, how: 'as-stored' });
  if (DECODABLE.has(stored)) add({ ts: TS.ExplicitVRLittleEndian, how: 'decode' });
  return plan;
}
