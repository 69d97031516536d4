import { describe, expect, it } from 'vitest';
import { CommandField, decodeCommand, encodeCommand, encodeResponse, NO_DATA_SET } from '../../src/dicom/command.js';
import { Status } from '../../src/dicom/status.js';
import { Tag } from '../../src/dicom/tags.js';
import { parseError } from '../helpers/expect-error.js';

/** Walk an Implicit VR LE command set independently of decodeCommand: [tag, value][] in order. */
function rawElements(buf: Buffer): { tag: number; value: Buffer; offset: number }[] {
  const out: { tag: number; value: Buffer; offset: number }[] = [];
  let off = 0;
  while (off < buf.length) {
    const tag = ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
    const len = buf.readUInt32LE(off + 4);
    out.push({ tag, value: buf.subarray(off + 8, off + 8 + len), offset: off });
    off += 8 + len;
  }
  expect(off).toBe(buf.length);
  return out;
}


const CT = '1.2.840.10008.5.1.4.1.1.2'; // 25 chars: odd, needs padding
const INSTANCE = '1.2.826.0.1.3680043.2.1125.99'; // 29 chars: odd

describe('encodeResponse → decodeCommand', () => {
  const buf = encodeResponse({
    commandField: CommandField.CStoreRsp,
    messageIdBeingRespondedTo: 4242,
    status: Status.OutOfResources.code,
    affectedSopClassUid: CT,
    affectedSopInstanceUid: INSTANCE,
    errorComment: 'spool full',
  });
  const cmd = decodeCommand(buf);

  it('round-trips the C-STORE-RSP fields', () => {
    expect(cmd.commandField).toBe(0x8001);
    expect(cmd.us(Tag.MessageIdBeingRespondedTo)).toBe(4242);
    expect(cmd.us(Tag.Status)).toBe(0xa700);
    expect(cmd.affectedSopClassUid).toBe(CT);
    expect(cmd.affectedSopInstanceUid).toBe(INSTANCE);
    expect(cmd.str(Tag.ErrorComment)).toBe('spool full');
    // A response carries no data set.
    expect(cmd.us(Tag.CommandDataSetType)).toBe(NO_DATA_SET);
    expect(cmd.hasDataSet).toBe(false);
    // Not present in a response.
    expect(cmd.messageId).toBeUndefined();
    expect(cmd.has(Tag.MessageId)).toBe(false);
  });

  it('starts with (0000,0000) UL whose value is the number of bytes that follow it', () => {
    const els = rawElements(buf);
    expect(els[0]!.tag).toBe(Tag.CommandGroupLength);
    expect(els[0]!.offset).toBe(0);
    expect(els[0]!.value.length).toBe(4);
    expect(els[0]!.value.readUInt32LE(0)).toBe(buf.length - 12);
    expect(decodeCommand(buf).has(Tag.CommandGroupLength)).toBe(true);
  });

  it('writes elements in ascending tag order, group 0000 only, all of even length', () => {
    const els = rawElements(buf);
    const tags = els.map((e) => e.tag);
    expect(tags).toEqual([
      Tag.CommandGroupLength,
      Tag.AffectedSopClassUid,
      Tag.CommandField,
      Tag.MessageIdBeingRespondedTo,
      Tag.CommandDataSetType,
      Tag.Status,
      Tag.ErrorComment,
      Tag.AffectedSopInstanceUid,
    ]);
    for (const e of els) {
      expect(e.tag >>> 16).toBe(0);
      expect(e.value.length % 2).toBe(0);
    }
  });

  it('pads odd-length UIs with one trailing NUL', () => {
    const els = new Map(rawElements(buf).map((e) => [e.tag, e.value]));
    const cls = els.get(Tag.AffectedSopClassUid)!;
    expect(cls.length).toBe(CT.length + 1);
    expect(cls.toString('latin1', 0, CT.length)).toBe(CT);
    expect(cls[cls.length - 1]).toBe(0x00);
    const inst = els.get(Tag.AffectedSopInstanceUid)!;
    expect(inst.length).toBe(INSTANCE.length + 1);
    expect(inst[inst.length - 1]).toBe(0x00);
  });

  it('leaves even-length UIs unpadded', () => {
    const uid = '1.2.840.10008.1.1.20'; // 20 characters
    expect(uid.length % 2).toBe(0);
    const b = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 1, status: 0, affectedSopInstanceUid: uid });
    const v = new Map(rawElements(b).map((e) => [e.tag, e.value])).get(Tag.AffectedSopInstanceUid)!;
    expect(v.toString('latin1')).toBe(uid);
  });

  it('pads an odd LO error comment with a space, not a NUL', () => {
    const b = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 1, status: 0xc002, errorComment: 'odd' });
    const v = new Map(rawElements(b).map((e) => [e.tag, e.value])).get(Tag.ErrorComment)!;
    expect(v.toString('latin1')).toBe('odd ');
    expect(decodeCommand(b).str(Tag.ErrorComment)).toBe('odd');
  });

  it('truncates an error comment longer than 64 characters (LO) to 64', () => {
    const long = 'x'.repeat(63) + 'YZ' + 'w'.repeat(40);
    const b = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 1, status: 0xc002, errorComment: long });
    const v = new Map(rawElements(b).map((e) => [e.tag, e.value])).get(Tag.ErrorComment)!;
    expect(v.length).toBe(64);
    expect(v.toString('latin1')).toBe(long.slice(0, 64));
    expect(decodeCommand(b).str(Tag.ErrorComment)).toBe(`${'x'.repeat(63)}Y`);
  });

  it('truncates to 64 and then pads when needed: 65 chars → 64 (even, no pad)', () => {
    const b = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 1, status: 0xc000, errorComment: 'a'.repeat(65) });
    const v = new Map(rawElements(b).map((e) => [e.tag, e.value])).get(Tag.ErrorComment)!;
    expect(v.length).toBe(64);
  });

  it('omits optional elements that are not given (C-ECHO-RSP)', () => {
    const b = encodeResponse({ commandField: CommandField.CEchoRsp, messageIdBeingRespondedTo: 7, status: Status.Success.code });
    const tags = rawElements(b).map((e) => e.tag);
    expect(tags).toEqual([Tag.CommandGroupLength, Tag.CommandField, Tag.MessageIdBeingRespondedTo, Tag.CommandDataSetType, Tag.Status]);
    // 12 group length + 4 × (8 header + 2 US)
    expect(b.length).toBe(12 + 4 * 10);
    const c = decodeCommand(b);
    expect(c.commandField).toBe(0x8030);
    expect(c.us(Tag.Status)).toBe(0);
    expect(c.affectedSopClassUid).toBeUndefined();
    expect(c.str(Tag.ErrorComment)).toBeUndefined();
  });

  it('encodes US values as 16-bit little endian (message id 0xFFFF)', () => {
    const b = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 0xffff, status: 0xff01 });
    const v = new Map(rawElements(b).map((e) => [e.tag, e.value]));
    expect([...v.get(Tag.MessageIdBeingRespondedTo)!]).toEqual([0xff, 0xff]);
    expect([...v.get(Tag.Status)!]).toEqual([0x01, 0xff]);
    expect([...v.get(Tag.CommandField)!]).toEqual([0x01, 0x80]);
  });
});

describe('encodeCommand / Command accessors', () => {
  it('round-trips a C-STORE-RQ with a data set, AE with padding, UL', () => {
    const b = encodeCommand([
      { tag: Tag.MoveOriginatorAeTitle, vr: 'AE', value: 'MOD1' },
      { tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: INSTANCE },
      { tag: Tag.CommandField, vr: 'US', value: CommandField.CStoreRq },
      { tag: Tag.MessageId, vr: 'US', value: 3 },
      { tag: Tag.Priority, vr: 'US', value: 0 },
      { tag: Tag.CommandDataSetType, vr: 'US', value: 0x0000 },
      { tag: Tag.AffectedSopClassUid, vr: 'UI', value: CT },
    ]);
    const c = decodeCommand(b);
    expect(c.commandField).toBe(CommandField.CStoreRq);
    expect(c.messageId).toBe(3);
    expect(c.hasDataSet).toBe(true);
    expect(c.affectedSopClassUid).toBe(CT);
    expect(c.affectedSopInstanceUid).toBe(INSTANCE);
    expect(c.str(Tag.MoveOriginatorAeTitle)).toBe('MOD1');
    // Tags come out sorted even though they went in unsorted.
    const tags = rawElements(b).map((e) => e.tag);
    expect(tags).toEqual([...tags].sort((a, z) => a - z));
  });

  it('str() strips trailing NUL/space and leading spaces', () => {
    const raw = Buffer.concat([el(Tag.MoveOriginatorAeTitle, Buffer.from('  STORESCU  \0', 'latin1'))]);
    expect(decodeCommand(raw).str(Tag.MoveOriginatorAeTitle)).toBe('STORESCU');
  });

  it('hasDataSet is false when (0000,0800) is absent or 0x0101', () => {
    expect(decodeCommand(el(Tag.CommandField, u16(1))).hasDataSet).toBe(false);
    expect(decodeCommand(el(Tag.CommandDataSetType, u16(0x0101))).hasDataSet).toBe(false);
    expect(decodeCommand(el(Tag.CommandDataSetType, u16(0x0102))).hasDataSet).toBe(true);
  });

  it('us() is undefined for a value shorter than 2 bytes', () => {
    expect(decodeCommand(el(Tag.MessageId, Buffer.alloc(0))).messageId).toBeUndefined();
    expect(decodeCommand(el(Tag.MessageId, Buffer.from([5]))).messageId).toBeUndefined();
  });

  it('decodes an empty buffer to an empty command', () => {
    const c = decodeCommand(Buffer.alloc(0));
    expect(c.commandField).toBeUndefined();
    expect(c.has(Tag.CommandGroupLength)).toBe(false);
  });
});

describe('decodeCommand errors', () => {
  const good = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: 1, status: 0, affectedSopInstanceUid: INSTANCE });

  it('rejects a command cut inside any element (header or value) with COMMAND_TRUNCATED', () => {
    const boundaries = new Set(rawElements(good).map((e) => e.offset));
    boundaries.add(good.length);
    for (let cut = 1; cut < good.length; cut++) {
      const part = good.subarray(0, cut);
      if (boundaries.has(cut)) {
        expect(() => decodeCommand(part), `cut ${cut}`).not.toThrow();
      } else {
        const err = parseError(() => decodeCommand(part));
        expect(err.code, `cut ${cut}`).toBe('COMMAND_TRUNCATED');
        expect(err.retryable).toBe(false);
      }
    }
  });

  it('rejects an element whose length runs past the end', () => {
    const b = Buffer.from(el(Tag.AffectedSopInstanceUid, Buffer.from('1.2.3.4', 'latin1')));
    b.writeUInt32LE(100, 4);
    const err = parseError(() => decodeCommand(b));
    expect(err.code).toBe('COMMAND_TRUNCATED');
    expect(err.message).toContain('(0000,1000)');
  });

  it('rejects an element of a group other than 0000 with COMMAND_MALFORMED', () => {
    const b = Buffer.concat([good, el(0x00080018, Buffer.from('1.2', 'latin1'))]);
    const err = parseError(() => decodeCommand(b));
    expect(err.code).toBe('COMMAND_MALFORMED');
    expect(err.message).toContain('(0008,0018)');
    // A data set accidentally sent on the command context (group 0002 / 0008) is refused even first.
    const err2 = parseError(() => decodeCommand(el(0x00020010, Buffer.from('1.2.840.10008.1.2\0', 'latin1'))));
    expect(err2.code).toBe('COMMAND_MALFORMED');
  });

  it('rejects an Explicit VR encoded command (VR bytes read as a huge length / bad group)', () => {
    // (0000,0100) US 2 in Explicit VR LE: 00 00 00 01 'U' 'S' 02 00 01 00
    const explicit = Buffer.from([0x00, 0x00, 0x00, 0x01, 0x55, 0x53, 0x02, 0x00, 0x01, 0x00]);
    const err = parseError(() => decodeCommand(explicit));
    expect(err.code).toBe('COMMAND_TRUNCATED');
  });
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

function el(tag: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}

describe('Command.malformed (found by the fuzzer: such C-STORE-RQs were answered Success)', () => {
  const store = () =>
    encodeCommand([
      { tag: Tag.AffectedSopClassUid, vr: 'UI', value: CT },
      { tag: Tag.CommandField, vr: 'US', value: CommandField.CStoreRq },
      { tag: Tag.MessageId, vr: 'US', value: 7 },
      { tag: Tag.Priority, vr: 'US', value: 0 },
      { tag: Tag.CommandDataSetType, vr: 'US', value: 0 },
      { tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: INSTANCE },
    ]);

  it('is undefined for a well-formed command set', () => {
    expect(decodeCommand(store()).malformed).toBeUndefined();
  });

  it('names a Command Group Length that does not match the bytes after it', () => {
    for (const lie of [0, 2, 0xffffffff]) {
      const buf = store();
      buf.writeUInt32LE(lie, 8);
      expect(decodeCommand(buf).malformed, String(lie)).toMatch(/group length/);
    }
  });

  it('names a US element that is not 2 bytes long', () => {
    const buf = store();
    const el = rawElements(buf).find((e) => e.tag === Tag.Priority)!;
    // Priority of 4 bytes: the same bytes, one more element's worth of length.
    const widened = Buffer.concat([buf.subarray(0, el.offset + 4), Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), buf.subarray(el.offset + 10)]);
    widened.writeUInt32LE(widened.length - 12, 8);
    expect(decodeCommand(widened).malformed).toMatch(/\(0000,0700\) is 4 bytes/);
  });
});
