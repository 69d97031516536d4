import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSealed, unsealBuffer, type SealKey } from '../../src/security/sealed-file.js';
import { openFd } from '../../src/util/fd.js';
import { HIGH_WATER } from '../../src/spool/pooled-writer.js';
import { WritePool } from '../../src/spool/write-pool.js';
import { tempDir } from '../helpers/processes.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const keys: SealKey[] = [
  { profile: 'aes-256-gcm', kek: randomBytes(32) },
  { profile: 'gm', kek: randomBytes(48) },
];

describe('WritePool: received objects hashed, sealed and written on worker threads', () => {
  let tmp: { dir: string; cleanup: () => void };
  let pool: WritePool;
  beforeEach(() => {
    tmp = tempDir();
    pool = new WritePool(2);
  });
  afterEach(async () => {
    await pool.close();
    tmp.cleanup();
  });

  /** Write `body` after `header` in uneven slices, as a socket delivers them; finish with no-op durability steps. */
  async function writeObject(name: string, header: Buffer, body: Buffer, o: { hash: boolean; seal?: SealKey }) {
    const file = path.join(tmp.dir, name);
    const w = pool.open(await openFd(file, 'wx'), file, header, o);
    for (let i = 0, step = 1; i < body.length; i += step, step = (step * 7 + 3) % 70_001) w.write(body.subarray(i, i + step));
    expect(w.bytes).toBe(header.length + body.length);
    let synced = false;
    const indexed = await w.finish({
      syncDir: async () => {
        synced = true;
      },
      index: async (f) => f,
    });
    expect(synced).toBe(true);
    return { file, indexed };
  }

  it('a plain object is written byte for byte and always hashed', async () => {
    const header = Buffer.from('DICM header');
    const body = randomBytes(1_000_003);
    const { file, indexed } = await writeObject('plain.dcm', header, body, { hash: true });
    const whole = Buffer.concat([header, body]);
    expect(readFileSync(file).equals(whole)).toBe(true);
    expect(indexed).toEqual({ size: whole.length, sha256: sha(whole) });
  });

  for (const key of keys) {
    it(`a sealed object (${key.profile}) opens to the bytes received; its digest only when asked`, async () => {
      const header = Buffer.from('DICM header');
      const body = randomBytes(3 * 65_536 + 17); // segments that straddle the batches
      const whole = Buffer.concat([header, body]);
      for (const hash of [true, false]) {
        const { file, indexed } = await writeObject(`sealed-${hash}.dcm`, header, body, { hash, seal: key });
        const onDisk = readFileSync(file);
        expect(isSealed(onDisk)).toBe(true);
        expect(unsealBuffer(key, onDisk).equals(whole)).toBe(true);
        expect(indexed).toEqual({ size: whole.length, sha256: hash ? sha(whole) : '' });
      }
    });
  }

  it('an object of exactly whole segments and an empty data set both seal and open', async () => {
    const key = keys[0]!;
    for (const [name, header, body] of [
      ['exact.dcm', Buffer.alloc(0), randomBytes(2 * 65_536)],
      ['empty.dcm', Buffer.from('H'), Buffer.alloc(0)],
    ] as const) {
      const { file } = await writeObject(name, header, body, { hash: false, seal: key });
      expect(unsealBuffer(key, readFileSync(file)).equals(Buffer.concat([header, body]))).toBe(true);
    }
  });

  it('holds at most HIGH_WATER bytes of one object for its worker: write() says when to pause, onDrain when to resume', async () => {
    const file = path.join(tmp.dir, 'big.dcm');
    const w = pool.open(await openFd(file, 'wx'), file, Buffer.alloc(0), { hash: true, seal: keys[0] });
    let drained = false;
    w.onDrain(() => {
      drained = true;
    });
    // Written in one synchronous loop: no acknowledgement can come back meanwhile.
    const slice = randomBytes(64 * 1024);
    let writes = 0;
    while (w.write(slice)) writes++;
    expect(writes * slice.length).toBeLessThan(HIGH_WATER);
    expect((writes + 1) * slice.length).toBeGreaterThanOrEqual(HIGH_WATER);
    await expect.poll(() => drained).toBe(true);
    const r = await w.finish({ syncDir: async () => undefined, index: async (f) => f });
    expect(r.size).toBe((writes + 1) * slice.length);
  });

  it('an index write that fails after every byte is written: the receiver aborts, the file goes once the worker is done with it', async () => {
    const file = path.join(tmp.dir, 'unindexed.dcm');
    const w = pool.open(await openFd(file, 'wx'), file, Buffer.from('H'), { hash: false, seal: keys[0] });
    w.write(randomBytes(700_000));
    const failure = Object.assign(new Error('index write failed'), { code: 'EIO' });
    await expect(w.finish({ syncDir: async () => undefined, index: async () => Promise.reject(failure) })).rejects.toBe(failure);
    await w.abort();
    expect(existsSync(file)).toBe(false);
    const { indexed } = await writeObject('then.dcm', Buffer.from('H'), Buffer.from('next'), { hash: true });
    expect(indexed.size).toBe(5);
  });

  it('an aborted object leaves no file and frees its worker', async () => {
    const file = path.join(tmp.dir, 'aborted.dcm');
    const w = pool.open(await openFd(file, 'wx'), file, Buffer.from('H'), { hash: true, seal: keys[1] });
    w.write(randomBytes(300_000));
    await Promise.all([w.abort(), w.abort()]);
    expect(existsSync(file)).toBe(false);
    // The pool still serves the next object.
    const { indexed } = await writeObject('after.dcm', Buffer.from('H'), Buffer.from('next'), { hash: true });
    expect(indexed.size).toBe(5);
  });

  it("prepares the rewriter's whole new file on a worker: sealed under each key, or plain, with the plaintext's SHA-256", async () => {
    const plain = randomBytes(200_000);
    for (const key of keys) {
      const file = await pool.prepare(key, plain);
      expect(unsealBuffer(key, file.bytes).equals(plain)).toBe(true);
      expect(file.sha256).toBe(sha(plain));
    }
    const file = await pool.prepare(undefined, plain);
    expect(file.bytes.equals(plain)).toBe(true);
    expect(file.sha256).toBe(sha(plain));
    // A file small enough to come from Node's shared buffer pool comes back alone, not with the pool.
    for (const key of [keys[0], undefined]) {
      const small = Buffer.from('a small data set');
      const f = await pool.prepare(key, small);
      expect(key ? unsealBuffer(key, f.bytes).equals(small) : f.bytes.equals(small)).toBe(true);
    }
  });

  it('a worker that dies fails its objects (retryable, named) and the pool starts a new one', async () => {
    const file = path.join(tmp.dir, 'lost.dcm');
    const w = pool.open(await openFd(file, 'wx'), file, Buffer.from('H'), { hash: true });
    w.write(Buffer.from('some bytes'));
    const lanes = (pool as unknown as { lanes: { worker: { terminate: () => Promise<number> } }[] }).lanes;
    await lanes[0]!.worker.terminate();
    await expect(w.finish({ syncDir: async () => undefined, index: async (f) => f })).rejects.toMatchObject({ code: 'SPOOL_WRITER_FAILED', retryable: true });
    await w.abort();
    const { indexed } = await writeObject('next.dcm', Buffer.from('H'), Buffer.from('still served'), { hash: true });
    expect(indexed.size).toBe(13);
  });
});
