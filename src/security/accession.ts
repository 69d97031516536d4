import { createHmac } from 'node:crypto';
import type { DeviceKey } from './device-key.js';

/**
 * Accession Numbers are what a site asks about ("the CT with accession A123 is not in the
 * PACS"), but they identify an examination of a patient: the box keeps only a keyed hash
 * (HMAC-SHA256 with a key derived from the device key, `accession-index`), so `pacs-edge studies
 * --accession A123` finds the study while nothing on disk, in logs or on MQTT shows the number,
 * and a hash cannot be checked against guesses without the device key.
 */
export function accessionKey(device: DeviceKey): Buffer {
  return device.derive('accession-index');
}

/** The hash of an Accession Number (SH: leading and trailing spaces do not count); undefined when empty. */
export function accessionHash(key: Buffer | undefined, accessionNumber: string | undefined): string | undefined {
  const v = accessionNumber?.trim();
  if (!key || !v) return undefined;
  return createHmac('sha256', key).update(v, 'utf8').digest('hex').slice(0, 32);
}
