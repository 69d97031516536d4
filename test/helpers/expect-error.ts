import { expect } from 'vitest';
import { DicomParseError, PacsEdgeError } from '../../src/errors.js';

/** Run `fn`, expect it to throw a DicomParseError, and return it for further assertions. */
export function parseError(fn: () => unknown): DicomParseError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DicomParseError);
    return e as DicomParseError;
  }
  return expect.fail('expected a DicomParseError');
}

/** Await `p`, expect it to reject with a PacsEdgeError of `code`, and return it for further assertions. */
export async function expectPacsEdgeError(p: Promise<unknown>, code: string): Promise<PacsEdgeError> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(PacsEdgeError);
    expect((e as PacsEdgeError).code, (e as Error).message).toBe(code);
    return e as PacsEdgeError;
  }
  return expect.fail(`expected a PacsEdgeError ${code}`);
}
