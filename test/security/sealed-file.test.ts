import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { plainSizeOf, SealedReader, sealBuffer, sealedSize, Sealer, SEGMENT_BYTES, type SealKey, unsealBuffer } from '../../src/security/sealed-file.js';

const keys: SealKey[] = [
  { profile: 'aes-256-gcm', kek: randomBytes(32) },
  { profile: 'gm', kek: randomBytes(48) },
];
const sizes = [0, 1, 1000, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * SEGMENT_BYTES, 3 * SEGMENT_BYTES + 77];

function preadOf(file: Buffer) {
  return async (buf: Buffer, position: number) => file.copy(buf, 0, position, Math.min(file.length, position + buf.length));
}

describe.each(keys)('sealed spool files ($profile)', (key) => {
  it.each(sizes)('round-trips %i bytes, streamed in odd slices, with the predicted size', async (n) => {
    const plain = randomBytes(n);
    const s = new Sealer(key);
    const parts = [s.header];
    for (let off = 0; off < n; off += 7919) parts.push(...s.push(plain.subarray(off, off + 7919)));
    parts.push(...s.final());
    const file = Buffer.concat(parts);
    expect(file.length).toBe(sealedSize(n, key.profile));
    expect(plainSizeOf(file.length, key.profile)).toBe(n);
    expect(unsealBuffer(key, file).equals(plain)).toBe(true);
    // Positional reads across segment borders.
    const r = await SealedReader.open(key, file.length, preadOf(file));
    expect(r.size).toBe(n);
    const at = Math.max(0, Math.floor(n / 2) - 5000);
    const buf = Buffer.alloc(Math.min(10_000, n));
    const got = await r.read(buf, at);
    expect(buf.subarray(0, got).equals(plain.subarray(at, at + got))).toBe(true);
  });

  it('holds no plaintext, and a fresh data key per file', () => {
    const canary = Buffer.from('CANARY^PATIENT^NAME'.repeat(100));
    const a = sealBuffer(key, canary);
    const b = sealBuffer(key, canary);
    expect(a.includes(Buffer.from('CANARY'))).toBe(false);
    expect(a.subarray(20).equals(b.subarray(20))).toBe(false);
  });

  it('finds a flipped byte, a truncation, a swapped segment, an extra segment and the wrong key', () => {
    const plain = randomBytes(3 * SEGMENT_BYTES + 10);
    const file = sealBuffer(key, plain);
    const flipped = Buffer.from(file);
    flipped[flipped.length - 40]! ^= 1;
    expect(() => unsealBuffer(key, flipped)).toThrow(expect.objectContaining({ code: 'SPOOL_CORRUPT' }));
    // Cut at a segment border: what remains still parses, but its last segment is not final.
    const h = file.length - plain.length - 4 * (key.profile === 'gm' ? 32 : 16);
    const seg = SEGMENT_BYTES + (key.profile === 'gm' ? 32 : 16);
    expect(() => unsealBuffer(key, file.subarray(0, h + 2 * seg))).toThrow(/segment 1 fails/);
    const swapped = Buffer.concat([file.subarray(0, h), file.subarray(h + seg, h + 2 * seg), file.subarray(h, h + seg), file.subarray(h + 2 * seg)]);
    expect(() => unsealBuffer(key, swapped)).toThrow(/segment 0 fails/);
    const other = sealBuffer(key, plain);
    expect(() => unsealBuffer(key, Buffer.concat([file, other.subarray(other.length - 26)]))).toThrow(expect.objectContaining({ code: 'SPOOL_CORRUPT' }));
    const wrongKey = { ...key, kek: randomBytes(key.kek.length) };
    expect(() => unsealBuffer(wrongKey, file)).toThrow(/does not unwrap/);
  });
});

describe('sealed spool files after a change of spool.encryption.profile', () => {
  it('open with the key of the profile they were sealed under, held in `others`', () => {
    const aes = randomBytes(32);
    const gm = randomBytes(48);
    const plain = randomBytes(SEGMENT_BYTES + 5);
    const old = sealBuffer({ profile: 'aes-256-gcm', kek: aes }, plain);
    // The spool now seals with gm; the file from before still opens, and only with its own key.
    expect(unsealBuffer({ profile: 'gm', kek: gm, others: { 'aes-256-gcm': aes } }, old).equals(plain)).toBe(true);
    expect(() => unsealBuffer({ profile: 'gm', kek: gm }, old)).toThrow(/no key for it/);
    expect(() => unsealBuffer({ profile: 'gm', kek: gm, others: { 'aes-256-gcm': randomBytes(32) } }, old)).toThrow(/does not unwrap/);
  });
});
