import { createHash, type Hash } from 'node:crypto';
import { fsync, writev } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { sealBuffer, Sealer, SEGMENT_BYTES, type SealKey, type SealProfile } from '../security/sealed-file.js';
import { collectYoung } from '../util/collect.js';
import type { FromWriter, KeyMessage, ToWriter } from './write-protocol.js';

/**
 * The body of a spool write worker (src/spool/write-pool.ts): it hashes, seals and writes the
 * objects an association receives, so that neither AES-GCM / SM4 / ChaCha20 nor SHA-256 ever
 * runs on the event loop that answers the modality.
 *
 * Writes and the final fsync go to the thread pool (positional, so they may complete in any
 * order) while this thread seals the next segments: sealing and writing overlap, and a slow
 * card holds up no other object of this worker. A batch is acknowledged (its buffer handed
 * back) only once the writes it caused are done, so the main thread's bound on what one object
 * has in flight also bounds the sealed bytes waiting here for a slow disk.
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
  /** Writes issued and not yet done, and who waits for none to be left. */
  inflight: number;
  idle: (() => void)[];
  /** The batch whose feeding is issuing writes now. */
  batch: Batch | undefined;
}

/** The writes one data batch caused; `closed` once feeding it issued all of them. */
interface Batch {
  pending: number;
  closed: boolean;
  done: () => void;
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
  const position = o.position;
  o.position += n;
  o.inflight++;
  if (o.batch) o.batch.pending++;
  issue(o, bufs, position, n, o.batch);
}

function issue(o: Open, bufs: Buffer[], position: number, n: number, batch: Batch | undefined): void {
  writev(o.fd, bufs, position, (err, w) => {
    if (err) fail(o, err);
    else if (w === 0) fail(o, Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' }));
    else if (w < n) return issue(o, remainder(bufs, w), position + w, n - w, batch);
    if (batch && --batch.pending === 0 && batch.closed) batch.done();
    if (--o.inflight === 0) for (const fn of o.idle.splice(0)) fn();
  });
}

/** Run `fn` once no write of `o` is in flight. */
function whenIdle(o: Open, fn: () => void): void {
  if (o.inflight === 0) fn();
  else o.idle.push(fn);
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
        inflight: 0,
        idle: [],
        batch: undefined,
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
      const first = o !== undefined && !o.error && !o.wrote;
      // The buffer goes back to the main thread for its next batch (transferred, not copied)
      // once what it caused is written: a plain batch is itself written from it.
      const batch: Batch = {
        pending: 0,
        closed: false,
        done: () => port.postMessage({ t: 'ack', obj: m.obj, buf: m.buf, first } satisfies FromWriter, [m.buf]),
      };
      if (o && !o.error) {
        o.wrote = true;
        o.batch = batch;
        try {
          feed(o, Buffer.from(m.buf, 0, m.len));
        } catch (err) {
          fail(o, err);
        }
        o.batch = undefined;
      }
      batch.closed = true;
      if (batch.pending === 0) batch.done();
      return;
    }
    case 'end': {
      const o = objects.get(m.obj);
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
      // Written whole: the main thread may index it (size, digest) while the file is fsynced.
      whenIdle(o, () => {
        if (o.error) {
          objects.delete(m.obj);
          return port.postMessage({ t: 'error', obj: m.obj, code: o.error.code, message: o.error.message } satisfies FromWriter);
        }
        port.postMessage({ t: 'written', obj: m.obj, size: o.plain, sha256: o.hash ? o.hash.digest('hex') : '' } satisfies FromWriter);
        // The fsync counts as in flight: an abort meanwhile is answered only after it, so the
        // main thread never closes the descriptor under it.
        o.inflight++;
        fsync(o.fd, (err) => {
          if (err) fail(o, err);
          objects.delete(m.obj);
          port.postMessage(o.error ? ({ t: 'error', obj: m.obj, code: o.error.code, message: o.error.message } satisfies FromWriter) : ({ t: 'synced', obj: m.obj } satisfies FromWriter));
          if (--o.inflight === 0) for (const fn of o.idle.splice(0)) fn();
        });
      });
      return;
    }
    case 'seal': {
      let reply: FromWriter;
      let transfer: ArrayBuffer[] = [];
      try {
        const plain = Buffer.from(m.buf);
        const sha256 = createHash('sha256').update(plain).digest('hex');
        const key = sealKey(m);
        const out = key ? sealBuffer(key, plain) : plain;
        // Only a whole ArrayBuffer can be transferred: a small result is a view into Node's
        // shared pool, and is copied out of it.
        const whole = out.byteOffset === 0 && out.buffer.byteLength === out.length;
        const buf = (whole ? out.buffer : out.buffer.slice(out.byteOffset, out.byteOffset + out.length)) as ArrayBuffer;
        reply = { t: 'sealed', obj: m.obj, buf, sha256 };
        transfer = [buf];
      } catch (err) {
        reply = { t: 'seal-failed', obj: m.obj, message: String((err as Error).message) };
      }
      port.postMessage(reply, transfer);
      collectYoung();
      return;
    }
    case 'abort': {
      // Answered once no write of it is in flight: the main thread closes the descriptor then.
      const o = objects.get(m.obj);
      objects.delete(m.obj);
      const reply = () => port.postMessage({ t: 'aborted', obj: m.obj } satisfies FromWriter);
      if (!o) return reply();
      o.error ??= { code: 'ECANCELED', message: 'aborted' };
      returnStages(o);
      whenIdle(o, reply);
      return;
    }
  }
}

port.on('message', handle);
