import type { CallerConfig, GatewayConfig } from '../config/types.js';
import { CommandField } from '../dicom/command.js';
import { category, hex4, Status } from '../dicom/status.js';
import {
  type CommitmentResult,
  decodeCommitment,
  encodeCommitmentResult,
  eventTypeOf,
  type FailedRef,
  type SopRef,
  STORAGE_COMMITMENT_INSTANCE,
  STORAGE_COMMITMENT_PUSH_MODEL,
} from '../dicom/storage-commitment.js';
import { TS } from '../dicom/transfer-syntaxes.js';
import { Requestor } from '../dicom/ul/requestor.js';
import { AssociationError, DicomParseError } from '../errors.js';
import { tlsClientOptions } from '../security/tls.js';
import type { Logger } from '../log.js';
import type { Spool } from '../spool/spool.js';
import { normalizeAddress } from './negotiation.js';
import type { StoreOutcome } from './store-reception.js';

/**
 * Storage Commitment SCP towards the modalities: the gateway answers a modality's N-ACTION
 * (Request Storage Commitment) at once, then, once every instance it names is safely held —
 * durable in the spool (`report: spooled`) or delivered to every destination, committed where
 * `forward[].commit` is set (`report: forwarded`) — sends the N-EVENT-REPORT on a new
 * association to the caller's configured port, in the SCP role (role selection proposed).
 * Instances still not held after `timeoutSeconds` are reported as failed.
 *
 * The report always goes on a new association: PS3.4 J.3.3 lets the SCP choose, IHE RAD-10
 * requires modalities to accept it there, and it never races the modality's own release.
 * Pending reports are kept in memory; after a restart the modality asks again (its own timeout).
 *
 * @see PS3.4 Annex J.3, PS3.3 C.14.1.1 (Failure Reason values), PS3.7 D.3.3.4 (role selection)
 */
const POLL_MS = 1000;
/** Delays between attempts to deliver a report to a modality that is not listening. */
const REPORT_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000, 60_000];

export interface CommitmentScpStats {
  requests: number;
  pending: number;
  reported: number;
  committed: number;
  failed: number;
  reportFailures: number;
}

export class CommitmentScp {
  private readonly counts = { requests: 0, reported: 0, committed: 0, failed: 0, reportFailures: 0 };
  private pending = 0;
  private stopped = false;

  constructor(
    private readonly deps: {
      config: GatewayConfig['receive'];
      spool: Spool;
      log: Logger;
      settings: { connectTimeoutMs: number; acseTimeoutMs: number; dimseTimeoutMs: number; maxPduLength: number };
    },
  ) {}

  stats(): CommitmentScpStats {
    return { ...this.counts, pending: this.pending };
  }

  stop(): void {
    this.stopped = true;
  }

  /** The N-ACTION: check it, answer, and settle it in the background. */
  async onAction(req: { callingAeTitle: string; remoteAddress: string; explicitVr: boolean; dataset: Buffer; secure: boolean }): Promise<StoreOutcome> {
    const log = this.deps.log.child({ callingAe: req.callingAeTitle });
    let request: CommitmentResult;
    try {
      request = decodeCommitment(req.dataset, { explicitVr: req.explicitVr });
    } catch (err) {
      const e = err as DicomParseError;
      log.warn({ code: e.code, reason: e.message }, 'storage commitment request refused: unreadable data set');
      return { status: Status.InvalidArgumentValue.code, comment: `unreadable request: ${e.message}`.slice(0, 64), error: err };
    }
    if (request.committed.length === 0) {
      log.warn({ transactionUid: request.transactionUid }, 'storage commitment request refused: no Referenced SOP Sequence');
      return { status: Status.MissingAttribute.code, comment: 'Referenced SOP Sequence missing or empty' };
    }
    const port = reportPort(this.deps.config.callers, req.callingAeTitle, req.remoteAddress);
    if (port === undefined) {
      log.warn({ transactionUid: request.transactionUid }, 'storage commitment request refused: no receive.callers[].port configured for this caller, so the result could not be reported');
      return { status: Status.ProcessingFailure.code, comment: 'no port configured to report to this caller' };
    }
    this.counts.requests++;
    this.pending++;
    log.info({ transactionUid: request.transactionUid, objects: request.committed.length, report: this.deps.config.commitment.report }, 'storage commitment requested by modality');
    const to = { aeTitle: req.callingAeTitle, host: normalizeAddress(req.remoteAddress), port, secure: req.secure };
    void this.settle(request.transactionUid, request.committed, to, log)
      .catch((err: unknown) => log.error({ err: (err as Error).message, transactionUid: request.transactionUid }, 'storage commitment: internal error'))
      .finally(() => this.pending--);
    return { status: Status.Success.code };
  }

  /**
   * A destination's N-EVENT-REPORT arriving here is handled by the forwarder's registry; this
   * class only answers modalities.
   */
  private async settle(transactionUid: string, refs: SopRef[], to: ReportTarget, log: Logger): Promise<void> {
    const deadline = Date.now() + this.deps.config.commitment.timeoutSeconds * 1000;
    const committed: SopRef[] = [];
    const failed: FailedRef[] = [];
    let open = refs;
    for (;;) {
      const still: SopRef[] = [];
      for (const r of open) {
        const verdict = await this.verdict(r);
        if (verdict === 'committed') committed.push(r);
        else if (verdict === 'wait') still.push(r);
        else failed.push({ ...r, reason: verdict });
      }
      open = still;
      if (open.length === 0 || Date.now() >= deadline || this.stopped) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    // Not held in time: PS3.3 C.14.1.1 has no "not yet"; Processing failure says "try again".
    for (const r of open) failed.push({ ...r, reason: Status.ProcessingFailure.code });
    this.counts.committed += committed.length;
    this.counts.failed += failed.length;
    await this.report({ transactionUid, committed, failed }, to, log);
  }

  /** Is this instance safely held? A Failure Reason when it never will be. */
  private async verdict(r: SopRef): Promise<'committed' | 'wait' | number> {
    const record = await this.deps.spool.find(r.sopInstanceUid);
    if (record) {
      if (record.sopClassUid !== r.sopClassUid) return Status.ClassInstanceConflict.code;
      if (this.deps.config.commitment.report === 'spooled') return 'committed';
      return record.pending.length === 0 ? 'committed' : 'wait';
    }
    // Gone from the spool: delivered everywhere (remembered for a week), or never received.
    if ((await this.deps.spool.handedOver(r.sopInstanceUid)) !== undefined) return 'committed';
    return Status.NoSuchObjectInstance.code;
  }

  /** N-EVENT-REPORT on a new association to the modality, retried while it does not answer. */
  private async report(result: CommitmentResult, to: ReportTarget, log: Logger): Promise<void> {
    const fields = { transactionUid: result.transactionUid, committed: result.committed.length, failed: result.failed.length };
    for (let attempt = 0; ; attempt++) {
      try {
        const status = await this.sendReport(result, to);
        this.counts.reported++;
        if (category(status) === 'failure') log.warn({ ...fields, status: `0x${hex4(status)}` }, 'storage commitment report refused by the modality');
        else log.info(fields, 'storage commitment reported to modality');
        return;
      } catch (err) {
        this.counts.reportFailures++;
        const delay = REPORT_RETRY_MS[attempt];
        if (delay === undefined || this.stopped) {
          log.error({ ...fields, err: (err as Error).message, attempts: attempt + 1 }, 'storage commitment report could not be delivered; the modality must ask again');
          return;
        }
        log.warn({ ...fields, err: (err as Error).message, retryInMs: delay }, 'storage commitment report not delivered, will retry');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async sendReport(result: CommitmentResult, to: ReportTarget): Promise<number> {
    const s = this.deps.settings;
    const t = this.deps.config.tls;
    const a = await Requestor.open({
      // A request that came over TLS is answered over TLS, with the gateway's own certificate.
      tls: to.secure && t ? tlsClientOptions({ cert: t.cert, key: t.key, ca: t.ca, host: to.host }) : undefined,
      host: to.host,
      port: to.port,
      callingAeTitle: this.deps.config.aeTitle,
      calledAeTitle: to.aeTitle,
      contexts: [{ id: 1, abstractSyntax: STORAGE_COMMITMENT_PUSH_MODEL, transferSyntaxes: [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian] }],
      // We request the association but act as the SCP of the SOP class (we send the report).
      roles: new Map([[STORAGE_COMMITMENT_PUSH_MODEL, { scu: false, scp: true }]]),
      maxPduLength: s.maxPduLength,
      connectTimeoutMs: s.connectTimeoutMs,
      acseTimeoutMs: s.acseTimeoutMs,
      dimseTimeoutMs: s.dimseTimeoutMs,
    });
    try {
      const ts = a.transferSyntaxOf(1);
      if (!ts) throw new AssociationError('CONTEXT_REJECTED', 'the modality does not accept the Storage Commitment Push Model SOP Class', { retryable: true });
      const rsp = await a.request(
        1,
        { commandField: CommandField.NEventReportRq, sopClassUid: STORAGE_COMMITMENT_PUSH_MODEL, sopInstanceUid: STORAGE_COMMITMENT_INSTANCE, typeId: eventTypeOf(result) },
        encodeCommitmentResult(result, { explicitVr: ts === TS.ExplicitVRLittleEndian }),
        'N-EVENT-REPORT-RSP',
      );
      return rsp.status;
    } finally {
      await a.release().catch(() => a.abort());
    }
  }
}

/** Where a report goes: the requesting modality, over TLS when it asked over TLS. */
interface ReportTarget {
  aeTitle: string;
  host: string;
  port: number;
  secure: boolean;
}

/** The port to report to: that of the first receive.callers entry this caller matches that has one. */
function reportPort(callers: readonly CallerConfig[], callingAe: string, remoteAddress: string): number | undefined {
  const addr = normalizeAddress(remoteAddress);
  const match = callers.find((c) => c.port !== undefined && (c.aeTitle === '*' || c.aeTitle === callingAe) && (c.host === undefined || normalizeAddress(c.host) === addr));
  return match?.port;
}
