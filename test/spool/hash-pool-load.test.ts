import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Code, PacsEdgeError } from '../../src/errors.js';
import { sealBuffer, type SealKey } from '../../src/security/sealed-file.js';
import { HashPool } from '../../src/spool/hash-pool.js';
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

// More than one read of the worker (1 MiB) and more than one sealed segment (64 KiB).
const plain = randomBytes(2_500_000 + 17);
const sha256 = createHash('sha256').update(plain).digest('hex');
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
    const got = await pool.loadFile(file(plain), { size: plain.length, sha256, plain: true });
    expect(got.equals(plain)).toBe(true);
  });
  it('a sealed file comes back as its plaintext', async () => {
    const got = await pool.loadFile(file(sealBuffer(key, plain)), { size: plain.length, sha256, plain: false });
    expect(got.equals(plain)).toBe(true);
  });
  it('a changed byte in a plain file: SPOOL_CORRUPT', async () => {
    const bad = Buffer.from(plain);
    bad.writeUInt8(bad.readUInt8(1_234_567) ^ 1, 1_234_567);
    await corrupt(pool.loadFile(file(bad), { size: plain.length, sha256, plain: true }));
  });
  it('a changed byte in a sealed file (its segment fails authentication): SPOOL_CORRUPT', async () => {
    const sealed = sealBuffer(key, plain);
    sealed.writeUInt8(sealed.readUInt8(sealed.length - 5000) ^ 1, sealed.length - 5000);
    await corrupt(pool.loadFile(file(sealed), { size: plain.length, sha256, plain: false }));
  });
  it('a truncated plain or sealed file: SPOOL_CORRUPT', async () => {
    await corrupt(pool.loadFile(file(plain.subarray(0, plain.length - 1)), { size: plain.length, sha256, plain: true }));
    const sealed = sealBuffer(key, plain);
    await corrupt(pool.loadFile(file(sealed.subarray(0, sealed.length - 100)), { size: plain.length, sha256, plain: false }));
  });
  it('a plain file where the record says sealed (planted or swapped): SPOOL_CORRUPT', async () => {
    await corrupt(pool.loadFile(file(plain), { size: plain.length, sha256, plain: false }));
  });
  it("another object's sealed file under this record (authenticates, wrong content): SPOOL_CORRUPT", async () => {
    const other = randomBytes(plain.length);
    await corrupt(pool.loadFile(file(sealBuffer(key, other)), { size: plain.length, sha256, plain: false }));
  });
});
