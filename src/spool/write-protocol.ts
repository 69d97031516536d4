import type { SealProfile } from '../security/sealed-file.js';

/**
 * The messages between the main thread and a spool write worker (src/spool/write-pool.ts,
 * src/spool/write-worker.ts), and the size of the batches they carry.
 */

/** A seal key as it crosses the thread boundary (plain typed arrays). */
export interface KeyMessage {
  profile: SealProfile;
  kek: Uint8Array;
  others: Record<string, Uint8Array>;
}

/** What the main thread tells a write worker. */
export type ToWriter =
  /** `keyId` names a seal key; its bytes travel once per worker (`key`), the first time it is used there. */
  | { t: 'open'; obj: number; fd: number; header: Uint8Array; hash: boolean; keyId?: number | undefined; key?: KeyMessage | undefined }
  | { t: 'data'; obj: number; buf: ArrayBuffer; len: number }
  | { t: 'end'; obj: number }
  | { t: 'abort'; obj: number }
  /** Hash a whole buffer and, with a key, seal it (the compression-at-rest rewriter's new file). */
  | { t: 'seal'; obj: number; keyId?: number | undefined; key?: KeyMessage | undefined; buf: ArrayBuffer };

/** What a write worker answers. */
export type FromWriter =
  | { t: 'ack'; obj: number; buf: ArrayBuffer; first: boolean }
  /** Every byte written: indexing may start. `synced` (or `error`) follows once the file is fsynced. */
  | { t: 'written'; obj: number; size: number; sha256: string }
  | { t: 'synced'; obj: number }
  | { t: 'error'; obj: number; code: string; message: string }
  | { t: 'aborted'; obj: number }
  /** The file's bytes (sealed, or the plaintext handed back) and the plaintext's SHA-256. */
  | { t: 'sealed'; obj: number; buf: ArrayBuffer; sha256: string }
  | { t: 'seal-failed'; obj: number; message: string };

/** Plaintext travels to a worker in batches of this size (the last one of an object shorter). */
export const BATCH_BYTES = 256 * 1024;

/** What a writer needs of its pool and of the worker its object is assigned to. */
export interface WriterHost {
  /** A free batch buffer (its own ArrayBuffer, transferable). */
  take(): Buffer;
  /** A batch buffer no longer needed. */
  give(buf: ArrayBuffer): void;
  /** To the object's worker; `transfer` moves the buffer instead of copying it. */
  post(msg: ToWriter, transfer?: ArrayBuffer): void;
  /** The worker is done with the object (written, failed or aborted). */
  release(obj: number): void;
}
