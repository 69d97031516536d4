import { hex4 } from '../dicom/status.js';

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
  associationRejected(): void {
    this.associationsRejected++;
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
      objectsStored: this.objectsStored,
      bytesStored: this.bytesStored,
      objectsFailed: this.objectsFailed,
      failuresByStatus: { ...this.failuresByStatus },
      lastStoredAt: this.lastStoredAt ? new Date(this.lastStoredAt).toISOString() : null,
    };
  }
}
