import { hex4 } from '../dicom/status.js';
import type { RejectCode } from './negotiation.js';

/** A refused association: AE titles and address (never patient data) and why. */
export interface RejectedAssociation {
  callingAeTitle: string;
  calledAeTitle: string;
  address: string;
  /** The fixed reason: what refusals are counted by. */
  code: RejectCode;
  /** In words, peer values made safe and bounded (src/util/peer-text.ts). */
  why: string;
  /** A transient refusal (the gateway is busy): not the caller's fault, never counted against it. */
  transient?: boolean | undefined;
}

/** Reasons and calling AE titles tracked (beyond that, only the totals grow). */
const MAX_TRACKED = 64;

/** Receive-side counters for `pacs-edge status` and MQTT health. Counts, AE titles and addresses only. */
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
  /** Rejections by reason code (`calling-ae`, `max-associations`, …), for health reporting: a bounded set. */
  readonly rejectedByReason: Record<string, number> = {};
  private readonly rejectListeners: ((r: RejectedAssociation) => void)[] = [];

  /** Per reason: how many, and who was refused last (a bounded map: reasons are few, peers are not). */
  private readonly refused = new Map<string, { count: number; lastCallingAeTitle: string; lastAddress: string; lastAt: number; lastWhy: string }>();
  /** Per calling AE title: objects stored and the last arrival ("CT1: last image 2 h ago"). */
  private readonly callers = new Map<string, { objects: number; lastStoredAt: number }>();

  associationRejected(r: RejectedAssociation): void {
    this.associationsRejected++;
    this.rejectedByReason[r.code] = (this.rejectedByReason[r.code] ?? 0) + 1;
    const e = this.refused.get(r.code);
    if (e || this.refused.size < MAX_TRACKED) {
      this.refused.set(r.code, { count: (e?.count ?? 0) + 1, lastCallingAeTitle: r.callingAeTitle.slice(0, 16), lastAddress: r.address.slice(0, 64), lastAt: Date.now(), lastWhy: r.why.slice(0, 300) });
    }
    for (const fn of this.rejectListeners) fn(r);
  }

  onRejected(fn: (r: RejectedAssociation) => void): void {
    this.rejectListeners.push(fn);
  }
  stored(bytes: number, callingAeTitle?: string): void {
    this.objectsStored++;
    this.bytesStored += bytes;
    this.lastStoredAt = Date.now();
    if (callingAeTitle !== undefined) {
      const c = this.callers.get(callingAeTitle);
      if (c || this.callers.size < MAX_TRACKED) this.callers.set(callingAeTitle, { objects: (c?.objects ?? 0) + 1, lastStoredAt: this.lastStoredAt });
    }
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
      refused: [...this.refused].map(([reason, e]) => ({ reason, why: e.lastWhy, count: e.count, lastCallingAeTitle: e.lastCallingAeTitle, lastAddress: e.lastAddress, lastAt: new Date(e.lastAt).toISOString() })),
      callers: [...this.callers].map(([aeTitle, c]) => ({ aeTitle, objects: c.objects, lastStoredAt: new Date(c.lastStoredAt).toISOString() })),
    };
  }
}
