import { describe, expect, it } from 'vitest';
import { isDiskFull, PacsEdgeError, SpoolFullError } from '../../src/errors.js';
import { toOutcome } from '../../src/receive/store-reception.js';
import { Status } from '../../src/dicom/status.js';

describe('errors: disk-full detection and the C-STORE status each error earns', () => {
  it('recognises ENOSPC/EDQUOT, also when LevelDB wraps the OS message in a cause', () => {
    expect(isDiskFull(Object.assign(new Error('write failed'), { code: 'ENOSPC' }))).toBe(true);
    expect(isDiskFull(Object.assign(new Error('quota'), { code: 'EDQUOT' }))).toBe(true);
    const level = Object.assign(new Error('Write failed'), { code: 'LEVEL_IO_ERROR', cause: new Error('IO error: /spool/index/000005.log: No space left on device') });
    expect(isDiskFull(level)).toBe(true);
    expect(isDiskFull(Object.assign(new Error('denied'), { code: 'EACCES' }))).toBe(false);
    expect(isDiskFull(undefined)).toBe(false);
  });

  it('maps spool-full and disk-full to 0xA700, anything unexpected to 0x0110 with the code only', () => {
    expect(toOutcome(new SpoolFullError('full')).status).toBe(Status.OutOfResources.code);
    expect(toOutcome(Object.assign(new Error('x'), { code: 'ENOSPC' })).status).toBe(Status.OutOfResources.code);
    const other = toOutcome(new PacsEdgeError('SOMETHING_ODD', 'odd'));
    expect(other.status).toBe(Status.ProcessingFailure.code);
    expect(other.comment).toBe('internal error SOMETHING_ODD');
  });
});
