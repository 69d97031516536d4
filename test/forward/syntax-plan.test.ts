import { describe, expect, it } from 'vitest';
import { syntaxPlan } from '../../src/forward/syntax-plan.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';

/**
 * What the forwarder proposes for an object held in a compressed syntax: the stored syntax first
 * (sent byte for byte), then Explicit and Implicit VR Little Endian decoded on the codec workers
 * for a destination that takes only uncompressed data (issue 17). Never a compression: a lossy
 * source is not re-encoded, and nothing is lossy-compressed.
 */
describe('syntaxPlan for objects received compressed', () => {
  const decodable = [
    TS.JPEGBaseline8Bit,
    TS.JPEGExtended12Bit,
    TS.JPEGLosslessProcess14,
    TS.JPEGLossless,
    TS.JPEGLSLossless,
    TS.JPEGLSNearLossless,
    TS.JPEG2000Lossless,
    TS.JPEG2000,
    TS.HTJ2KLossless,
    TS.HTJ2KLosslessRPCL,
    TS.HTJ2K,
    TS.RLELossless,
  ];
  for (const stored of decodable) {
    for (const compression of ['none', 'jpeg-ls', 'htj2k'] as const) {
      it(`${stored}, compression ${compression}: as stored, then decoded to Explicit and Implicit VR LE`, () => {
        expect(syntaxPlan(stored, compression)).toEqual([
          { ts: stored, how: 'as-stored' },
          { ts: TS.ExplicitVRLittleEndian, how: 'decode' },
          { ts: TS.ImplicitVRLittleEndian, how: 'decode' },
        ]);
      });
    }
  }

  it('a syntax without a decoder (MPEG-2) is offered only as stored', () => {
    expect(syntaxPlan(TS.MPEG2MPML, 'none')).toEqual([{ ts: TS.MPEG2MPML, how: 'as-stored' }]);
  });
});
