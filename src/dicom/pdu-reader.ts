import { DicomParseError } from '../errors.js';
import { PduType } from './pdu.js';

/** What the reader reports. P-DATA values are delivered as slices of the socket's chunks, never copied. */
export interface PduHandler {
  /** A whole non-P-DATA PDU: its type and its body (after the 6-byte header). */
  onPdu(type: number, body: Buffer): void;
  /** A P-DATA-TF begins (its PDVs follow): the state machine's Evt10. */
  onPData?(length: number): void;
  /** A PDV item begins; `length` is the number of value bytes that will follow. */
  onPdvStart(contextId: number, control: number, length: number): void;
  onPdvData(data: Buffer): void;
  onPdvEnd(): void;
}

const enum State {
  PduHeader,
  PduBody,
  PdvHeader,
  PdvData,
}

/**
 * Incremental PDU framing, for both sides of an association (src/dicom/ul/provider.ts).
 *
 * P-DATA-TF is streamed: each PDV's value bytes go to the handler as they arrive, so an object
 * of any size passes through in socket-sized slices (memory does not grow with PDU or object
 * size). Other PDUs are small and are buffered whole, bounded by `maxControlPduLength`.
 *
 * @see PS3.8 §9.3.1 (PDU header), §9.3.5 (P-DATA-TF and PDV items)
 */
export class PduReader {
  private state = State.PduHeader;
  private readonly head = Buffer.alloc(6);
  private headFill = 0;
  private pduType = 0;
  private pduRemaining = 0;
  private pdvRemaining = 0;
  private body: Buffer[] = [];
  private bodyFill = 0;
  private bodyLength = 0;

  constructor(
    private readonly handler: PduHandler,
    private readonly limits: { maxPDataLength: number; maxControlPduLength: number },
  ) {}

  /** True between PDUs: nothing half-read. */
  get idle(): boolean {
    return this.state === State.PduHeader && this.headFill === 0;
  }

  /** @throws DicomParseError on a PDU type, length or PDV layout the standard does not allow. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.state) {
        case State.PduHeader: {
          off = this.fillHead(chunk, off);
          if (this.headFill < 6) return;
          this.headFill = 0;
          this.pduType = this.head[0]!;
          const length = this.head.readUInt32BE(2);
          if (this.pduType === PduType.PData) {
            if (length > this.limits.maxPDataLength) {
              throw new DicomParseError('PDU_TOO_LONG', `P-DATA-TF of ${length} bytes exceeds the negotiated maximum`, { length });
            }
            this.pduRemaining = length;
            this.state = State.PdvHeader;
            this.handler.onPData?.(length);
          } else {
            if (this.pduType < PduType.AssociateRq || this.pduType > PduType.Abort) {
              throw new DicomParseError('PDU_UNRECOGNIZED', `unrecognised PDU type 0x${this.pduType.toString(16)}`, { pduType: this.pduType });
            }
            if (length > this.limits.maxControlPduLength) {
              throw new DicomParseError('PDU_TOO_LONG', `PDU type 0x${this.pduType.toString(16)} of ${length} bytes is too long`, { length });
            }
            this.bodyLength = length;
            this.bodyFill = 0;
            this.body = [];
            this.state = State.PduBody;
            if (length === 0) this.finishBody();
          }
          break;
        }
        case State.PduBody: {
          const n = Math.min(this.bodyLength - this.bodyFill, chunk.length - off);
          this.body.push(chunk.subarray(off, off + n));
          this.bodyFill += n;
          off += n;
          if (this.bodyFill === this.bodyLength) this.finishBody();
          break;
        }
        case State.PdvHeader: {
          if (this.pduRemaining === 0) {
            this.state = State.PduHeader;
            break;
          }
          off = this.fillHead(chunk, off);
          if (this.headFill < 6) return;
          this.headFill = 0;
          const itemLength = this.head.readUInt32BE(0);
          if (itemLength < 2 || itemLength + 4 > this.pduRemaining) {
            throw new DicomParseError('PDV_MALFORMED', `PDV item length ${itemLength} does not fit its P-DATA-TF`, { itemLength });
          }
          this.pduRemaining -= 4 + itemLength;
          this.pdvRemaining = itemLength - 2;
          this.handler.onPdvStart(this.head[4]!, this.head[5]!, this.pdvRemaining);
          if (this.pdvRemaining === 0) this.endPdv();
          else this.state = State.PdvData;
          break;
        }
        case State.PdvData: {
          const n = Math.min(this.pdvRemaining, chunk.length - off);
          this.handler.onPdvData(chunk.subarray(off, off + n));
          this.pdvRemaining -= n;
          off += n;
          if (this.pdvRemaining === 0) this.endPdv();
          break;
        }
      }
    }
    // A P-DATA-TF that ended exactly at the end of this chunk returns to the PDU header state.
    if (this.state === State.PdvHeader && this.pduRemaining === 0 && this.headFill === 0) this.state = State.PduHeader;
  }

  private fillHead(chunk: Buffer, off: number): number {
    const n = Math.min(6 - this.headFill, chunk.length - off);
    chunk.copy(this.head, this.headFill, off, off + n);
    this.headFill += n;
    return off + n;
  }

  private endPdv(): void {
    this.state = this.pduRemaining === 0 ? State.PduHeader : State.PdvHeader;
    this.handler.onPdvEnd();
  }

  private finishBody(): void {
    const body = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body, this.bodyLength);
    this.body = [];
    this.state = State.PduHeader;
    this.handler.onPdu(this.pduType, body);
  }
}
