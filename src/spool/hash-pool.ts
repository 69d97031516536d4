import { Worker } from 'node:worker_threads';
import { Code, PacsEdgeError } from '../errors.js';
import type { SealKey } from '../security/sealed-file.js';

/**
 * SHA-256 of whole files on worker threads, so verifying a large object (before it is handed
 * to a forwarder, or at start-up with `spool.verifyOnStart: sha256`) never blocks the event
 * loop. Each worker reads the file itself: for a hash no bytes cross the thread boundary; for a
 * load ({@link HashPool.loadFile}, the forwarder's prefetch) the checked plaintext is handed
 * over as a transferred ArrayBuffer (moved, not copied).
 *
 * The worker body is plain CommonJS evaluated from a string so that it runs the same under
 * the compiled build and under the test runner's on-the-fly TypeScript.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
let sealed;
// A young-generation collection after each job (src/util/collect.ts says why: the decrypted
// segments are buffers outside the JS heap, and this thread makes little other garbage).
let collect = () => {};
try {
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  collect = () => gc({ type: 'minor' });
} catch {}
const corrupt = (m) => Object.assign(new Error(m), { code: 'SPOOL_CORRUPT' });
async function sealedReader(fd) {
  if (!workerData.seal) throw corrupt('encrypted spool file, but no spool key');
  sealed ??= await import(workerData.sealedModule);
  const others = {};
  for (const [p, k] of Object.entries(workerData.seal.others || {})) others[p] = Buffer.from(k);
  const key = { profile: workerData.seal.profile, kek: Buffer.from(workerData.seal.kek), others };
  return sealed.SealedReader.open(key, fs.fstatSync(fd).size, async (b, p) => fs.readSync(fd, b, 0, b.length, p));
}
// A UID value in the File Meta group (PS3.10 §7.1): the UID, then its padding NUL or the next
// element's group (0x02), never another UID character.
function inMeta(b, uid) {
  const metaEnd = b.length >= 144 && b.toString('latin1', 128, 132) === 'DICM' ? 144 + b.readUInt32LE(140) : 0;
  const at = b.subarray(0, metaEnd).indexOf(Buffer.from(uid, 'latin1'));
  if (at < 0) return false;
  const next = b[at + uid.length];
  return next === 0 || next === 2 || at + uid.length === metaEnd;
}
// "load": read, open (decrypt and authenticate) and check a spooled object into memory for the
// forwarder, off the event loop; the bytes come back as a transferred buffer, never copied.
async function load(id, path, expect, into) {
  let fd;
  try {
    fd = fs.openSync(path, 'r');
    const head = Buffer.alloc(4);
    const isSealed = fs.readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'PESE';
    // Plain where the authenticated record says sealed: planted or swapped by someone without the key.
    if (!isSealed && !expect.plain) throw corrupt('spooled object is not encrypted, but its record says it was sealed: a planted or swapped file');
    if (!isSealed && fs.fstatSync(fd).size !== expect.size) throw corrupt('spooled object fails its SHA-256 check (size)');
    // A buffer handed back by the main thread after an earlier object was sent, when it is big enough.
    const out = into && into.byteLength >= expect.size ? Buffer.from(into, 0, expect.size) : Buffer.allocUnsafeSlow(expect.size);
    let size = 0, n;
    if (isSealed) {
      // Every segment is authenticated (AEAD tag, its index and the final flag: nothing changed,
      // reordered or cut off); what is left to check is that this is the record's own file and
      // version: its size, and the SOP Instance UID and transfer syntax in its File Meta.
      const r = await sealedReader(fd);
      while (size < out.length && (n = await r.read(out.subarray(size, Math.min(out.length, size + buf.length)), size)) > 0) size += n;
      if (size === out.length && (await r.read(buf.subarray(0, 1), size)) > 0) size++;
      if (size !== expect.size) throw corrupt('spooled object is not the size its record says');
      if (!inMeta(out, expect.sopInstanceUid) || !inMeta(out, expect.transferSyntaxUid)) throw corrupt('spooled object is not the one its record names (File Meta)');
    } else {
      while (size < out.length && (n = fs.readSync(fd, out, size, out.length - size, size)) > 0) size += n;
      if (size !== expect.size || crypto.createHash('sha256').update(out).digest('hex') !== expect.sha256) throw corrupt('spooled object fails its SHA-256 check');
    }
    parentPort.postMessage({ id, data: out.buffer }, [out.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message), code: e && e.code });
  } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    collect();
  }
}
parentPort.on('message', async ({ id, path, expect, into }) => {
  if (expect) return load(id, path, expect, into);
  let fd;
  try {
    fd = fs.openSync(path, 'r');
    const h = crypto.createHash('sha256');
    let size = 0, n;
    // An encrypted ("sealed") spool file is hashed as the plaintext it holds, each segment
    // authenticated on the way (src/security/sealed-file.ts).
    const head = Buffer.alloc(4);
    const isSealed = fs.readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'PESE';
    if (isSealed) {
      const r = await sealedReader(fd);
      while ((n = await r.read(buf, size)) > 0) { h.update(buf.subarray(0, n)); size += n; }
    } else {
      while ((n = fs.readSync(fd, buf, 0, buf.length, size)) > 0) { h.update(buf.subarray(0, n)); size += n; }
    }
    parentPort.postMessage({ id, sha256: h.digest('hex'), size });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message), code: e && e.code });
  } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    collect();
  }
});
`;

/** A SealKey as worker data (plain typed arrays cross the thread boundary). */
export function transferableKey(k: SealKey): { profile: SealKey['profile']; kek: Uint8Array; others: Record<string, Uint8Array> } {
  return { profile: k.profile, kek: new Uint8Array(k.kek), others: Object.fromEntries(Object.entries(k.others ?? {}).map(([p, b]) => [p, new Uint8Array(b)])) };
}

/** The compiled sealed-file module the eval'd worker imports (the build's, also under the test runner). */
function sealedModuleUrl(): string {
  const here = import.meta.url;
  return (here.endsWith('.ts') ? new URL('../../dist/src/security/sealed-file.js', here) : new URL('../security/sealed-file.js', here)).href;
}

/**
 * What a loaded object must be, from its authenticated record: a plain file its size and
 * SHA-256; a sealed one (each segment authenticated) its size and the SOP Instance UID and
 * transfer syntax of its File Meta (the record's own file and version, not another one's).
 */
export interface LoadExpect {
  size: number;
  sha256: string;
  plain: boolean;
  sopInstanceUid: string;
  transferSyntaxUid: string;
}

interface Job {
  id: number;
  path: string;
  expect?: LoadExpect | undefined;
  resolve: (r: { sha256: string; size: number; data?: Buffer }) => void;
  reject: (e: Error) => void;
}

/** Load buffers kept for reuse: a few objects' worth, bounded in bytes. */
const MAX_SPARE = 8;
const MAX_SPARE_BYTES = 16 * 1024 * 1024;

export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private seq = 0;
  private closed = false;
  private readonly spare: ArrayBuffer[] = [];
  private spareBytes = 0;

  constructor(
    private readonly threads: number,
    /** The spool's key, for encrypted spool files. */
    private readonly seal?: SealKey | undefined,
  ) {}

  hashFile(path: string): Promise<{ sha256: string; size: number }> {
    if (this.closed) return Promise.reject(new PacsEdgeError('HASH_POOL_CLOSED', 'hash pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: ++this.seq, path, resolve, reject });
      this.pump();
    });
  }

  /**
   * Read, open (decrypt and authenticate, for a sealed file) and check (size and SHA-256 of the
   * plaintext) a spooled object into memory on a worker thread; the buffer is transferred, not
   * copied. A file that fails any check rejects with SPOOL_CORRUPT: none of its bytes is returned.
   */
  loadFile(path: string, expect: LoadExpect): Promise<Buffer> {
    if (this.closed) return Promise.reject(new PacsEdgeError('HASH_POOL_CLOSED', 'hash pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: ++this.seq, path, expect: { ...expect }, resolve: (r) => resolve(r.data!), reject });
      this.pump();
    });
  }

  /**
   * A loaded object's buffer, no longer needed (the object was sent): kept for the next load.
   * Measured on a drain of 300 CT: a fresh 526 KB buffer per object, transferred to the main
   * thread, kept V8's collector threads busy ~1 ms per object there.
   */
  giveBack(data: Buffer): void {
    const ab = data.buffer as ArrayBuffer;
    if (data.byteOffset !== 0 || ab.byteLength < 64 * 1024 || this.spare.length >= MAX_SPARE || this.spareBytes + ab.byteLength > MAX_SPARE_BYTES) return;
    if (this.spare.includes(ab)) return;
    this.spare.push(ab);
    this.spareBytes += ab.byteLength;
  }

  /** A spare buffer that fits `size` without wasting more than half of it. */
  private spareFor(size: number): ArrayBuffer | undefined {
    const i = this.spare.findIndex((b) => b.byteLength >= size && b.byteLength <= 2 * size);
    if (i < 0) return undefined;
    const [ab] = this.spare.splice(i, 1);
    this.spareBytes -= ab!.byteLength;
    return ab;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new PacsEdgeError('HASH_POOL_CLOSED', 'hash pool is closed'));
    await Promise.all(this.all.map((w) => w.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? this.spawn();
      if (!worker) return;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      // A spare buffer travels with a load (transferred), so the worker fills it instead of a new one.
      const into = job.expect ? this.spareFor(job.expect.size) : undefined;
      worker.postMessage({ id: job.id, path: job.path, expect: job.expect, into }, into ? [into] : []);
    }
  }

  private spawn(): Worker | undefined {
    if (this.all.length >= this.threads) return undefined;
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sealedModule: sealedModuleUrl(), seal: this.seal ? transferableKey(this.seal) : undefined },
    });
    w.unref();
    w.on('message', (m: { id: number; sha256?: string; size?: number; data?: ArrayBuffer; error?: string; code?: string }) => {
      const job = this.running.get(w);
      this.running.delete(w);
      this.idle.push(w);
      if (job) {
        if (m.error !== undefined && m.code === Code.SPOOL_CORRUPT) {
          job.reject(new PacsEdgeError('SPOOL_CORRUPT', m.error, { retryable: false }));
        } else if (m.error !== undefined) {
          const err = new PacsEdgeError('HASH_FAILED', `cannot hash spool file: ${m.error}`, { retryable: false, details: { code: m.code } });
          (err as { fsCode?: string }).fsCode = m.code;
          job.reject(err);
        } else if (m.data) job.resolve({ sha256: job.expect!.sha256, size: job.expect!.size, data: Buffer.from(m.data, 0, job.expect!.size) });
        else job.resolve({ sha256: m.sha256!, size: m.size! });
      }
      this.pump();
    });
    w.on('error', (e) => {
      const job = this.running.get(w);
      this.running.delete(w);
      this.all.splice(this.all.indexOf(w), 1);
      job?.reject(new PacsEdgeError('HASH_FAILED', 'hash worker failed', { cause: e }));
      this.pump();
    });
    this.all.push(w);
    return w;
  }
}
