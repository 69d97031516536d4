import { existsSync } from 'node:fs';
import type { GatewayConfig } from '../config/types.js';
import type { SealKey, SealProfile } from '../spool/sealed-file.js';
import { DeviceKey } from './device-key.js';

/**
 * The spool's key-encryption keys, derived from the device key: one per sealing profile, so a
 * file sealed under either profile can always be opened.
 */
export function spoolKeks(device: DeviceKey): Record<SealProfile, Buffer> {
  return { 'aes-256-gcm': device.derive('spool-kek', 32), gm: Buffer.concat([device.derive('spool-kek-sm4', 16), device.derive('spool-kek-sm3', 32)]) };
}

/** The key new files are sealed with under `profile`, able to open the other profile's files too. */
export function sealKeyOf(device: DeviceKey, profile: SealProfile): SealKey {
  const keks = spoolKeks(device);
  return { profile, kek: keks[profile], others: keks };
}

/**
 * The spool's key from `spool.encryption` (the device key is made at the first start).
 * `sealNew` false: profile none — new files are written plain, but an existing device key still
 * opens what was sealed before, so turning encryption off never strands an object.
 */
export function spoolKey(config: GatewayConfig): { key: SealKey | undefined; sealNew: boolean } {
  const e = config.spool.encryption;
  if (e.profile === 'none' && !existsSync(e.keyFile)) return { key: undefined, sealNew: false };
  const device = DeviceKey.loadOrCreate(e.keyFile);
  return { key: sealKeyOf(device, e.profile === 'gm' ? 'gm' : 'aes-256-gcm'), sealNew: e.profile !== 'none' };
}
