import { hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PacsEdgeError } from '../errors.js';
import { writeDurableSync } from '../util/durable-write.js';

/**
 * The device key: 32 random bytes in a file of its own (mode 0600, outside the spool), made at
 * the first start. Every other key is derived from it (HKDF-SHA256 with a purpose label), so a
 * backup of this one file and the configuration restores them all.
 *
 * Purposes in use: `spool-kek` (aes-256-gcm), `spool-kek-sm4` + `spool-kek-sm3` (gm) and
 * `spool-kek-chacha20` (chacha20-poly1305), which wrap the per-object data keys (all three are
 * derived whatever the profile, so files sealed under an earlier one still open), the same three
 * for `dead-letter-comment`, `audit-chain` (HMAC of the audit trail), `audit-anchor` (MAC
 * of the audit anchor in the spool's directory, src/audit/anchor.ts), `audit-patient` (the
 * Patient ID pseudonym of the audit messages, patient-pseudonym.ts) and `accession-index`. Backups are
 * encrypted under a passphrase instead (they must open on a box without this key).
 *
 * @see GB/T 22239-2019 §8.1.4.8 (数据保密性), RFC 5869 (HKDF)
 */
export const DEVICE_KEY_BYTES = 32;

export class DeviceKey {
  private constructor(private readonly key: Buffer, readonly file: string) {}

  /** Read the key file, or create it (exclusively, 0600, fsynced) when it does not exist. */
  static loadOrCreate(file: string): DeviceKey {
    try {
      return DeviceKey.load(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const key = randomBytes(DEVICE_KEY_BYTES);
    try {
      // Created whole or not at all (a temporary file linked into place): a crash half-way
      // must not leave an empty key file, which would keep the gateway from ever starting.
      writeDurableSync(file, key, { mode: 0o600, exclusive: true });
    } catch (err) {
      // Another process made it first: use theirs.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return DeviceKey.load(file);
      throw err;
    }
    return new DeviceKey(key, file);
  }

  /** Read an existing key file; refuses one that others can read or that has the wrong size. */
  static load(file: string): DeviceKey {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) {
      // Fix what we own rather than refuse to start; an operator copy with 0644 must not linger.
      try {
        chmodSync(file, 0o600);
      } catch {
        throw new PacsEdgeError('KEY_FILE_MODE', `device key file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); it must be 0600`, { retryable: false });
      }
    }
    const key = readFileSync(file);
    if (key.length !== DEVICE_KEY_BYTES) {
      throw new PacsEdgeError('KEY_FILE_INVALID', `device key file ${file} holds ${key.length} bytes, not ${DEVICE_KEY_BYTES}`, { retryable: false });
    }
    return new DeviceKey(key, file);
  }

  /** A key held in memory (a backup being restored), checked like a key file. */
  static fromBytes(key: Buffer, file: string): DeviceKey {
    if (key.length !== DEVICE_KEY_BYTES) {
      throw new PacsEdgeError('KEY_FILE_INVALID', `device key for ${file} holds ${key.length} bytes, not ${DEVICE_KEY_BYTES}`, { retryable: false });
    }
    return new DeviceKey(Buffer.from(key), file);
  }

  /** A key for one purpose, derived with HKDF-SHA256 (the device key itself is never used directly). */
  derive(purpose: string, bytes = 32): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), Buffer.from(`pacs-edge ${purpose}`, 'utf8'), bytes));
  }

  /** The raw key, for `pacs-edge backup` only. */
  exportForBackup(): Buffer {
    return Buffer.from(this.key);
  }
}
