import { accessionHash } from '../security/accession.js';
import { DicomParseError, isDiskFull, PacsEdgeError, SpoolFullError } from '../errors.js';
import { codeInfo } from '../error-codes.js';
import { buildPart10Header } from '../dicom/file-meta.js';
import { Status } from '../dicom/status.js';
import type { TransferSyntaxInfo } from '../dicom/transfer-syntaxes.js';
import type { ObjectWriter, Spool, SpoolRecord } from '../spool/spool.js';
import { createDatasetCheck, type DatasetCheck } from './dataset-check.js';

/** Bytes held while the spool file opens before the socket is paused. */
const EARLY_MAX = 4 * 1024 * 1024;

export interface StoreOutcome {
  status: number;
  /** Short reason for the Error Comment (0000,0902) and the log: never patient data. */
  comment?: string | undefined;
  record?: SpoolRecord | undefined;
  error?: unknown;
}

/**
 * One C-STORE data set on its way into the spool: every slice goes both to the structural
 * check and to the spool writer; the outcome decides the C-STORE-RSP status.
 *
 * The spool writer is opened asynchronously; slices that arrive meanwhile are held (the socket
 * is paused only if they pass {@link EARLY_MAX}) rather than dropped. Once anything has failed, the rest of the data set is
 * still read from the socket — the association must stay in step — but is discarded.
 *
 * @see PS3.4 §B.2.3 (C-STORE statuses)
 */
export class StoreReception {
  private writer: ObjectWriter | undefined;
  private readonly early: Buffer[] = [];
  private failure: StoreOutcome | undefined;
  private readonly check: DatasetCheck;
  private readonly opened: Promise<void>;
  private received = 0;
  private earlyBytes = 0;
  private pausedEarly = false;
  private tooLarge = false;

  constructor(
    private readonly spool: Spool,
    private readonly opts: {
      sopClassUid: string;
      sopInstanceUid: string;
      ts: TransferSyntaxInfo;
      callingAeTitle: string;
      /** Larger data sets are refused (receive.maxObjectBytes); the rest is read and dropped. */
      maxBytes?: number | undefined;
      /** Called with true to pause the socket, false to resume it. */
      backpressure: (pause: boolean) => void;
      /** Hashes the Accession Number for the study index; without it none is kept. */
      accessionKey?: Buffer | undefined;
      /** The audit trail's Patient participant from the Patient ID (src/security/patient-pseudonym.ts); kept in the record, the ID itself nowhere. */
      patientRef?: ((patientId: string | undefined) => string | undefined) | undefined;
    },
  ) {
    this.check = createDatasetCheck(opts.ts, { maxInflatedBytes: opts.maxBytes, patientRef: opts.patientRef });
    const header = buildPart10Header({
      sopClassUid: opts.sopClassUid,
      sopInstanceUid: opts.sopInstanceUid,
      transferSyntaxUid: opts.ts.uid,
      sourceAeTitle: opts.callingAeTitle,
    });
    this.opened = spool.begin(header, { sopInstanceUid: opts.sopInstanceUid }).then(
      (w) => {
        if (this.failure) {
          void w.abort();
          return;
        }
        this.writer = w;
        w.onDrain(() => opts.backpressure(false));
        const early = this.early.splice(0);
        this.earlyBytes = 0;
        if (this.pausedEarly) {
          this.pausedEarly = false;
          opts.backpressure(false);
        }
        for (const b of early) this.toWriter(b);
      },
      (err: unknown) => {
        this.fail(toOutcome(err));
      },
    );
  }

  get bytes(): number {
    return this.received;
  }

  write(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.tooLarge) return; // read and dropped: not even checked
    if (this.opts.maxBytes !== undefined && this.received > this.opts.maxBytes) {
      this.tooLarge = true;
      const error = new PacsEdgeError('OBJECT_TOO_LARGE', `data set exceeds receive.maxObjectBytes=${this.opts.maxBytes}`, { retryable: false });
      this.fail({ status: Status.OutOfResources.code, comment: 'object larger than receive.maxObjectBytes', error });
      return;
    }
    this.check.write(chunk);
    if (this.failure) return;
    if (this.writer) {
      this.toWriter(chunk);
      return;
    }
    // The spool file is still being opened (a fraction of a millisecond): hold the slices, and
    // stop reading only if that ever amounts to much.
    this.early.push(chunk);
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > EARLY_MAX && !this.pausedEarly) {
      this.pausedEarly = true;
      this.opts.backpressure(true);
    }
  }

  /** The last fragment arrived: check, commit, and say what to answer. Never throws. */
  async end(): Promise<StoreOutcome> {
    await this.opened;
    let identity;
    try {
      identity = await this.check.end();
    } catch (err) {
      this.fail(toOutcome(err));
    }
    if (!this.failure && identity) {
      if (!identity.sopInstanceUid || !identity.sopClassUid) {
        this.fail({ status: Status.CannotUnderstandMissingIdentity.code, comment: 'SOP Class or Instance UID missing in data set' });
      } else if (identity.sopInstanceUid !== this.opts.sopInstanceUid) {
        this.fail({ status: Status.CannotUnderstandInstanceMismatch.code, comment: 'SOP Instance UID in data set differs from command' });
      } else if (identity.sopClassUid !== this.opts.sopClassUid) {
        this.fail({ status: Status.DataSetDoesNotMatchSopClass.code, comment: 'SOP Class UID in data set differs from command' });
      }
    }
    if (this.failure || !this.writer) {
      await this.writer?.abort();
      return this.failure ?? { status: Status.ProcessingFailure.code, comment: 'spool writer unavailable' };
    }
    try {
      const record = await this.writer.commit({
        sopClassUid: this.opts.sopClassUid,
        sopInstanceUid: this.opts.sopInstanceUid,
        transferSyntaxUid: this.opts.ts.uid,
        studyInstanceUid: identity?.studyInstanceUid,
        seriesInstanceUid: identity?.seriesInstanceUid,
        modality: identity?.modality,
        // Only its keyed hash is kept: the number itself goes no further than this line.
        accessionHash: accessionHash(this.opts.accessionKey, identity?.accessionNumber),
        patientRef: identity?.patientRef,
        callingAeTitle: this.opts.callingAeTitle,
      });
      return { status: Status.Success.code, record };
    } catch (err) {
      await this.writer.abort();
      return toOutcome(err);
    }
  }

  /** The association ended before the last fragment: drop everything. */
  async abort(): Promise<void> {
    this.failure ??= { status: Status.ProcessingFailure.code, comment: 'association ended' };
    await this.opened;
    await this.writer?.abort();
  }

  private toWriter(chunk: Buffer): void {
    if (!this.writer!.write(chunk)) this.opts.backpressure(true);
  }

  private fail(outcome: StoreOutcome): void {
    if (this.failure) return;
    this.failure = outcome;
    this.early.length = 0;
    this.earlyBytes = 0;
    this.pausedEarly = false;
    if (this.writer) void this.writer.abort();
    this.opts.backpressure(false);
  }
}

/** Map an error to the C-STORE status it deserves. */
export function toOutcome(err: unknown): StoreOutcome {
  if (err instanceof SpoolFullError || isDiskFull(err)) {
    return { status: Status.OutOfResources.code, comment: 'spool out of space', error: err };
  }
  // A code with a status of its own in the error table is answered with it.
  const mapped = err instanceof PacsEdgeError ? Status[codeInfo(err.code).status as keyof typeof Status] : undefined;
  if (mapped) return { status: mapped.code, comment: (err as Error).message.slice(0, 64), error: err };
  if (err instanceof DicomParseError) return { status: Status.CannotUnderstandMalformed.code, comment: err.message.slice(0, 64), error: err };
  const code = err instanceof PacsEdgeError ? err.code : ((err as { code?: string })?.code ?? 'ERROR');
  return { status: Status.ProcessingFailure.code, comment: `internal error ${code}`.slice(0, 64), error: err };
}
