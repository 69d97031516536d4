import { Code, PacsEdgeError } from '../errors.js';
import { isSealed, SEALED_HEAD_BYTES, SealedReader, type SealKey } from '../security/sealed-file.js';
import { closeFd, openFd, readFd } from '../util/fd.js';
import type { HashPool } from './hash-pool.js';
import type { ObjectReader, SpoolRecord } from './spool.js';

/**
 * Open a spooled object's file for reading, plain or sealed (src/security/sealed-file.ts).
 * With `verify: 'spool'` the whole file is hashed first and must match the record's SHA-256 and
 * size; with `'caller'` the caller hashes what it reads; with `'memory'` (the forwarder's
 * prefetch) a hash-pool worker reads, decrypts, authenticates and hashes it and hands over the
 * plaintext, so none of that runs on the event loop.
 */
export async function openObjectFile(file: string, record: SpoolRecord, o: { verify: 'spool' | 'caller' | 'memory'; seal?: SealKey | undefined; hashPool: HashPool }): Promise<ObjectReader> {
  if (o.verify === 'memory') {
    const loaded = await o.hashPool.loadFile(file, { size: record.size, sha256: record.sha256, plain: record.plain === true, sopInstanceUid: record.sopInstanceUid, transferSyntaxUid: record.transferSyntaxUid }).catch((err: unknown) => {
      // A damaged file is never sent; any other trouble (a worker gone) is met as before, by streaming.
      if (err instanceof PacsEdgeError && err.code === Code.SPOOL_CORRUPT) throw err;
      return undefined;
    });
    // Closed once sent: its buffer goes back to the pool for the next load.
    if (loaded) return bufferReader(loaded, record.sha256, () => o.hashPool.giveBack(loaded));
    return openObjectFile(file, record, { ...o, verify: 'caller' });
  }
  const { sha256, size } = o.verify === 'caller' ? record : await o.hashPool.hashFile(file);
  // A sealed object received without a digest ('') is checked by opening it: every segment is authenticated.
  if ((record.sha256 !== '' && sha256 !== record.sha256) || size !== record.size) {
    throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${record.id} fails its SHA-256 check`, {
      details: { id: record.id, sopInstanceUid: record.sopInstanceUid, size, expectedSize: record.size },
    });
  }
  const fd = await openFd(file, 'r');
  try {
    // One read tells plain from sealed and holds a sealed file's header.
    const head = Buffer.alloc(SEALED_HEAD_BYTES);
    const n = await readFd(fd, head, 0);
    if (isSealed(head.subarray(0, n))) {
      // Encrypted: every read decrypts and authenticates the segments it covers, so a changed
      // byte is found before any of its segment is used (and the SHA-256 still covers it all).
      if (!o.seal) throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${record.id} is encrypted, but the spool has no key`, { retryable: false });
      const sealed = SealedReader.fromHead(o.seal, head.subarray(0, n), record.size, (buf, position) => readFd(fd, buf, position));
      return { size: record.size, sha256: record.sha256, verified: o.verify !== 'caller' || record.sha256 === '', read: (buf, position) => sealed.read(buf, position), close: () => closeFd(fd) };
    }
    // Plain, where the authenticated record says sealed: a file planted or swapped on the card
    // by someone without the key. Never sent (a dead letter `corrupt:`, an alarm).
    if (!record.plain || record.sha256 === '') throw new PacsEdgeError('SPOOL_CORRUPT', `spooled object ${record.id} is not encrypted, but its record says it was sealed: a planted or swapped file`, { retryable: false, details: { id: record.id } });
  } catch (err) {
    await closeFd(fd).catch(() => undefined);
    throw err;
  }
  return {
    size,
    sha256: record.sha256,
    verified: o.verify !== 'caller',
    read: (buf, position) => readFd(fd, buf, position),
    close: () => closeFd(fd),
  };
}

/** A checked object held in memory, read like its file. */
export function bufferReader(data: Buffer, sha256: string, release?: () => void): ObjectReader {
  let closed = false;
  return {
    size: data.length,
    sha256,
    verified: true,
    read: async (buf, position) => (closed ? 0 : position >= data.length ? 0 : data.copy(buf, 0, position)),
    close: async () => {
      if (closed) return;
      closed = true;
      release?.();
    },
  };
}
