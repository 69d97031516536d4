import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import charlsFactory, { type CharLSModule } from '@cornerstonejs/codec-charls/wasmjs';
import openjphFactory, { type OpenJPHModule } from '@cornerstonejs/codec-openjph';
import type { LibJpegTurboModule } from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs';
import type { OpenJpegModule } from '@cornerstonejs/codec-openjpeg/decodewasmjs';
import { readPart10Header } from '../dicom/file-meta.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import { dictionaryVr } from '../dicom/vr-dictionary.js';
import { type Compression, encodeDataset, type TranscodeResult, uncompressed } from './transcode.js';
import type { JobRequest, JobReply } from './pool.js';
import { isSealed, type SealKey, unsealBuffer } from '../security/sealed-file.js';
import { collectYoung } from '../util/collect.js';

/** The spool key (encryption at rest), handed over when the pool starts the worker. */
const sealData = (workerData as { seal?: { profile: SealKey['profile']; kek: Uint8Array; others?: Record<string, Uint8Array> } } | null)?.seal;
const seal: SealKey | undefined = sealData
  ? { profile: sealData.profile, kek: Buffer.from(sealData.kek), others: Object.fromEntries(Object.entries(sealData.others ?? {}).map(([p, k]) => [p, Buffer.from(k)])) }
  : undefined;

/**
 * The codec worker: reads a spooled file itself (no object bytes cross into the thread),
 * checks it against the spool's size and SHA-256, converts it, and sends back only the new
 * data set (its memory transferred, not copied). The WebAssembly codecs are loaded once, on
 * first use.
 */
/**
 * Codec work is background work: this thread runs at the lowest CPU priority (nice 19), so on a
 * box with few cores the receive path (event loop and its I/O threads, nice 0) always comes
 * first and the modality's C-STORE is answered as fast with compression on as off. Linux lets a
 * thread renice itself by its thread id; elsewhere this is skipped.
 */
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 19);
  } catch {
    /* not Linux, or not allowed: the thread keeps the process's priority */
  }
}
lowerPriority();

let charls: CharLSModule | undefined;
let openjph: OpenJPHModule | undefined;
let libjpeg: LibJpegTurboModule | undefined;
let openjpeg: OpenJpegModule | undefined;
const baseCodecs = {
  charls: () => charls!,
  openjph: () => openjph!,
  libjpeg: () => libjpeg!,
  openjpeg: () => openjpeg!,
};
const quiet = { print: () => undefined, printErr: () => undefined };

const JPEG_LS: readonly string[] = [TS.JPEGLSLossless, TS.JPEGLSNearLossless];
const HTJ2K: readonly string[] = [TS.HTJ2KLossless, TS.HTJ2KLosslessRPCL, TS.HTJ2K];

/**
 * The JPEG-LS or HTJ2K codec a job needs (to encode its target, or to decode an object held in
 * that syntax), loaded for the first such job: each WebAssembly module is a few MB of resident
 * memory, and a gateway compressing to JPEG-LS never needs OpenJPH.
 */
async function loadFor(from: string, target: string | undefined): Promise<void> {
  if (target === 'jpeg-ls' || JPEG_LS.includes(from)) charls ??= await charlsFactory();
  if (target === 'htj2k' || HTJ2K.includes(from)) openjph ??= await openjphFactory(quiet);
}

/**
 * The decoders that only objects received in JPEG or JPEG 2000 need, loaded for the first such
 * object (dynamic imports: a worker that never sees one never loads their WebAssembly).
 */
async function loadDecoderFor(ts: string): Promise<void> {
  if (ts === TS.JPEGBaseline8Bit || ts === TS.JPEGExtended12Bit) libjpeg ??= await (await import('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs')).default(quiet);
  if (ts === TS.JPEG2000Lossless || ts === TS.JPEG2000) openjpeg ??= await (await import('@cornerstonejs/codec-openjpeg/decodewasmjs')).default(quiet);
}

async function run(req: JobRequest): Promise<JobReply> {
  // The size limit travels with each request (a deflated object inflates no further than it).
  const codecs = req.maxBytes === undefined ? baseCodecs : { ...baseCodecs, maxInflatedBytes: req.maxBytes };
  let file: Buffer = readFileSync(req.path);
  const sealed = isSealed(file);
  if (sealed) {
    if (!seal) return { id: req.id, kind: 'corrupt', reason: 'spooled object is encrypted, but the codec worker has no key' };
    try {
      file = unsealBuffer(seal, file);
    } catch (err) {
      return { id: req.id, kind: 'corrupt', reason: (err as Error).message };
    }
  }
  // No digest (''): a sealed object whose segments were all authenticated just now.
  if (file.length !== req.size || (req.sha256 === '' ? !sealed : createHash('sha256').update(file).digest('hex') !== req.sha256)) {
    return { id: req.id, kind: 'corrupt', reason: 'spooled object fails its SHA-256 check' };
  }
  const h = readPart10Header(file);
  if (!h) return { id: req.id, kind: 'skip', reason: 'spool file has no readable File Meta' };
  const original: Buffer = file.subarray(h.datasetOffset);
  const from = h.transferSyntaxUid;
  await loadFor(from, req.op === 'decode' ? undefined : req.target);
  await loadDecoderFor(from);
  let r: TranscodeResult;
  if (req.op === 'decode') r = uncompressed(original, from, req.to ?? TS.ExplicitVRLittleEndian, codecs, dictionaryVr);
  else {
    // Encoders take Explicit VR LE: an implicit object gets its VRs first, one held compressed
    // in another codec (at rest) is decoded first.
    const native = from === TS.ExplicitVRLittleEndian ? undefined : uncompressed(original, from, TS.ExplicitVRLittleEndian, codecs, dictionaryVr);
    if (native && native.kind !== 'done') return { id: req.id, ...native };
    r = encodeDataset(native?.dataset ?? original, req.target as Exclude<Compression, 'none'>, codecs, req.verify);
    if (r.kind === 'done' && req.exact) {
      // The spool may replace the received file by this one only if the original comes back exactly.
      const back = uncompressed(r.dataset, r.transferSyntaxUid, from, codecs, dictionaryVr);
      if (back.kind !== 'done' || !back.dataset.equals(original)) return { id: req.id, kind: 'skip', reason: 'decoding would not give back the received data set byte for byte' };
    }
  }
  if (r.kind !== 'done') return { id: req.id, ...r };
  const dataset = original;
  // A Buffer may be a view into a larger (pooled) ArrayBuffer: hand over an exact one.
  const ab = r.dataset.byteOffset === 0 && r.dataset.byteLength === r.dataset.buffer.byteLength ? r.dataset.buffer : r.dataset.buffer.slice(r.dataset.byteOffset, r.dataset.byteOffset + r.dataset.byteLength);
  return { id: req.id, kind: 'done', dataset: ab as ArrayBuffer, transferSyntaxUid: r.transferSyntaxUid, frames: r.frames, originalBytes: dataset.length };
}

parentPort!.on('message', (req: JobRequest) => {
  run(req)
    .then((reply) => {
      parentPort!.postMessage(reply, reply.kind === 'done' ? [reply.dataset] : []);
      // Each job leaves megabytes of buffers (the file, its plaintext, the encoded and the
      // verifying decode): freed now rather than at V8's external-memory limit (collect.ts).
      collectYoung();
    })
    .catch((err: unknown) => {
      // Codec exceptions from WebAssembly can be bare numbers: say what failed, not just that.
      const message = err instanceof Error ? err.message : `codec error ${String(err)}`;
      parentPort!.postMessage({ id: req.id, kind: 'error', reason: message } satisfies JobReply);
    });
});
