import { describe, expect, it } from 'vitest';
import { DicomParseError } from '../../../src/errors.js';
import { encodePDataHeader, maxFragment, PdvAssembler, PdvControl, pdvControl } from '../../../src/dicom/ul/pdv.js';

/** An assembler that records what it hands up. */
function assembler(maxCommandBytes = 64) {
  const got: string[] = [];
  const a = new PdvAssembler(
    {
      onCommand: (ctx, cmd) => got.push(`command ${ctx} ${cmd.toString()}`),
      onData: (ctx, data) => got.push(`data ${ctx} ${data.toString()}`),
      onDataEnd: (ctx) => got.push(`end ${ctx}`),
    },
    maxCommandBytes,
  );
  const pdv = (ctx: number, control: number, text: string) => {
    a.start(ctx, control);
    if (text) a.data(Buffer.from(text));
    a.end();
  };
  return { a, got, pdv };
}

describe('message control header (PS3.8 Annex E.2)', () => {
  it('names the bits', () => {
    expect(pdvControl(true, true)).toBe(PdvControl.Command | PdvControl.Last);
    expect(pdvControl(false, false)).toBe(0);
    expect(PdvControl.Reserved & (PdvControl.Command | PdvControl.Last)).toBe(0);
  });

  it('a P-DATA-TF header carries the lengths of the PDU and of its one PDV', () => {
    const h = encodePDataHeader(5, 3, 100);
    expect([h[0], h.readUInt32BE(2), h.readUInt32BE(6), h[10], h[11]]).toEqual([0x04, 106, 102, 5, 3]);
  });

  it('fragments fit the peer maximum; 0 means no limit', () => {
    expect(maxFragment(16384, 999)).toBe(16378);
    expect(maxFragment(0, 999)).toBe(999);
  });
});

describe('PdvAssembler', () => {
  it('joins command fragments, streams data fragments, and ends each message at its Last bit', () => {
    const { got, pdv } = assembler();
    pdv(1, PdvControl.Command, 'C-STO');
    pdv(1, PdvControl.Command | PdvControl.Last, 'RE');
    pdv(1, 0, 'abc');
    pdv(1, PdvControl.Last, 'de');
    expect(got).toEqual(['command 1 C-STORE', 'data 1 abc', 'data 1 de', 'end 1']);
  });

  it('refuses reserved bits, interleaving, a change of context, and an oversized command', () => {
    const cases: [string, (p: ReturnType<typeof assembler>) => void][] = [
      ['reserved bits', (p) => p.pdv(1, 0x04, 'x')],
      ['command inside a data set', (p) => (p.pdv(1, 0, 'x'), p.pdv(1, 3, 'y'))],
      ['data inside a command', (p) => (p.pdv(1, 1, 'x'), p.pdv(1, 2, 'y'))],
      ['data set moving context', (p) => (p.pdv(1, 0, 'x'), p.pdv(3, 2, 'y'))],
      ['command moving context', (p) => (p.pdv(1, 1, 'x'), p.pdv(3, 3, 'y'))],
      ['command over the limit', (p) => p.pdv(1, 3, 'x'.repeat(65))],
    ];
    for (const [what, run] of cases) expect(() => run(assembler()), what).toThrow(DicomParseError);
  });

  it('an empty non-last command fragment still opens the command set', () => {
    const { got, pdv, a } = assembler();
    pdv(1, PdvControl.Command, '');
    expect(a.idle).toBe(false);
    expect(() => pdv(1, 0, 'x')).toThrow(DicomParseError);
    expect(got).toEqual([]);
  });
});
