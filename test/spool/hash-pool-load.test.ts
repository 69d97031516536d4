import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Code, PacsEdgeError } from '../../src/errors.js';
import { sealBuffer, type SealKey } from '../../src/security/sealed-file.js';
import { HashPool } from '../../src/spool/hash-pool.js';
import { buildPart10Header } from '../../src/dicom/file-meta.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { tempDir } from '../helpers/processes.js';

/**
 * The forwarder's prefetch reads, opens and checks a spooled object into memory on a worker
 * thread (HashPool.loadFile). Whatever is wrong with the file, none of its bytes comes back:
 * the load fails with SPOOL_CORRUPT, which the forwarder dead-letters as `corrupt`.
 */
const tmp = tempDir();
const key: SealKey = { profile: 'aes-256-gcm', kek: randomBytes(32) };
const pool = new HashPool(2, key);
afterAll(async () => {
  await pool.close();
  tmp.cleanup();
});

// A Part 10 file: more than one read of the worker (1 MiB) and more than one sealed segment (64 KiB).
const UID = '1.2.826.0.1.3680043.10.1.77';
const ts = TS.ExplicitVRLittleEndian;
const part10 = (sopInstanceUid: string, transferSyntaxUid: string = ts, body = randomBytes(2_500_000 + 17)) => Buffer.concat([buildPart10Header({ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid, transferSyntaxUid }), body]);
const plain = part10(UID);
const sha256 = createHash('sha256').update(plain).digest('hex');
const meta = { sopInstanceUid: UID, transferSyntaxUid: ts };
let n = 0;
function file(bytes: Buffer): string {
  const f = path.join(tmp.dir, `${++n}.dcm`);
  writeFileSync(f, bytes);
  return f;
}
async function corrupt(p: Promise<unknown>): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PacsEdgeError);
  expect((err as PacsEdgeError).code).toBe(Code.SPOOL_CORRUPT);
}

describe('HashPool.loadFile', () => {
  it('a plain file comes back whole, its SHA-256 checked', async () => {
    const got = await pool.loadFile(file(plain), { size: plain.length, sha256, plain: true, ...meta });
    expect(got.equals(plain)).toBe(true);
  });
  it('a sealed file comes back as its plaintext', async () => {
    const got = await pool.loadFile(file(sealBuffer(key, plain)), { size: plain.length, sha256, plain: false, ...meta });
    expect(got.equals(plain)).toBe(true);
  });
  it('a buffer given back is filled by a later load: that object comes back exactly, nothing of the earlier one', async () => {
    const first = await pool.loadFile(file(sealBuffer(key, plain)), { size: plain.length, sha256, plain: false, ...meta });
    pool.giveBack(first);
    // Smaller, so it fits the given-back buffer (kept for objects down to half its size).
    const small = part10(UID, ts, randomBytes(1_500_000));
    for (let i = 0; i < 3; i++) {
      const got = await pool.loadFile(file(sealBuffer(key, small)), { size: small.length, sha256: '', plain: false, ...meta });
      expect(got.length).toBe(small.length);
      expect(got.equals(small)).toBe(true);
      pool.giveBack(got);
      pool.giveBack(got); // twice: kept once
    }
  });
  it('a changed byte in a plain file: SPOOL_CORRUPT', async () => {
    const bad = Buffer.from(plain);
    bad.writeUInt8(bad.readUInt8(1_234_567) ^ 1, 1_234_567);
    await corrupt(pool.loadFile(file(bad), { size: plain.length, sha256, plain: true, ...meta }));
  });
  it('a changed byte in a sealed file (its segment fails authentication): SPOOL_CORRUPT', async () => {
    const sealed = sealBuffer(key, plain);
    sealed.writeUInt8(sealed.readUInt8(sealed.length - 5000) ^ 1, sealed.length - 5000);
    await corrupt(pool.loadFile(file(sealed), { size: plain.length, sha256, plain: false, ...meta }));
  });
  it('a truncated plain or sealed file: SPOOL_CORRUPT', async () => {
    await corrupt(pool.loadFile(file(plain.subarray(0, plain.length - 1)), { size: plain.length, sha256, plain: true, ...meta }));
    const sealed = sealBuffer(key, plain);
    await corrupt(pool.loadFile(file(sealed.subarray(0, sealed.length - 100)), { size: plain.length, sha256, plain: false, ...meta }));
  });
  it('a plain file where the record says sealed (planted or swapped): SPOOL_CORRUPT', async () => {
    await corrupt(pool.loadFile(file(plain), { size: plain.length, sha256, plain: false, ...meta }));
  });
  it("another object's sealed file under this record (it authenticates, but names another SOP Instance): SPOOL_CORRUPT", async () => {
    // Same size, a UID that extends the record's (not a prefix match).
    const other = part10(`${UID}1`);
    expect(other.length).toBe(plain.length);
    await corrupt(pool.loadFile(file(sealBuffer(key, other)), { size: plain.length, sha256, plain: false, ...meta }));
  });
  it('an older sealed version of the same object (another transfer syntax) under this record: SPOOL_CORRUPT', async () => {
    const older = part10(UID, TS.JPEGLSLossless);
    await corrupt(pool.loadFile(file(sealBuffer(key, older)), { size: older.length, sha256, plain: false, ...meta }));
  });
});
