import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from '../config/types.js';
import { PacsEdgeError } from '../errors.js';
import type { SealKey, SealProfile } from './sealed-file.js';
import { DeviceKey } from './device-key.js';

/**
 * The spool's key-encryption keys, derived from the device key: one per sealing profile, each
 * under its own HKDF purpose (no key serves two algorithms), so a file sealed under any profile
 * can always be opened.
 */
export function spoolKeks(device: DeviceKey): Record<SealProfile, Buffer> {
  return {
    'aes-256-gcm': device.derive('spool-kek', 32),
    gm: Buffer.concat([device.derive('spool-kek-sm4', 16), device.derive('spool-kek-sm3', 32)]),
    'chacha20-poly1305': device.derive('spool-kek-chacha20', 32),
  };
}

/**
 * The sealing profile of a `spool.encryption.profile`: `none` keeps the default's key, which
 * (with its `others`) still opens what was sealed before encryption was turned off.
 */
export function sealProfileOf(configured: GatewayConfig['spool']['encryption']['profile']): SealProfile {
  return configured === 'none' ? 'aes-256-gcm' : configured;
}

/** The key new files are sealed with under `profile`, able to open the other profiles' files too. */
export function sealKeyOf(device: DeviceKey, profile: SealProfile): SealKey {
  const keks = spoolKeks(device);
  return { profile, kek: keks[profile], others: keks };
}

/**
 * The MAC key of the spool index's records (HKDF purpose `spool-index`, src/spool/record-codec.ts):
 * derived under every profile, `none` included, so that records cannot be forged or changed on
 * the card without the device key.
 */
export function indexMacKey(device: DeviceKey): Buffer {
  return device.derive('spool-index', 32);
}

/**
 * The key of destinations' Error Comments kept in dead letters (HKDF purpose
 * `dead-letter-comment`): a seal key of the profile in force (src/spool/dead-letters.ts).
 */
export function commentKey(device: DeviceKey, profile: SealProfile): SealKey {
  const keks: Record<SealProfile, Buffer> = {
    'aes-256-gcm': device.derive('dead-letter-comment', 32),
    gm: Buffer.concat([device.derive('dead-letter-comment-sm4', 16), device.derive('dead-letter-comment-sm3', 32)]),
    'chacha20-poly1305': device.derive('dead-letter-comment-chacha20', 32),
  };
  return { profile, kek: keks[profile], others: keks };
}

/**
 * The spool's key under `spool.encryption` from the device key. `sealNew` false: profile none —
 * new files are written plain, but the device key still opens what was sealed before, so turning
 * encryption off never strands an object.
 */
export function spoolKey(config: GatewayConfig, device: DeviceKey | undefined): { key: SealKey | undefined; sealNew: boolean } {
  const profile = config.spool.encryption.profile;
  if (!device) return { key: undefined, sealNew: false };
  return { key: sealKeyOf(device, sealProfileOf(profile)), sealNew: profile !== 'none' };
}

/**
 * What on this box was made with the device key: spooled object files (sealed under it) and
 * audit day files (chained with it). Empty on a box where the gateway has never run.
 */
export function dataMadeWithDeviceKey(config: GatewayConfig): string[] {
  const out: string[] = [];
  const objects = path.join(config.spool.dir, 'objects');
  const count = (dir: string, re: RegExp) => {
    try {
      return readdirSync(dir).filter((n) => re.test(n)).length;
    } catch {
      return 0;
    }
  };
  const n = count(objects, /^\d{16}\.dcm$/);
  if (n > 0) out.push(`${n} spooled object file(s) in ${objects}`);
  const days = count(config.audit.dir, /^audit-\d{8}\.log$/);
  if (days > 0) out.push(`an audit trail of ${days} day file(s) in ${config.audit.dir}`);
  return out;
}

/**
 * The device key of `spool.encryption.keyFile`. It is made only at the very first start
 * (`create`), never over data made with another one: a new key would make every sealed object
 * and the whole audit chain unreadable, so a missing key with data present is a refusal that
 * names the file.
 *
 * @throws PacsEdgeError DEVICE_KEY_MISSING (nothing is created), KEY_FILE_INVALID / KEY_FILE_MODE
 */
export function deviceKeyFor(config: GatewayConfig, opts: { create: boolean }): DeviceKey {
  if (config.spool.encryption.keyCredential) return credentialKey(config.spool.encryption.keyCredential);
  const file = config.spool.encryption.keyFile;
  if (existsSync(file)) return DeviceKey.load(file);
  const data = dataMadeWithDeviceKey(config);
  if (data.length > 0) {
    throw new PacsEdgeError(
      'DEVICE_KEY_MISSING',
      `the device key ${file} is missing, but ${data.join(' and ')} were made with it: put the key file back (pacs-edge restore from a backup) and start again. A new key would make them unreadable, so none was made and nothing was changed.`,
      { retryable: false, details: { keyFile: file } },
    );
  }
  if (!opts.create) throw new PacsEdgeError('DEVICE_KEY_MISSING', `there is no device key ${file} yet: the gateway has not started here`, { retryable: false, details: { keyFile: file } });
  return DeviceKey.loadOrCreate(file);
}

/**
 * The device key from a systemd credential (`spool.encryption.keyCredential`): the file
 * `$CREDENTIALS_DIRECTORY/<name>`, which systemd decrypts for the service from
 * `LoadCredentialEncrypted=` (sealed to the board's TPM2, or to the host key in
 * /var/lib/systemd/credential.secret) into a private, unswappable ramfs. Nothing is written:
 * there is no key file on the data partition, and none is ever made. Absent (the unit lacks the
 * line, the credential cannot be decrypted on this board, the command runs outside the service):
 * a refusal, whatever data is here, since a new key would strand everything made with the old.
 *
 * @see systemd.exec(5) "Credentials", systemd-creds(1)
 * @throws PacsEdgeError DEVICE_KEY_CREDENTIAL_MISSING, KEY_FILE_INVALID
 */
export function credentialKey(name: string): DeviceKey {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  const file = dir ? path.join(dir, name) : undefined;
  if (!file || !existsSync(file)) {
    throw new PacsEdgeError(
      'DEVICE_KEY_CREDENTIAL_MISSING',
      dir
        ? `spool.encryption.keyCredential is ${name}, but there is no credential ${file}: add LoadCredentialEncrypted=${name}:… to the unit (systemd/pacs-edge-credential.conf) and check that it decrypts on this board. No key was made and nothing was changed.`
        : `spool.encryption.keyCredential is ${name}, but CREDENTIALS_DIRECTORY is not set: start the gateway from its unit (or a command with systemd-run -p LoadCredentialEncrypted=${name}:… --pipe). No key was made and nothing was changed.`,
      { retryable: false, details: { credential: name } },
    );
  }
  return DeviceKey.load(file);
}
