import { createHash, type Hash } from 'node:crypto';
import { writeSync, writevSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { sealBuffer, Sealer, SEGMENT_BYTES, type SealKey, type SealProfile } from '../security/sealed-file.js';
import { collectYoung } from '../util/collect.js';
import type { FromWriter, KeyMessage, ToWriter } from './write-protocol.js';

/**
 * The body of a spool write worker (src/spool/write-pool.ts): it hashes, seals and writes the
 * objects an association receives, so that neither AES-GCM / SM4 / ChaCha20 nor SHA-256 ever
 * runs on the event loop that answers the modality.
 *
 * Writes are synchronous: this thread does nothing else, and a write to the page cache is
 * short. The fsync that makes a file durable is not done here: the main thread issues it on
 * the thread pool, together with the directory's and the index's (a worker blocked in an
 * fsync would hold up every other object assigned to it).
 */
interface Open {
  fd: number;
  position: number;
  plain: number;
  hash: Hash | undefined;
  sealer: Sealer | undefined;
  /** Two segment-sized staging buffers: the Sealer keeps a reference to the last full one until more bytes come. */
  stage: [Buffer, Buffer] | undefined;
  cur: 0 | 1;
  fill: number;
  error: { code: string; message: string } | undefined;
  /** True once a data batch was written (the crash tests' `after-first-write`). */
  wrote: boolean;
}

const objects = new Map<number, Open>();

/** A young-generation collection after this many sealed bytes (src/util/collect.ts says why). */
const COLLECT_BYTES = 2 * 1024 * 1024;
let sinceCollect = 0;

/** Staging buffers of finished objects, reused by the next ones. */
const spare: Buffer[] = [];
const takeStage = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(SEGMENT_BYTES);
function returnStages(o: Open): void {
  if (o.stage && spare.length < 8) spare.push(...o.stage);
  o.stage = undefined;
}
/** Seal keys by the id the main thread gave them. */
const keys = new Map<number, SealKey>();

function sealKey(m: { keyId?: number | undefined; key?: KeyMessage | undefined }): SealKey | undefined {
  if (m.keyId === undefined) return undefined;
  if (m.key) keys.set(m.keyId, keyOf(m.key));
  const key = keys.get(m.keyId);
  if (!key) throw new Error(`seal key ${m.keyId} was never sent to this worker`);
  return key;
}
const port = parentPort!;

function keyOf(k: KeyMessage): SealKey {
  const others: Partial<Record<SealProfile, Buffer>> = {};
  for (const [p, b] of Object.entries(k.others)) others[p as SealProfile] = Buffer.from(b);
  return { profile: k.profile, kek: Buffer.from(k.kek), others };
}

function writeAll(o: Open, bufs: Buffer[]): void {
  let n = 0;
  for (const b of bufs) n += b.length;
  if (n === 0) return;
  if (o.sealer && (sinceCollect += n) >= COLLECT_BYTES) {
    sinceCollect = 0;
    collectYoung();
  }
  let written = 0;
  let pending = bufs;
  while (written < n) {
    const w = pending.length === 1 ? writeSync(o.fd, pending[0]!, 0, pending[0]!.length, o.position) : writevSync(o.fd, pending, o.position);
    if (w === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    written += w;
    o.position += w;
    if (written < n) pending = remainder(pending, w);
  }
}

/** The slices left after the first `skip` bytes of `bufs`. */
function remainder(bufs: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

/** Plaintext in arrival order: hashed, then written as is or staged into segments and sealed. */
function feed(o: Open, data: Buffer): void {
  o.hash?.update(data);
  o.plain += data.length;
  if (!o.sealer) {
    writeAll(o, [data]);
    return;
  }
  const stage = o.stage!;
  let off = 0;
  while (off < data.length) {
    const n = Math.min(SEGMENT_BYTES - o.fill, data.length - off);
    data.copy(stage[o.cur], o.fill, off, off + n);
    o.fill += n;
    off += n;
    if (o.fill === SEGMENT_BYTES) {
      // Sealing this segment seals the previous one (the last must carry the final flag).
      writeAll(o, o.sealer.push(stage[o.cur]));
      o.cur = o.cur === 0 ? 1 : 0;
      o.fill = 0;
    }
  }
}

function fail(o: Open, err: unknown): void {
  const e = err as { code?: string; message?: string };
  o.error ??= { code: typeof e.code === 'string' ? e.code : 'EIO', message: String(e.message ?? err) };
}

function handle(m: ToWriter): void {
  switch (m.t) {
    case 'open': {
      const key = sealKey(m);
      const sealer = key ? new Sealer(key) : undefined;
      const o: Open = {
        fd: m.fd,
        position: 0,
        plain: 0,
        hash: m.hash ? createHash('sha256') : undefined,
        sealer,
        stage: sealer ? [takeStage(), takeStage()] : undefined,
        cur: 0,
        fill: 0,
        error: undefined,
        wrote: false,
      };
      objects.set(m.obj, o);
      try {
        if (sealer) writeAll(o, [sealer.header]);
        feed(o, Buffer.from(m.header.buffer, m.header.byteOffset, m.header.byteLength));
      } catch (err) {
        fail(o, err);
      }
      return;
    }
    case 'data': {
      const o = objects.get(m.obj);
      let first = false;
      if (o && !o.error) {
        first = !o.wrote;
        o.wrote = true;
        try {
          feed(o, Buffer.from(m.buf, 0, m.len));
        } catch (err) {
          fail(o, err);
        }
      }
      // The buffer goes back to the main thread for its next batch (transferred, not copied).
      const reply: FromWriter = { t: 'ack', obj: m.obj, buf: m.buf, first };
      port.postMessage(reply, [m.buf]);
      return;
    }
    case 'end': {
      const o = objects.get(m.obj);
      objects.delete(m.obj);
      if (!o) return;
      if (!o.error && o.sealer) {
        try {
          if (o.fill > 0) writeAll(o, o.sealer.push(o.stage![o.cur].subarray(0, o.fill)));
          writeAll(o, o.sealer.final());
        } catch (err) {
          fail(o, err);
        }
      }
      returnStages(o);
      const reply: FromWriter = o.error
        ? { t: 'error', obj: m.obj, code: o.error.code, message: o.error.message }
        : { t: 'written', obj: m.obj, size: o.plain, sha256: o.hash ? o.hash.digest('hex') : '' };
      port.postMessage(reply);
      return;
    }
    case 'seal': {
      let reply: FromWriter;
      let transfer: ArrayBuffer[] = [];
      try {
        let out = sealBuffer(sealKey(m)!, Buffer.from(m.buf));
        // Only a buffer that owns its whole ArrayBuffer can be transferred.
        if (out.byteOffset !== 0 || out.buffer.byteLength !== out.length) out = Buffer.from(Uint8Array.prototype.slice.call(out));
        reply = { t: 'sealed', obj: m.obj, buf: out.buffer as ArrayBuffer };
        transfer = [out.buffer as ArrayBuffer];
      } catch (err) {
        reply = { t: 'seal-failed', obj: m.obj, message: String((err as Error).message) };
      }
      port.postMessage(reply, transfer);
      return;
    }
    case 'abort': {
      const o = objects.get(m.obj);
      if (o) returnStages(o);
      objects.delete(m.obj);
      const reply: FromWriter = { t: 'aborted', obj: m.obj };
      port.postMessage(reply);
      return;
    }
  }
}

port.on('message', handle);
