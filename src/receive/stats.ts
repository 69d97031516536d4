import { hex4 } from '../dicom/status.js';

/** A refused association: AE titles and address (never patient data) and why. */
export interface RejectedAssociation {
  callingAeTitle: string;
  calledAeTitle: string;
  address: string;
  why: string;
  /** A transient refusal (the gateway is busy): not the caller's fault, never counted against it. */
  transient?: boolean | undefined;
}

/** Receive-side counters for `pacs-edge status` and (later) MQTT health. Counts only, no identifiers. */
export class ReceiveStats {
  connections = 0;
  activeAssociations = 0;
  associationsAccepted = 0;
  associationsRejected = 0;
  objectsStored = 0;
  bytesStored = 0;
  objectsFailed = 0;
  readonly failuresByStatus: Record<string, number> = {};
  lastStoredAt: number | undefined;

  connectionOpened(): void {
    this.connections++;
  }
  connectionClosed(): void {
    this.connections--;
  }
  associationOpened(): void {
    this.activeAssociations++;
    this.associationsAccepted++;
  }
  associationClosed(): void {
    this.activeAssociations--;
  }
  /** Rejections by reason ("calling AE title not recognized", …), for health reporting. */
  readonly rejectedByReason: Record<string, number> = {};
  private readonly rejectListeners: ((r: RejectedAssociation) => void)[] = [];

  associationRejected(r: RejectedAssociation): void {
    this.associationsRejected++;
    this.rejectedByReason[r.why] = (this.rejectedByReason[r.why] ?? 0) + 1;
    for (const fn of this.rejectListeners) fn(r);
  }

  onRejected(fn: (r: RejectedAssociation) => void): void {
    this.rejectListeners.push(fn);
  }
  stored(bytes: number): void {
    this.objectsStored++;
    this.bytesStored += bytes;
    this.lastStoredAt = Date.now();
  }
  failed(status: number): void {
    this.objectsFailed++;
    const k = `0x${hex4(status)}`;
    this.failuresByStatus[k] = (this.failuresByStatus[k] ?? 0) + 1;
  }

  snapshot(): Record<string, unknown> {
    return {
      activeAssociations: this.activeAssociations,
      associationsAccepted: this.associationsAccepted,
      associationsRejected: this.associationsRejected,
      rejectedByReason: { ...this.rejectedByReason },
      objectsStored: this.objectsStored,
      bytesStored: this.bytesStored,
      objectsFailed: this.objectsFailed,
      failuresByStatus: { ...this.failuresByStatus },
      lastStoredAt: this.lastStoredAt ? new Date(this.lastStoredAt).toISOString() : null,
    };
  }
}
