import { createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { plainSizeOf, profileOfHead, SEAL_PROFILES, SealedReader, sealBuffer, sealedHeaderProblem, sealedSize, Sealer, SEGMENT_BYTES, type SealKey, type SealProfile, unsealBuffer } from '../../src/security/sealed-file.js';

const kekBytes = (p: SealProfile) => (p === 'gm' ? 48 : 32);
const keys: SealKey[] = SEAL_PROFILES.map((profile) => ({ profile, kek: randomBytes(kekBytes(profile)) }));
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
  it('every profile opens every other profile\'s files through `others`, and names its own in the header', () => {
    expect(SEAL_PROFILES).toEqual(['aes-256-gcm', 'gm', 'chacha20-poly1305']);
    const keks = Object.fromEntries(SEAL_PROFILES.map((p) => [p, randomBytes(kekBytes(p))])) as Record<SealProfile, Buffer>;
    const plain = randomBytes(2 * SEGMENT_BYTES + 3);
    for (const from of SEAL_PROFILES) {
      const file = sealBuffer({ profile: from, kek: keks[from] }, plain);
      expect(profileOfHead(file)).toBe(from);
      for (const to of SEAL_PROFILES) {
        const now: SealKey = { profile: to, kek: keks[to], others: keks };
        expect(unsealBuffer(now, file).equals(plain), `${from} file, spool now ${to}`).toBe(true);
        expect(sealedHeaderProblem(now, file)).toBeUndefined();
        if (to !== from) expect(() => unsealBuffer({ profile: to, kek: keks[to] }, file)).toThrow(/no key for it/);
      }
    }
  });

  it('an AEAD file relabelled as the other AEAD profile does not open (the header is authenticated)', () => {
    const kek = randomBytes(32);
    const file = sealBuffer({ profile: 'chacha20-poly1305', kek }, randomBytes(1000));
    const relabelled = Buffer.from(file);
    relabelled[5] = 1; // aes-256-gcm's id, same sizes, same key offered for both
    expect(() => unsealBuffer({ profile: 'aes-256-gcm', kek, others: { 'chacha20-poly1305': kek } }, relabelled)).toThrow(/does not unwrap/);
  });

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

describe('chacha20-poly1305 files are RFC 8439 AEAD as docs/security.md describes', () => {
  it('decode with node:crypto alone: data key wrapped under the KEK, segment nonce = file nonce XOR index, AAD = header | index | final', () => {
    const kek = randomBytes(32);
    const plain = randomBytes(SEGMENT_BYTES + 100);
    const file = sealBuffer({ profile: 'chacha20-poly1305', kek }, plain);
    expect(file.subarray(0, 8)).toEqual(Buffer.from([0x50, 0x45, 0x53, 0x45, 1, 3, 16, 60]));
    const fixed = file.subarray(0, 20);
    const wrapped = file.subarray(20, 80);
    const uk = createDecipheriv('chacha20-poly1305', kek, wrapped.subarray(0, 12), { authTagLength: 16 });
    uk.setAAD(fixed, { plaintextLength: 32 });
    uk.setAuthTag(wrapped.subarray(44, 60));
    const dataKey = Buffer.concat([uk.update(wrapped.subarray(12, 44)), uk.final()]);
    const header = file.subarray(0, 80);
    const segment = (index: number, body: Buffer, final: boolean) => {
      const iv = Buffer.from(header.subarray(8, 20));
      iv.writeUInt32BE((iv.readUInt32BE(8) ^ index) >>> 0, 8);
      const d = createDecipheriv('chacha20-poly1305', dataKey, iv, { authTagLength: 16 });
      const tail = Buffer.alloc(5);
      tail.writeUInt32BE(index, 0);
      tail[4] = final ? 1 : 0;
      d.setAAD(Buffer.concat([header, tail]), { plaintextLength: body.length - 16 });
      d.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
    };
    const s0 = segment(0, file.subarray(80, 80 + SEGMENT_BYTES + 16), false);
    const s1 = segment(1, file.subarray(80 + SEGMENT_BYTES + 16), true);
    expect(Buffer.concat([s0, s1]).equals(plain)).toBe(true);
  });
});
