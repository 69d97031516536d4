import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { type DatasetIdentity, DatasetWalker } from '../dicom/dataset-walker.js';
import type { TransferSyntaxInfo } from '../dicom/transfer-syntaxes.js';
import { Code, DicomParseError, PacsEdgeError } from '../errors.js';

/**
 * Structural check of an incoming data set in its transfer syntax. For deflated syntaxes the
 * stream is inflated only to be checked (what is stored stays deflated, as it was sent).
 * @see PS3.5 §10.4 / Annex A.5 (Deflated Explicit VR Little Endian)
 */
export interface DatasetCheck {
  write(chunk: Buffer): void;
  /** Resolves with the identity, or rejects with a DicomParseError. */
  end(): Promise<DatasetIdentity>;
}

/**
 * @param opts.patientRef turns the Patient ID into the audit trail's Patient participant as it is read (src/dicom/dataset-walker.ts).
 * @param opts.maxInflatedBytes for a deflated syntax: the most the data set may inflate to
 *   (receive.maxObjectBytes). Beyond it the check fails and inflating stops, so a few kilobytes
 *   that inflate to gigabytes (a deflate bomb) cost neither memory nor minutes of CPU.
 */
export function createDatasetCheck(
  ts: TransferSyntaxInfo,
  opts: { maxInflatedBytes?: number | undefined; patientRef?: ((patientId: string) => string | undefined) | undefined } = {},
): DatasetCheck {
  const walker = new DatasetWalker({ explicitVr: ts.explicitVr, littleEndian: ts.littleEndian }, opts.patientRef);
  if (!ts.deflated) {
    let error: unknown;
    return {
      write(chunk) {
        if (error) return;
        try {
          walker.write(chunk);
        } catch (e) {
          error = e;
        }
      },
      async end() {
        if (error) throw error;
        return walker.end();
      },
    };
  }
  return new DeflatedCheck(walker, opts.maxInflatedBytes ?? Number.MAX_SAFE_INTEGER);
}

class DeflatedCheck implements DatasetCheck {
  private readonly inflate: InflateRaw = createInflateRaw();
  private error: unknown;
  private readonly done: Promise<void>;
  private settle: () => void = () => undefined;

  private inflated = 0;

  constructor(
    private readonly walker: DatasetWalker,
    maxInflatedBytes: number,
  ) {
    this.inflate.on('data', (b: Buffer) => {
      if (this.error) return;
      this.inflated += b.length;
      if (this.inflated > maxInflatedBytes) {
        this.error = new PacsEdgeError(Code.DEFLATE_TOO_LARGE, `deflated data set inflates to more than receive.maxObjectBytes=${maxInflatedBytes}`);
        // No more inflating: the rest of the stream is read and dropped by the caller.
        this.inflate.destroy();
        this.settle();
        return;
      }
      try {
        walker.write(b);
      } catch (e) {
        this.error = e;
      }
    });
    this.done = new Promise((resolve) => {
      this.settle = resolve;
      this.inflate.on('end', resolve);
      this.inflate.on('close', resolve);
      this.inflate.on('error', (e) => {
        this.error ??= new DicomParseError('DATASET_MALFORMED', `deflated data set cannot be inflated: ${e.message}`);
        resolve();
      });
    });
  }

  write(chunk: Buffer): void {
    if (!this.error) this.inflate.write(chunk);
  }

  async end(): Promise<DatasetIdentity> {
    if (!this.inflate.destroyed) this.inflate.end();
    await this.done;
    if (this.error) throw this.error;
    return this.walker.end();
  }
}
