import { describe, expect, it } from 'vitest';
import { AcceptedSyntaxes, sendsAsStored } from '../../src/forward/accepted-syntaxes.js';
import { spoolUnderPressure } from '../../src/compress/at-rest.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const proposed = [TS.JPEGLSLossless, TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian].map((ts, i) => ({ id: 2 * i + 1, abstractSyntax: CT, transferSyntaxes: [ts] }));

function after(accepted: string[]): AcceptedSyntaxes {
  const a = new AcceptedSyntaxes();
  a.note(proposed, (_sop, ts) => accepted.includes(ts));
  return a;
}

describe('whether an object compressed at rest goes to a destination as stored', () => {
  const ask = (accepted: AcceptedSyntaxes, compression: 'none' | 'jpeg-ls' | 'htj2k', sopClassUid = CT) =>
    sendsAsStored({ sopClassUid, received: TS.ExplicitVRLittleEndian, atRest: TS.JPEGLSLossless, compression, accepted });

  it('nothing known yet (no association since start): yes for a destination that wants JPEG-LS (compressing stays the default)', () => {
    expect(ask(new AcceptedSyntaxes(), 'jpeg-ls')).toBe(true);
  });
  it('a destination that accepted JPEG-LS on its last association: yes', () => {
    expect(ask(after([TS.JPEGLSLossless, TS.ExplicitVRLittleEndian]), 'jpeg-ls')).toBe(true);
  });
  it('a destination that accepted uncompressed syntaxes only: no (every send would decode it)', () => {
    expect(ask(after([TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian]), 'jpeg-ls')).toBe(false);
  });
  it('a SOP class never proposed follows what the destination took for the others', () => {
    expect(ask(after([TS.ExplicitVRLittleEndian]), 'jpeg-ls', MR)).toBe(false);
    expect(ask(after([TS.JPEGLSLossless]), 'jpeg-ls', MR)).toBe(true);
  });
  it('compression: none sends what the modality sent (decoded): never', () => {
    expect(ask(new AcceptedSyntaxes(), 'none')).toBe(false);
    expect(ask(after([TS.JPEGLSLossless, TS.ExplicitVRLittleEndian]), 'none')).toBe(false);
  });
  it('a destination preferring HTJ2K, which it accepts, would re-encode: no; one that refused HTJ2K but took JPEG-LS: yes', () => {
    const both = new AcceptedSyntaxes();
    both.note([{ abstractSyntax: CT, transferSyntaxes: [TS.HTJ2KLossless] }, ...proposed], () => true);
    expect(ask(both, 'htj2k')).toBe(false);
    const jlsOnly = new AcceptedSyntaxes();
    jlsOnly.note([{ abstractSyntax: CT, transferSyntaxes: [TS.HTJ2KLossless] }, ...proposed], (_s, ts) => ts !== TS.HTJ2KLossless);
    expect(ask(jlsOnly, 'htj2k')).toBe(true);
  });
  it('a later association replaces what was known of a SOP class', () => {
    const a = after([TS.JPEGLSLossless]);
    a.note(proposed, (_s, ts) => ts === TS.ExplicitVRLittleEndian);
    expect(ask(a, 'jpeg-ls')).toBe(false);
  });
});

describe('disk pressure', () => {
  const MiB = 1024 * 1024;
  it('the spool at half of spool.maxBytes or more', () => {
    expect(spoolUnderPressure({ spoolBytes: 50 * MiB, freeBytes: 10_000 * MiB, maxBytes: 100 * MiB, minFreeBytes: 64 * MiB })).toBe(true);
    expect(spoolUnderPressure({ spoolBytes: 49 * MiB, freeBytes: 10_000 * MiB, maxBytes: 100 * MiB, minFreeBytes: 64 * MiB })).toBe(false);
  });
  it('free space under four times spool.minFreeBytes (no maxBytes)', () => {
    expect(spoolUnderPressure({ spoolBytes: 1, freeBytes: 255 * MiB, maxBytes: 0, minFreeBytes: 64 * MiB })).toBe(true);
    expect(spoolUnderPressure({ spoolBytes: 1, freeBytes: 257 * MiB, maxBytes: 0, minFreeBytes: 64 * MiB })).toBe(false);
  });
});
