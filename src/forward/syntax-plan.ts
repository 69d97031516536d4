import { COMPRESSION_SYNTAX, type Compression, DECODABLE } from '../compress/transcode.js';
import { TS } from '../dicom/transfer-syntaxes.js';

/**
 * Which transfer syntaxes the forwarder proposes for an object stored in `stored`, in the
 * order it prefers them, and how it gets each one from the spooled file.
 *
 * - the destination's lossless compression first (when the object was received uncompressed,
 *   in Explicit or Implicit VR Little Endian);
 * - with `compression: none`, the syntax it was received in (if the spool compressed it at rest);
 * - the stored syntax (sent byte for byte);
 * - Explicit and Implicit VR Little Endian, decoded and/or VR-converted (see transcode.ts `uncompressed`).
 *
 * Each syntax gets its own presentation context, so the destination accepts or refuses each,
 * and the choice is made object by object: an object that cannot be compressed (no pixel
 * data, float pixels…) goes in the stored syntax on the same association.
 *
 * @see PS3.8 §9.3.2.2 (one abstract syntax, its transfer syntaxes, per presentation context)
 */
export type Step = { ts: string; how: 'as-stored' } | { ts: string; how: 'encode'; compression: Exclude<Compression, 'none'> } | { ts: string; how: 'decode' };

const UNCOMPRESSED: readonly string[] = [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian];

export function syntaxPlan(stored: string, compression: Compression, received: string = stored): Step[] {
  const plan: Step[] = [];
  const add = (step: Step) => {
    if (!plan.some((p) => p.ts === step.ts)) plan.push(step);
  };
  // Readable as uncompressed data: stored uncompressed LE, or decodable.
  const readable = UNCOMPRESSED.includes(stored) || DECODABLE.has(stored);
  // An object received uncompressed (whatever the spool holds now, see at-rest.ts) can go in
  // the destination's compression, encoded from the stored form (decoded first if need be).
  if (compression !== 'none' && UNCOMPRESSED.includes(received) && readable) {
    const target = COMPRESSION_SYNTAX[compression];
    add(stored === target ? { ts: target, how: 'as-stored' } : { ts: target, how: 'encode', compression });
  }
  // No compression wanted: the syntax it was received in comes first (decoding gives back its exact bytes).
  if (compression === 'none' && received !== stored && UNCOMPRESSED.includes(received) && readable) add({ ts: received, how: 'decode' });
  add({ ts: stored, how: 'as-stored' });
  // Last resorts for a destination that takes only uncompressed data, or only one VR encoding.
  if (readable) for (const ts of UNCOMPRESSED) add({ ts, how: 'decode' });
  return plan;
}
