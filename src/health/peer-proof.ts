import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, unlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { PacsEdgeError } from '../errors.js';
import type { Role } from './roles.js';

/**
 * Who sent a control request, proven by the kernel rather than claimed (Node has no
 * SO_PEERCRED). The server answers `POST /who` with a random nonce; the client creates the file
 * `<who dir>/<nonce>` (O_CREAT|O_EXCL|O_NOFOLLOW) and sends its request with the nonce in
 * `x-pacs-edge-proof`. The server lstat()s the file — a regular file with one link — and takes its
 * owner as the caller: only a process running as that uid (or root) can create a file owned by
 * it. The who dir is mode 1733 (anyone may create, nobody may list, and the sticky bit keeps
 * anyone but the owner from renaming or removing another's file), owned by the gateway. A nonce
 * is good once, on the socket that issued it, for {@link NONCE_TTL_MS}; the file is removed.
 */
export const PROOF_HEADER = 'x-pacs-edge-proof';
export const NONCE_TTL_MS = 30_000;
/** At most this many nonces wait for their file: a client asking for nonces in a loop cannot grow memory. */
const MAX_PENDING = 1024;
const NONCE = /^[0-9a-f]{64}$/;

const denied = (why: string) => new PacsEdgeError('CONTROL_PROOF_FAILED', `who sent this request is not proven: ${why}`);

export class Challenges {
  private readonly pending = new Map<string, { role: Role; at: number }>();

  constructor(private readonly whoDir: string) {}

  /** Make the who dir (1733, ours) and empty it of files a killed client left. */
  async prepare(): Promise<void> {
    await mkdir(this.whoDir, { recursive: true });
    const st = await lstat(this.whoDir);
    const uid = process.geteuid?.() ?? 0;
    // A who dir someone else owns could have its files renamed by that owner: never trust one.
    if (!st.isDirectory() || st.uid !== uid) throw new PacsEdgeError('LISTEN_FAILED', `${this.whoDir} is not a directory owned by the gateway's user (uid ${uid}): remove it`, { retryable: false });
    await chmod(this.whoDir, 0o1733);
    for (const n of await readdir(this.whoDir)) await unlink(path.join(this.whoDir, n)).catch(() => undefined);
  }

  issue(role: Role): string {
    const now = Date.now();
    for (const [n, p] of this.pending) if (now - p.at > NONCE_TTL_MS || this.pending.size >= MAX_PENDING) this.forget(n);
    const nonce = randomBytes(32).toString('hex');
    this.pending.set(nonce, { role, at: now });
    return nonce;
  }

  /** The uid that proved itself with `nonce` on a socket of `role`; throws CONTROL_PROOF_FAILED. */
  async verify(nonce: string | undefined, role: Role): Promise<number> {
    if (!nonce || !NONCE.test(nonce)) throw denied(`no ${PROOF_HEADER} (ask POST /who first)`);
    const p = this.pending.get(nonce);
    this.pending.delete(nonce);
    if (!p || p.role !== role || Date.now() - p.at > NONCE_TTL_MS) throw denied('the nonce was not issued on this socket, was used already, or expired');
    const file = path.join(this.whoDir, nonce);
    const st = await lstat(file).catch(() => undefined);
    await unlink(file).catch(() => undefined);
    if (!st) throw denied('no who-file for the nonce');
    if (!st.isFile()) throw denied('the who-file is not a regular file (a link is no proof)');
    if (st.nlink !== 1) throw denied('the who-file has more than one link (a hard link to another’s file is no proof)');
    return st.uid;
  }

  private forget(nonce: string): void {
    this.pending.delete(nonce);
    void unlink(path.join(this.whoDir, nonce)).catch(() => undefined);
  }
}

/** Client side: create the who-file for `nonce` as this process's uid; returns its remover. */
export function createWhoFile(whoDir: string, nonce: string): () => void {
  if (!NONCE.test(nonce)) throw new PacsEdgeError('CONTROL_PROOF_FAILED', 'the gateway answered /who without a valid nonce');
  const file = path.join(whoDir, nonce);
  closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
  return () => {
    try {
      unlinkSync(file);
    } catch {
      /* the gateway removed it: the usual case */
    }
  };
}
