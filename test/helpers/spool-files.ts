import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { DeviceKey } from '../../src/security/device-key.js';
import { sealKeyOf } from '../../src/security/spool-key.js';
import { isSealed, profileOfHead, SealedReader, type SealKey, unsealBuffer } from '../../src/security/sealed-file.js';

/**
 * Spool files as the tests need them: spooled objects are encrypted at rest by default
 * (src/security/sealed-file.ts), so a test that looks at what the gateway stored decrypts it with
 * the device key beside the spool (`<spool.dir>/../keys/device.key`, the default of
 * `spool.encryption.keyFile`), exactly as the gateway does. Plain files are returned as they are.
 */
export function spoolKeyFor(file: string, keyFile?: string): SealKey {
  const head = Buffer.alloc(6);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 6, 0);
  } finally {
    closeSync(fd);
  }
  return spoolKey(path.dirname(path.dirname(file)), profileOfHead(head) ?? 'aes-256-gcm', keyFile);
}

/** The spool key a gateway with the default `spool.encryption.keyFile` uses for `spoolDir` (as src/gateway.ts derives it). */
export function spoolKey(spoolDir: string, profile: SealKey['profile'] = 'aes-256-gcm', keyFile?: string): SealKey {
  return sealKeyOf(DeviceKey.load(keyFile ?? path.join(path.dirname(spoolDir), 'keys', 'device.key')), profile);
}

/** The Part 10 bytes a spooled object holds (decrypted when sealed). */
export function readSpoolFile(file: string, keyFile?: string): Buffer {
  const bytes = readFileSync(file);
  return isSealed(bytes) ? unsealBuffer(spoolKeyFor(file, keyFile), bytes) : bytes;
}

/** Positional reads of a spooled object's plaintext, for objects too big to hold (1 GiB). */
export async function openSpoolFile(file: string): Promise<{ size: number; read: (buf: Buffer, position: number) => Promise<number>; close: () => void }> {
  const fd = openSync(file, 'r');
  const pread = async (buf: Buffer, position: number) => readSync(fd, buf, 0, buf.length, position);
  const head = Buffer.alloc(4);
  readSync(fd, head, 0, 4, 0);
  const size = fstatSync(fd).size;
  if (!isSealed(head)) return { size, read: pread, close: () => closeSync(fd) };
  const r = await SealedReader.open(spoolKeyFor(file), size, pread);
  return { size: r.size, read: (b, p) => r.read(b, p), close: () => closeSync(fd) };
}
