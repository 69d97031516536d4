import os from 'node:os';
import type { SealKey } from '../security/sealed-file.js';
import { transferableKey } from '../spool/hash-pool.js';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Compression } from './transcode.js';

/** One conversion asked of a worker. */
export interface JobRequest {
  id: number;
  op: 'encode' | 'decode';
  /** For `encode`: the compression to apply. */
  target?: Exclude<Compression, 'none'> | undefined;
  /** For `decode`: the uncompressed syntax wanted (default Explicit VR Little Endian). */
  to?: string | undefined;
  path: string;
  size: number;
  sha256: string;
  verify: boolean;
  /** Also require that decoding the result gives back the received data set byte for byte (compression at rest). */
  exact?: boolean | undefined;
  /** The most a deflated data set may inflate to (compress.maxObjectBytes). */
  maxBytes?: number | undefined;
}

export type JobReply =
  | { id: number; kind: 'done'; dataset: ArrayBuffer; transferSyntaxUid: string; frames: number; originalBytes: number }
  | { id: number; kind: 'skip' | 'mismatch' | 'corrupt' | 'error'; reason: string };

export type Conversion =
  | { kind: 'done'; dataset: Buffer; transferSyntaxUid: string; frames: number; originalBytes: number }
  | { kind: 'skip' | 'mismatch' | 'corrupt' | 'error'; reason: string };

/**
 * Under the test runner this module is TypeScript source, which a worker thread cannot load:
 * it then uses the compiled worker (`make test` builds first).
 */
function workerUrl(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('../../dist/src/compress/worker.js', here) : new URL('./worker.js', here);
}

/** Default size: one worker per core but one, so the event loop keeps a core (at least one). */
export function defaultCodecWorkers(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

interface Pending {
  req: Omit<JobRequest, 'id'>;
  resolve: (c: Conversion) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The codec worker pool: transcoding runs here, never on the event loop and never on the
 * receive path. Workers start on first use (a gateway forwarding uncompressed never starts
 * one), a job that outlives its time limit has its worker terminated and replaced, and a
 * crashed worker fails only its own job.
 */
export class CodecPool {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly queue: Pending[] = [];
  private readonly running = new Map<Worker, { id: number; job: Pending }>();
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: { workers: number; timeoutMs?: (bytes: number) => number; /** The spool key, for encrypted spool files. */ seal?: SealKey | undefined }) {}

  /** Convert one spooled file; never rejects (failures are a `Conversion` of kind error). */
  convert(req: Omit<JobRequest, 'id'>): Promise<Conversion> {
    if (this.closed) return Promise.resolve({ kind: 'error', reason: 'codec pool is closed' });
    return new Promise((resolve) => {
      this.queue.push({ req, resolve });
      this.pump();
    });
  }

  get busy(): number {
    return this.running.size;
  }

  get queued(): number {
    return this.queue.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.resolve({ kind: 'error', reason: 'codec pool is closed' });
    for (const { job } of this.running.values()) job.resolve({ kind: 'error', reason: 'codec pool is closed' });
    this.running.clear();
    await Promise.all([...this.all].map((w) => w.terminate()));
    this.all.clear();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? this.spawn();
      if (!worker) return;
      const job = this.queue.shift()!;
      const id = ++this.seq;
      this.running.set(worker, { id, job });
      const limit = this.opts.timeoutMs?.(job.req.size) ?? 60_000 + job.req.size / 1000;
      job.timer = setTimeout(() => this.fail(worker, `codec worker gave no answer within ${Math.round(limit / 1000)} s`), limit);
      worker.postMessage({ ...job.req, id } satisfies JobRequest);
    }
  }

  private spawn(): Worker | undefined {
    if (this.closed || this.all.size >= this.opts.workers) return undefined;
    const seal = this.opts.seal;
    // A small young generation: the job's large buffers die young and are freed at the next
    // scavenge (with collectYoung after each job, see src/util/collect.ts).
    const w = new Worker(fileURLToPath(workerUrl()), { workerData: { seal: seal ? transferableKey(seal) : undefined }, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    w.unref();
    w.on('message', (m: JobReply) => {
      const r = this.running.get(w);
      if (!r || r.id !== m.id) return;
      this.running.delete(w);
      clearTimeout(r.job.timer);
      this.idle.push(w);
      r.job.resolve(m.kind === 'done' ? { ...m, dataset: Buffer.from(m.dataset) } : m);
      this.pump();
    });
    w.on('error', (e) => this.fail(w, `codec worker failed: ${e.message}`));
    w.on('exit', () => this.fail(w, 'codec worker exited'));
    this.all.add(w);
    return w;
  }

  /** Drop a worker (crashed, exited or stuck) and fail only the job it held. */
  private fail(w: Worker, reason: string): void {
    const r = this.running.get(w);
    this.running.delete(w);
    this.all.delete(w);
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    void w.terminate().catch(() => undefined);
    if (r) {
      clearTimeout(r.job.timer);
      r.job.resolve({ kind: 'error', reason });
    }
    if (!this.closed) this.pump();
  }
}
