import { hostname } from 'node:os';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { DeviceKey } from '../security/device-key.js';
import { credentialKey } from '../security/spool-key.js';
import type { SecurityAlertType } from './messages.js';
import { SyslogForwarder } from './syslog.js';
import { anchorFileOf } from './anchor.js';
import { AuditTrail, type AuditAlarm } from './trail.js';

export { AuditTrail, type AuditAlarm } from './trail.js';
export { ANCHOR_PURPOSE, anchorFileOf } from './anchor.js';
export { verifyTrail, describe as describeVerify, type VerifyReport, type VerifyProblem } from './verify.js';
export { SyslogForwarder } from './syslog.js';
export { buildAuditMessage, SECURITY_ALERT_TYPES, type AuditEvent, type AuditSource, type SecurityAlertType } from './messages.js';

/**
 * The device key file used for the audit chain.
 * TODO(main): key file from spool.encryption.keyFile — until then, `<dirname(spool.dir)>/keys/device.key`.
 */
export function auditKeyFile(config: GatewayConfig): string {
  return config.spool.encryption.keyFile;
}

/**
 * What the rest of the gateway calls to audit something. Every method returns at once and
 * never throws (the trail logs, counts and alarms failures). Without a trail (tests, tools)
 * the calls do nothing. Arguments carry UIDs, AE titles, addresses and counts, and for the
 * instance messages `patient`: the Patient participant as `audit.patientId` made it at
 * reception (a pseudonym by default), never another patient attribute.
 */
export class AuditEvents {
  constructor(private readonly trail: AuditTrail | undefined) {}

  /** 110100 Application Activity / 110120 Application Start. */
  started(): void {
    this.trail?.record({ kind: 'application-start' });
  }

  /** 110100 Application Activity / 110121 Application Stop. */
  stopped(): void {
    this.trail?.record({ kind: 'application-stop' });
  }

  /** 110113 Security Alert / 110126 Node Authentication (outcome 4): an A-ASSOCIATE-RJ was sent. `address` = peer IP (a ":port" is dropped). */
  associationRejected(e: { callingAe: string; calledAe: string; address: string; reason: string }): void {
    this.trail?.record({ kind: 'association-rejected', ...e });
  }

  /** 110113 Security Alert / 110126 Node Authentication (outcome 4): TLS handshake or peer address refused. */
  nodeAuthFailure(e: { address: string; reason: string }): void {
    this.trail?.record({ kind: 'node-auth-failure', ...e });
  }

  /** 110104 DICOM Instances Transferred, action C: `count` instances of one study and SOP Class stored from a modality (per association). */
  instancesReceived(e: { callingAe: string; address: string; studyUid: string; sopClassUid: string; count: number; patient?: string | undefined }): void {
    this.trail?.record({ kind: 'instances-received', ...e });
  }

  /** 110102 Begin Transferring DICOM Instances: the gateway starts sending `count` instances of a study to a destination. */
  beginTransfer(e: { destination: string; aeTitle: string; address: string; studyUid: string; count: number; patient?: string | undefined }): void {
    this.trail?.record({ kind: 'begin-transfer', ...e });
  }

  /** 110104 DICOM Instances Transferred, action R: delivered to a destination (`failed`: outcome 4 with that reason, e.g. dead-lettered). */
  instancesForwarded(e: { destination: string; aeTitle: string; address: string; studyUid: string; sopClassUid: string; count: number; failed?: string; patient?: string | undefined }): void {
    this.trail?.record({ kind: 'instances-forwarded', ...e });
  }

  /** 110105 DICOM Study Deleted: objects of a study removed from the spool (purge, eviction, dead-letter purge; `by` an operator). */
  purged(e: { studyUid: string; count: number; reason: string; sopClassUid?: string; by?: string }): void {
    this.trail?.record({ kind: 'purged', ...e });
  }

  /** 110103 DICOM Instances Accessed (U): an operator put objects of a study back in a queue. */
  requeued(e: { studyUid: string; count: number; reason: string; by: string }): void {
    this.trail?.record({ kind: 'instances-requeued', ...e });
  }

  /** 110113 Security Alert / 110131 Software Configuration (110129 Security Configuration with `security: true`). */
  configChanged(e: { what: string; security?: boolean }): void {
    this.trail?.record({ kind: 'config-changed', ...e });
  }

  /** 110101 Audit Log Used: someone (`by`: account or process) read the audit log. */
  auditLogRead(e: { by: string; outcome?: string }): void {
    if (this.trail) this.trail.record({ kind: 'audit-log-read', by: e.by, logUri: this.trail.uri, outcome: e.outcome });
  }

  /** 110113 Security Alert of any listed type; outcome 4 unless `failure: false`. */
  securityAlert(e: { type: SecurityAlertType; detail: string; failure?: boolean; by?: string }): void {
    this.trail?.record({ kind: 'security-alert', ...e });
  }
}

/** The open audit trail of a running gateway, with its syslog forwarder. */
export interface AuditHandle {
  trail: AuditTrail;
  events: AuditEvents;
  syslog: SyslogForwarder | undefined;
  /** Hear the trail's alarms (MQTT events, the listener's refusal while recording fails). */
  onAlarm(fn: (a: AuditAlarm) => void): void;
  /** Flush and close (after recording what is to be recorded, e.g. `events.stopped()`). */
  stop(): Promise<void>;
}

/** Open the trail in `audit.dir` and start forwarding to `audit.syslog` when configured. */
export async function openAudit(
  config: GatewayConfig,
  log: Logger,
  opts: {
    key?: DeviceKey;
    onAlarm?: (a: AuditAlarm) => void;
    /** false: leave the spool's anchor alone (a start refused before the spool may be touched: the installation check). */
    anchor?: boolean;
  } = {},
): Promise<AuditHandle> {
  const key = opts.key ?? (config.spool.encryption.keyCredential ? credentialKey(config.spool.encryption.keyCredential) : DeviceKey.loadOrCreate(auditKeyFile(config)));
  const wildcard = ['0.0.0.0', '::', ''].includes(config.receive.host);
  let syslog: SyslogForwarder | undefined;
  const sinks: ((a: AuditAlarm) => void)[] = [];
  const trail = await AuditTrail.open({
    dir: config.audit.dir,
    retentionDays: config.audit.retentionDays,
    maxBytes: config.audit.maxBytes,
    key,
    log,
    source: { deviceId: config.device.id, aeTitle: config.receive.aeTitle, host: wildcard ? hostname() : config.receive.host, pid: process.pid },
    onAlarm: (a) => {
      log[a.kind === 'budget-warning' || a.kind === 'audit-recovered' ? 'warn' : 'error']({ alarm: a }, 'audit alarm');
      opts.onAlarm?.(a);
      for (const fn of sinks) fn(a);
    },
    anchorFile: opts.anchor === false ? undefined : anchorFileOf(config.spool.dir),
    // Only the running gateway applies retention, and never to what the syslog server has not had yet.
    retention: true,
    deliveredSeq: config.audit.syslog ? () => syslog?.deliveredSeq ?? 0 : undefined,
  });
  const s = config.audit.syslog;
  if (s) {
    syslog = await SyslogForwarder.start({ ...s, dir: config.audit.dir, hostname: config.device.id, log, durableSeq: () => trail.durableSeq });
    trail.onDurable(() => syslog?.notify());
  }
  return {
    trail,
    events: new AuditEvents(trail),
    syslog,
    onAlarm: (fn) => sinks.push(fn),
    stop: async () => {
      await trail.stop();
      await syslog?.stop();
    },
  };
}
