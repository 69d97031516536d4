import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceKey } from '../../src/security/device-key.js';
import { PATIENT_PSEUDONYM_PURPOSE, patientAuditRef, patientPseudonym } from '../../src/security/patient-pseudonym.js';
import { tempDir } from '../helpers/processes.js';

const tmp = tempDir('pacs-edge-pseudonym-');
afterAll(() => tmp.cleanup());
const keyA = DeviceKey.loadOrCreate(path.join(tmp.dir, 'a.key'));
const keyB = DeviceKey.loadOrCreate(path.join(tmp.dir, 'b.key'));

describe('audit.patientId: the Patient participant', () => {
  it('pseudonym: a keyed HMAC, stable per device, different on another device, never the ID', () => {
    const ref = patientAuditRef('pseudonym', keyA);
    const p = ref('PID-0042');
    expect(p).toMatch(/^[0-9a-f]{64}$/);
    expect(p).not.toContain('0042');
    // Stable on this device (an auditor follows one patient), whatever LO padding came with it.
    expect(ref('PID-0042 ')).toBe(p);
    expect(patientAuditRef('pseudonym', keyA)('PID-0042')).toBe(p);
    // The same value `pacs-edge audit pseudonym` computes from the typed ID.
    expect(patientPseudonym(keyA.derive(PATIENT_PSEUDONYM_PURPOSE), Buffer.from('PID-0042', 'utf8'))).toBe(p);
    // Keyed: another device key gives another pseudonym (a guessed ID cannot be checked without the key).
    expect(patientAuditRef('pseudonym', keyB)('PID-0042')).not.toBe(p);
    expect(ref('PID-0043')).not.toBe(p);
    expect(ref(undefined)).toBeUndefined();
    expect(ref('   ')).toBeUndefined();
  });

  it('clear writes the ID itself; none writes nothing', () => {
    expect(patientAuditRef('clear', keyA)('PID-0042 ')).toBe('PID-0042');
    expect(patientAuditRef('none', keyA)('PID-0042')).toBeUndefined();
  });
});
