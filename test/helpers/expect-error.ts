import { expect } from 'vitest';
import { DicomParseError } from '../../src/errors.js';

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
