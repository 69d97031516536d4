import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { type DatasetIdentity, DatasetWalker } from '../dicom/dataset-walker.js';
import type { TransferSyntaxInfo } from '../dicom/transfer-syntaxes.js';
import { DicomParseError } from '../errors.js';

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

export function createDatasetCheck(ts: TransferSyntaxInfo): DatasetCheck {
  const walker = new DatasetWalker({ explicitVr: ts.explicitVr, littleEndian: ts.littleEndian });
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
  return new DeflatedCheck(walker);
}

class DeflatedCheck implements DatasetCheck {
  private readonly inflate: InflateRaw = createInflateRaw();
  private error: unknown;
  private readonly done: Promise<void>;

  constructor(private readonly walker: DatasetWalker) {
    this.inflate.on('data', (b: Buffer) => {
      if (this.error) return;
      try {
        walker.write(b);
      } catch (e) {
        this.error = e;
      }
    });
    this.done = new Promise((resolve) => {
      this.inflate.on('end', resolve);
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
    this.inflate.end();
    await this.done;
    if (this.error) throw this.error;
    return this.walker.end();
  }
}
