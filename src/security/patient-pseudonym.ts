import { createHmac } from 'node:crypto';
import type { DeviceKey } from './device-key.js';

/**
 * The Patient participant of the audit messages about instances (PS3.15 A.5.3, RFC 3881
 * ParticipantObjectTypeCode 1 person, role 1 patient, ID type 2 "Patient Number"), as
 * `audit.patientId` asks:
 * - `pseudonym` (default): HMAC-SHA256 of the Patient ID under a key derived from the device key
 *   (`audit-patient`, RFC 5869 HKDF), hex. Stable on one device, so an auditor follows one
 *   patient's images through the trail, and `pacs-edge audit pseudonym` computes it for a given
 *   ID; without the device key it cannot be checked against guessed IDs.
 * - `clear`: the Patient ID itself (against the principle of no patient data in clear; for sites
 *   whose regulator asks for it).
 * - `none`: no Patient participant.
 * The ID is read from the data set only to make this value; it is never logged, sent on MQTT or
 * put in an error message.
 */
export type PatientIdMode = 'pseudonym' | 'clear' | 'none';
export const PATIENT_ID_MODES: readonly PatientIdMode[] = ['pseudonym', 'clear', 'none'];
export const PATIENT_PSEUDONYM_PURPOSE = 'audit-patient';

/**
 * The pseudonym of a Patient ID's bytes (LO: leading and trailing spaces do not count);
 * undefined when empty. Bytes, not text: the receiver reads the value byte for byte (latin1)
 * whatever its character set, and `audit pseudonym` gives the bytes of the ID as typed (UTF-8),
 * so both agree for ASCII IDs and for data sets in UTF-8 (ISO_IR 192).
 */
export function patientPseudonym(key: Buffer, patientId: Buffer | undefined): string | undefined {
  const v = patientId?.toString('latin1').trim();
  if (!v) return undefined;
  return createHmac('sha256', key).update(Buffer.from(v, 'latin1')).digest('hex');
}

/** What the audit messages name the patient by, for a mode; undefined: no Patient participant. */
export function patientAuditRef(mode: PatientIdMode, device: DeviceKey): (patientId: string | undefined) => string | undefined {
  if (mode === 'none') return () => undefined;
  if (mode === 'clear') return (id) => (id ? Buffer.from(id, 'latin1').toString('utf8').trim() || undefined : undefined);
  const key = device.derive(PATIENT_PSEUDONYM_PURPOSE);
  // The walker's value holds the bytes as latin1 code points (src/dicom/dataset-walker.ts).
  return (id) => (id === undefined ? undefined : patientPseudonym(key, Buffer.from(id, 'latin1')));
}
