import type { AuditEvents } from '../audit/index.js';
import type { ForwardConfig } from '../config/types.js';
import type { Claim } from '../spool/spool.js';

/**
 * The audit messages of one destination's batches: 110102 Begin Transferring once per study
 * when a batch starts, and 110104 DICOM Instances Transferred (action R) once per study, SOP
 * class and outcome when it ends, rather than one message per object.
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
    for (const c of claims) byStudy.set(c.record.studyInstanceUid ?? '', (byStudy.get(c.record.studyInstanceUid ?? '') ?? 0) + 1);
    for (const [studyUid, count] of byStudy) a.beginTransfer({ destination: this.dest.name, aeTitle: this.dest.aeTitle, address: this.dest.host, studyUid, count });
  }

  /** One object of the batch is settled: delivered, or (`failed`, why) given up. */
  note(c: Claim, failed?: string): void {
    if (!this.audit) return;
    const k = `${c.record.studyInstanceUid ?? ''}|${c.record.sopClassUid}|${failed ?? ''}`;
    this.batch.set(k, (this.batch.get(k) ?? 0) + 1);
  }

  flush(): void {
    for (const [k, count] of this.batch) {
      const [studyUid = '', sopClassUid = '', failed] = k.split('|');
      this.audit?.instancesForwarded({ destination: this.dest.name, aeTitle: this.dest.aeTitle, address: this.dest.host, studyUid, sopClassUid, count, ...(failed ? { failed } : {}) });
    }
    this.batch.clear();
  }
}
