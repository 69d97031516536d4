import { DicomParseError } from '../../errors.js';
import { PduType } from '../pdu.js';

/**
 * Presentation Data Values: the message control header's bits, the P-DATA-TF encoder, and the
 * assembler that turns a stream of PDVs back into DIMSE messages.
 *
 * @see PS3.8 §9.3.5 (P-DATA-TF), Annex E.2 (message control header)
 */
export const PdvControl = {
  /** Bit 0: the fragment is part of a command set (else of a data set). */
  Command: 0x01,
  /** Bit 1: the fragment is the last of its command or data set. */
  Last: 0x02,
  /** Bits 2–7 are always 0. */
  Reserved: 0xfc,
} as const;

/** Bytes a PDV adds inside a P-DATA-TF: item length (4), context ID (1), control header (1). */
export const PDV_OVERHEAD = 6;
/** A P-DATA-TF carrying one PDV: PDU header (6) plus the PDV's own header (6). */
export const PDATA_HEADER_BYTES = 12;

/** The control header byte for a fragment. */
export function pdvControl(isCommand: boolean, last: boolean): number {
  return (isCommand ? PdvControl.Command : 0) | (last ? PdvControl.Last : 0);
}

/** The 12-byte header of a P-DATA-TF that carries exactly one PDV of `length` value bytes. */
export function encodePDataHeader(contextId: number, control: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(PDATA_HEADER_BYTES);
  head[0] = PduType.PData;
  head[1] = 0;
  head.writeUInt32BE(length + PDV_OVERHEAD, 2);
  head.writeUInt32BE(length + 2, 6);
  head[10] = contextId;
  head[11] = control;
  return head;
}

/**
 * The largest PDV value that fits the peer's maximum P-DATA-TF length (0 = unlimited, then
 * `fallback`), never below 1 byte.
 * @see PS3.8 §9.3.5, PS3.7 Annex D.1 (Maximum Length)
 */
export function maxFragment(peerMaxPduLength: number, fallback: number): number {
  return peerMaxPduLength > PDV_OVERHEAD ? peerMaxPduLength - PDV_OVERHEAD : fallback;
}

/**
 * A whole command or data set as P-DATA-TF PDUs of one PDV each, fragmented to the peer's
 * maximum length (0 = unlimited); the last fragment carries the Last bit.
 */
export function encodePData(contextId: number, isCommand: boolean, data: Buffer, peerMaxPduLength: number): Buffer[] {
  const size = maxFragment(peerMaxPduLength, data.length || 1);
  const out: Buffer[] = [];
  let off = 0;
  do {
    const n = Math.min(size, data.length - off);
    const last = off + n >= data.length;
    out.push(Buffer.concat([encodePDataHeader(contextId, pdvControl(isCommand, last), n), data.subarray(off, off + n)]));
    off += n;
  } while (off < data.length);
  return out;
}

/** What the assembler hands up: whole command sets, data sets as a stream of fragments. */
export interface MessageSink {
  /** A complete command set (all its fragments, concatenated). */
  onCommand(contextId: number, command: Buffer): void;
  /** Value bytes of a data set, in order; slices of the socket's chunks, valid during the call. */
  onData(contextId: number, data: Buffer): void;
  /** The data set's last fragment has been handed over. */
  onDataEnd(contextId: number): void;
}

/**
 * PDVs to DIMSE messages. Checks what PS3.8 Annex E and PS3.7 §6.3.1 make of the fragment
 * sequence: reserved control bits are zero, a command set is not interleaved with a data set,
 * a data set's fragments stay on one presentation context, and a command set is bounded (they
 * are a few hundred bytes; a huge one is an attack or a bug). Violations throw
 * {@link DicomParseError}, which the provider turns into an A-ABORT.
 */
export class PdvAssembler {
  private control = 0;
  private contextId = 0;
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  /** Context of the data set being received, from its first fragment to its last. */
  private dataContext: number | undefined;

  constructor(
    private readonly sink: MessageSink,
    private readonly maxCommandBytes: number,
  ) {}

  /** True when no command or data set is half received. */
  get idle(): boolean {
    return this.commandBytes === 0 && this.commandParts.length === 0 && this.dataContext === undefined;
  }

  start(contextId: number, control: number): void {
    if ((control & PdvControl.Reserved) !== 0) {
      throw new DicomParseError('PDV_MALFORMED', `message control header 0x${control.toString(16)} has reserved bits set`);
    }
    const isCommand = (control & PdvControl.Command) !== 0;
    if (isCommand && this.dataContext !== undefined) throw new DicomParseError('PDV_MALFORMED', 'command fragment received in the middle of a data set');
    if (!isCommand && this.commandParts.length > 0) throw new DicomParseError('PDV_MALFORMED', 'data set fragment received in the middle of a command set');
    if (isCommand && this.commandParts.length > 0 && contextId !== this.contextId) {
      throw new DicomParseError('PDV_MALFORMED', 'command fragments on different presentation contexts');
    }
    if (!isCommand && this.dataContext !== undefined && contextId !== this.dataContext) {
      throw new DicomParseError('PDV_MALFORMED', 'data set fragments on different presentation contexts');
    }
    this.control = control;
    this.contextId = contextId;
    if (!isCommand) this.dataContext = contextId;
  }

  data(chunk: Buffer): void {
    if ((this.control & PdvControl.Command) !== 0) {
      this.commandBytes += chunk.length;
      if (this.commandBytes > this.maxCommandBytes) throw new DicomParseError('COMMAND_TOO_LONG', `command set exceeds ${this.maxCommandBytes} bytes`);
      this.commandParts.push(Buffer.from(chunk)); // small; a copy lets the socket chunk go
    } else {
      this.sink.onData(this.contextId, chunk);
    }
  }

  end(): void {
    if ((this.control & PdvControl.Last) === 0) {
      // A command fragment that is not the last keeps the command open even when it is empty.
      if ((this.control & PdvControl.Command) !== 0 && this.commandParts.length === 0) this.commandParts.push(Buffer.alloc(0));
      return;
    }
    if ((this.control & PdvControl.Command) !== 0) {
      const command = Buffer.concat(this.commandParts, this.commandBytes);
      this.commandParts = [];
      this.commandBytes = 0;
      this.sink.onCommand(this.contextId, command);
    } else {
      this.dataContext = undefined;
      this.sink.onDataEnd(this.contextId);
    }
  }
}
