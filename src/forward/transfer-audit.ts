import type { AuditEvents } from '../audit/index.js';
import type { ForwardConfig } from '../config/types.js';
import type { Claim } from '../spool/spool.js';

/**
 * The audit messages of one destination's batches: 110102 Begin Transferring once per study
 * when a batch starts, and 110104 DICOM Instances Transferred (action R) once per study, SOP
 * class, outcome and patient when it ends, rather than one message per object. The patient is
 * the record's `patientRef`, made at reception (src/security/patient-pseudonym.ts).
 * @see PS3.15 A.5.3.2 (Begin Transferring), A.5.3.5 (Instances Transferred)
 */
export class TransferAudit {
  /** Delivered (or given up) in the current batch, by "study|SOP class|failure". */
  private readonly batch = new Map<string, number>();

  constructor(
    private readonly dest: Pick<ForwardConfig, 'name' | 'aeTitle' | 'host'>,
    private readonly audit: AuditEvents | undefined,
  ) {}

  begin(claims: readonly Claim[]): void {
    const a = this.audit;
    if (!a) return;
    const byStudy = new Map<string, number>();
    for (const c of claims) {
      const k = JSON.stringify([c.record.studyInstanceUid ?? '', c.record.patientRef ?? '']);
      byStudy.set(k, (byStudy.get(k) ?? 0) + 1);
    }
    for (const [k, count] of byStudy) {
      const [studyUid = '', patient] = JSON.parse(k) as string[];
      a.beginTransfer({ destination: this.dest.name, aeTitle: this.dest.aeTitle, address: this.dest.host, studyUid, count, ...(patient ? { patient } : {}) });
    }
  }

  /** One object of the batch is settled: delivered, or (`failed`, why) given up. */
  note(c: Claim, failed?: string): void {
    if (!this.audit) return;
    // JSON, not a separator: a Patient ID in clear may hold any character.
    const k = JSON.stringify([c.record.studyInstanceUid ?? '', c.record.sopClassUid, failed ?? '', c.record.patientRef ?? '']);
    this.batch.set(k, (this.batch.get(k) ?? 0) + 1);
  }

  flush(): void {
    for (const [k, count] of this.batch) {
      const [studyUid = '', sopClassUid = '', failed, patient] = JSON.parse(k) as string[];
      this.audit?.instancesForwarded({ destination: this.dest.name, aeTitle: this.dest.aeTitle, address: this.dest.host, studyUid, sopClassUid, count, ...(failed ? { failed } : {}), ...(patient ? { patient } : {}) });
    }
    this.batch.clear();
  }
}
