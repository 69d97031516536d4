import fs from 'node:fs';
import path from 'node:path';
import { crashpoint } from './crashpoint.js';
import { closeFd, fsyncFd, openFd, writeFd } from './fd.js';

/*
 * Replacing a small file so that a crash or a power loss leaves either the old content or the
 * new, never an empty or half-written file. POSIX gives that only in this order:
 *
 *   1. write the new bytes to a temporary file in the same directory (rename is atomic only
 *      within one file system);
 *   2. fsync the temporary file: without it, the rename can reach the disk before the data, and
 *      after a power loss the target is there but empty (ext4 with delalloc, XFS, F2FS);
 *   3. rename it over the target (atomic: a reader sees the old file or the new one);
 *   4. fsync the directory: the rename is an entry in it, and only this makes it durable.
 *
 * Every file the gateway and its commands replace goes through here. Each step passes a crash
 * point named after the file (src/util/crashpoint.ts), so the tests can kill a process between
 * any two steps. One writer per target is assumed (the default temporary name is fixed, so a
 * crashed write leaves no litter: the next write reuses it); callers that may race pass `tmp`.
 */

export interface DurableWriteOptions {
  /** Mode of the new file (default 0o666, reduced by the umask like fs.writeFile). */
  mode?: number | undefined;
  /** Set `mode` exactly (fchmod), whatever the umask (a restored key must be 0600, not less open by luck). */
  exactMode?: boolean | undefined;
  /** Owner of the new file (fchown before it is fsynced). */
  owner?: { uid: number; gid: number } | undefined;
  /** The temporary file (default `<file>.tmp`, `<file>.<pid>.tmp` with `exclusive`); must be in the target's directory. */
  tmp?: string | undefined;
  /**
   * Create only: the target must not exist (EEXIST otherwise), and it appears whole or not at
   * all (link instead of rename). For a file that must never be replaced, such as a device key.
   */
  exclusive?: boolean | undefined;
  /** fsync of the directory, when the caller shares one (a coalesced sync); default: open, fsync, close. */
  syncDir?: (() => Promise<void>) | undefined;
  /**
   * The temporary file is created with O_EXCL | O_NOFOLLOW (a stale one, or a symbolic link
   * planted in its place, is removed first, never followed): for writes into a directory
   * someone else could have prepared (`pacs-edge restore`). Synchronous writes only.
   */
  noFollow?: boolean | undefined;
}

/** A temporary file written and fsynced, waiting to be put in place. */
export interface StagedFile {
  /** Where the new bytes are now (read them, check them, before they count). */
  readonly tmp: string;
  /** Rename (or link, `exclusive`) over the target and fsync the directory. */
  commit(): Promise<void>;
  /** Drop the temporary file; the target is untouched. */
  discard(): Promise<void>;
}

export interface StagedFileSync {
  readonly tmp: string;
  commit(): void;
  discard(): void;
}

const tmpOf = (file: string, o: DurableWriteOptions): string => {
  const tmp = o.tmp ?? (o.exclusive ? `${file}.${process.pid}.tmp` : `${file}.tmp`);
  if (path.dirname(path.resolve(tmp)) !== path.dirname(path.resolve(file))) throw new Error(`durable write: ${tmp} is not in the directory of ${file}`);
  return tmp;
};

/** Replace `file` with `data` durably (see the top of this module). */
export async function writeDurable(file: string, data: string | Uint8Array, o: DurableWriteOptions = {}): Promise<void> {
  const staged = await stageDurable(file, data, o);
  await staged.commit();
}

/** Steps 1–2: the new bytes in a fsynced temporary file; {@link StagedFile.commit} does 3–4. */
export async function stageDurable(file: string, data: string | Uint8Array, o: DurableWriteOptions = {}): Promise<StagedFile> {
  const tmp = tmpOf(file, o);
  const scope = path.basename(file);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const fd = await openFd(tmp, 'w', o.mode ?? 0o666);
  try {
    if (o.owner) await new Promise<void>((resolve, reject) => fs.fchown(fd, o.owner!.uid, o.owner!.gid, (err) => (err ? reject(err) : resolve())));
    if (o.exactMode && o.mode !== undefined) await new Promise<void>((resolve, reject) => fs.fchmod(fd, o.mode!, (err) => (err ? reject(err) : resolve())));
    let off = 0;
    while (off < bytes.length) off += await writeFd(fd, bytes.subarray(off), off);
    crashpoint('durable-written', scope);
    await fsyncFd(fd);
    crashpoint('durable-synced', scope);
  } catch (err) {
    await closeFd(fd).catch(() => undefined);
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await closeFd(fd);
  return {
    tmp,
    commit: async () => {
      try {
        if (o.exclusive) await fs.promises.link(tmp, file);
        else await fs.promises.rename(tmp, file);
      } finally {
        if (o.exclusive) await fs.promises.unlink(tmp).catch(() => undefined);
      }
      crashpoint('durable-renamed', scope);
      await (o.syncDir ? o.syncDir() : syncDir(path.dirname(file)));
      crashpoint('durable-done', scope);
    },
    discard: () => fs.promises.unlink(tmp).catch(() => undefined),
  };
}

/** {@link writeDurable} for synchronous callers (commands, start-up). */
export function writeDurableSync(file: string, data: string | Uint8Array, o: Omit<DurableWriteOptions, 'syncDir'> = {}): void {
  stageDurableSync(file, data, o).commit();
}

/** {@link stageDurable} for synchronous callers. */
export function stageDurableSync(file: string, data: string | Uint8Array, o: Omit<DurableWriteOptions, 'syncDir'> = {}): StagedFileSync {
  const tmp = tmpOf(file, o);
  const scope = path.basename(file);
  if (o.noFollow) fs.rmSync(tmp, { force: true }); // unlink: a planted link goes, its target is untouched
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, o.noFollow ? O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW : 'w', o.mode ?? 0o666);
  try {
    if (o.owner) fs.fchownSync(fd, o.owner.uid, o.owner.gid);
    if (o.exactMode && o.mode !== undefined) fs.fchmodSync(fd, o.mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off, off);
    crashpoint('durable-written', scope);
    fs.fsyncSync(fd);
    crashpoint('durable-synced', scope);
  } catch (err) {
    fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw err;
  }
  fs.closeSync(fd);
  return {
    tmp,
    commit: () => {
      try {
        if (o.exclusive) fs.linkSync(tmp, file);
        else fs.renameSync(tmp, file);
      } finally {
        if (o.exclusive) {
          try {
            fs.unlinkSync(tmp);
          } catch {
            /* already gone */
          }
        }
      }
      crashpoint('durable-renamed', scope);
      syncDirSync(path.dirname(file));
      crashpoint('durable-done', scope);
    },
    discard: () => {
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* already gone */
      }
    },
  };
}

/** fsync a directory: makes a new, renamed or deleted entry in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await openFd(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

export function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
