import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor } from '../../src/cli/exit-codes.js';
import { Abort } from '../../src/dicom/pdu.js';
import { ERROR_CODES } from '../../src/error-codes.js';
import { Code, DicomParseError, isDiskFull, PacsEdgeError, SpoolFullError } from '../../src/errors.js';
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
    const other = toOutcome(new PacsEdgeError('HASH_FAILED', 'odd'));
    expect(other.status).toBe(Status.ProcessingFailure.code);
    expect(other.comment).toBe('internal error HASH_FAILED');
  });

  it('answers a parse error with the status its code names in the table', () => {
    expect(toOutcome(new DicomParseError(Code.DATASET_TRUNCATED, 'cut')).status).toBe(Status.CannotUnderstandTruncated.code);
    expect(toOutcome(new DicomParseError(Code.DATASET_MALFORMED, 'bad')).status).toBe(Status.CannotUnderstandMalformed.code);
  });
});

describe('the error code table', () => {
  it('every code names itself, has a meaning, and maps only to statuses, abort reasons and exit codes that exist', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(Code[code as keyof typeof Code]).toBe(code);
      expect(info.meaning.length, code).toBeGreaterThan(10);
      const i = info as { status?: string; abort?: string; exit?: string };
      if (i.status) expect(Status[i.status as keyof typeof Status], code).toBeDefined();
      if (i.abort) expect(Abort.Reason[i.abort as keyof typeof Abort.Reason], code).toBeDefined();
      if (i.exit) expect(EXIT[i.exit as keyof typeof EXIT], code).toBeGreaterThan(1);
    }
  });

  it('an error is retryable as its code says unless the thrower knows better', () => {
    expect(new PacsEdgeError(Code.CONNECT_FAILED, 'x').retryable).toBe(true);
    expect(new PacsEdgeError(Code.SPOOL_CORRUPT, 'x').retryable).toBe(false);
    expect(new PacsEdgeError(Code.ASSOCIATION_REJECTED, 'x', { retryable: true }).retryable).toBe(true);
  });

  it('sets the exit code of a command from the table', () => {
    expect(exitCodeFor(new PacsEdgeError(Code.SPOOL_KEY_MISMATCH, 'x'))).toBe(EXIT.spoolKey);
    expect(exitCodeFor(new PacsEdgeError(Code.SPOOL_LOCKED, 'x'))).toBe(EXIT.spoolBusy);
    expect(exitCodeFor(new PacsEdgeError(Code.CONFIG_INVALID, 'x'))).toBe(EXIT.failed);
    expect(exitCodeFor(new Error('x'))).toBe(EXIT.failed);
  });

  it('src/ compares no code of the table as a string literal (Code.X: a typo would not compile) and sniffs no reason by its prefix', () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
    const codes = new Set(Object.keys(ERROR_CODES));
    const compared = /(?:[!=]==?\s*|case\s+)['"`]([A-Z][A-Z0-9_]+)['"`]|['"`]([A-Z][A-Z0-9_]+)['"`]\s*[!=]==?/g;
    const sniffed = /\.startsWith\(\s*['"`](corrupt|error|failed|refused)/;
    const found: string[] = [];
    // error-codes.ts is the table itself (its TSDoc shows what Code.X equals).
    for (const f of readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.ts') && x !== 'error-codes.ts')) {
      readFileSync(path.join(src, f), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const m of line.matchAll(compared)) if (codes.has(m[1] ?? m[2]!)) found.push(`src/${f}:${i + 1}: ${line.trim()}`);
          if (sniffed.test(line)) found.push(`src/${f}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
