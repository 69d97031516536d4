import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * The disk's own floor for a durable store, without any DICOM: N times, sequentially, create
 * `<i>.dcm`, write one instance's bytes, fsync the file, fsync the directory (so the new entry
 * is durable too). That is the least work a receiver must do per object on one association to
 * answer Success only once the object is on disk, so none can beat this rate on this filesystem.
 */
export function durableWriteFloor(templateFile: string, dir: string, n: number): { objects: number; ms: number; objectsPerSec: number } {
  const bytes = readFileSync(templateFile);
  mkdirSync(dir, { recursive: true });
  const dfd = openSync(dir, 'r');
  try {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const fd = openSync(path.join(dir, `${i}.dcm`), 'w');
      try {
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      fsyncSync(dfd);
    }
    const ms = performance.now() - t0;
    return { objects: n, ms, objectsPerSec: n / (ms / 1000) };
  } finally {
    closeSync(dfd);
  }
}
