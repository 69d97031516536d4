import {
  APPLICATION_START,
  APPLICATION_STOP,
  dcm,
  device,
  EVENT_IDS,
  gateway,
  hostOf,
  ID_AE_TITLE,
  ID_DEVICE,
  ID_NODE,
  ID_URI,
  message,
  object,
  participant,
  patientObject,
  peer,
  ROLE_APPLICATION,
  ROLE_DESTINATION,
  ROLE_SOURCE,
  study,
  xmlEscape,
  type AuditSource,
} from './message-xml.js';

export { EVENT_IDS, hostOf, xmlEscape, type AuditSource } from './message-xml.js';

/**
 * DICOM audit messages (PS3.15 Annex A.5: the DICOM audit message schema, derived from RFC 3881,
 * with the DCM codes of PS3.16 CID 400 "Audit Event ID" and CID 403 "Security Alert Type Code").
 *
 * Pure functions, no I/O: each builder returns the XML text of one `<AuditMessage>` on a single
 * line (no XML declaration, no line breaks, so a record is one JSON line on disk and one syslog
 * message on the wire). Every value is escaped.
 *
 * The Patient participant object of PS3.15 A.5.3 (ParticipantObjectTypeCode 1, role 1, ID type 2
 * "Patient Number") is in the messages about instances when the event carries `patient`: a keyed
 * pseudonym of the Patient ID by default (`audit.patientId`, src/security/patient-pseudonym.ts),
 * the ID itself only where a site chose `clear`. No other patient attribute ever. See docs/audit.md.
 */

/** Security Alert types used by the gateway: PS3.16 CID 403, plus two of the gateway's own. */
export const SECURITY_ALERT_TYPES = {
  'node-authentication': { code: '110126', system: 'DCM', text: 'Node Authentication' },
  'network-configuration': { code: '110128', system: 'DCM', text: 'Network Configuration' },
  'security-configuration': { code: '110129', system: 'DCM', text: 'Security Configuration' },
  'hardware-configuration': { code: '110130', system: 'DCM', text: 'Hardware Configuration' },
  'software-configuration': { code: '110131', system: 'DCM', text: 'Software Configuration' },
  'use-of-restricted-function': { code: '110132', system: 'DCM', text: 'Use of Restricted Function' },
  'audit-recording-stopped': { code: '110133', system: 'DCM', text: 'Audit Recording Stopped' },
  'audit-recording-started': { code: '110134', system: 'DCM', text: 'Audit Recording Started' },
  // No DCM code says "the audit storage budget is used up" or "the audit chain failed its check";
  // rather than bend a standard code, these use a private coding scheme (PS3.15 allows any).
  'audit-storage-exhausted': { code: 'AUDIT-BUDGET', system: '99PACSEDGE', text: 'Audit storage budget exceeded' },
  'audit-chain-broken': { code: 'AUDIT-CHAIN', system: '99PACSEDGE', text: 'Audit trail integrity check failed' },
  // Nor for "the process was killed because its event loop stopped": a private code too.
  'watchdog-restart': { code: 'WATCHDOG', system: '99PACSEDGE', text: 'Restarted after the watchdog killed a stalled process' },
  // A spooled object or index record changed on the card without the device key (record MAC,
  // plain file where a sealed one was written): evidence of tampering with the store itself.
  'spool-integrity': { code: 'SPOOL-INTEGRITY', system: '99PACSEDGE', text: 'Spool object or record failed its authentication' },
} as const;
export type SecurityAlertType = keyof typeof SECURITY_ALERT_TYPES;

/** Every event the gateway audits. The fields are the only inputs: none can hold patient data. */
export type AuditEvent =
  | { kind: 'application-start' }
  | { kind: 'application-stop' }
  | { kind: 'association-rejected'; callingAe: string; calledAe: string; address: string; reason: string }
  | { kind: 'node-auth-failure'; address: string; reason: string }
  | { kind: 'instances-received'; callingAe: string; address: string; studyUid: string; sopClassUid: string; count: number; patient?: string | undefined }
  | { kind: 'begin-transfer'; destination: string; aeTitle: string; address: string; studyUid: string; count: number; patient?: string | undefined }
  | { kind: 'instances-forwarded'; destination: string; aeTitle: string; address: string; studyUid: string; sopClassUid: string; count: number; failed?: string | undefined; patient?: string | undefined }
  | { kind: 'purged'; studyUid: string; count: number; reason: string; sopClassUid?: string | undefined; by?: string | undefined }
  | { kind: 'instances-requeued'; studyUid: string; count: number; reason: string; by: string }
  | { kind: 'config-changed'; what: string; security?: boolean | undefined }
  | { kind: 'audit-log-read'; by: string; logUri: string; outcome?: string | undefined }
  | { kind: 'audit-log-deleted'; file: string; logUri: string; reason: string }
  | { kind: 'security-alert'; type: SecurityAlertType; detail: string; failure?: boolean | undefined; by?: string | undefined };

// --- one builder per event kind -------------------------------------------------------------

/**
 * 110100 Application Activity, type 110120 Application Start / 110121 Application Stop,
 * action E. The gateway is the Application participant (role 110150). The Application Launcher
 * participant (110151) is omitted: the gateway is started by the service manager, not by a person
 * it could name; so the application is the only participant and the requestor.
 */
export function applicationActivity(src: AuditSource, at: Date, start: boolean): string {
  return message(src, at, { id: EVENT_IDS.applicationActivity, action: 'E', outcome: '0', type: start ? APPLICATION_START : APPLICATION_STOP }, [gateway(src, true, ROLE_APPLICATION)]);
}

/**
 * 110104 DICOM Instances Transferred, action C (the gateway created its copy): the modality is
 * the Source (110153) and the requestor (it opened the association), the gateway the Destination
 * (110152).
 */
export function instancesReceived(src: AuditSource, at: Date, e: { callingAe: string; address: string; studyUid: string; sopClassUid: string; count: number; patient?: string | undefined }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.instancesTransferred, action: 'C', outcome: '0' },
    [peer(e.callingAe, e.address, true, ROLE_SOURCE), gateway(src, false, ROLE_DESTINATION)],
    [...patientObject(e.patient), study(e.studyUid, e.count, e.sopClassUid, '1')],
  );
}

/**
 * 110104 DICOM Instances Transferred, action R (the gateway's copy was read and sent): the gateway
 * is the Source and the requestor (it opened the association), the PACS the Destination. With
 * `failed`, the outcome is 4 (minor failure) and `failed` the description.
 */
export function instancesForwarded(
  src: AuditSource,
  at: Date,
  e: { destination: string; aeTitle: string; address: string; studyUid: string; sopClassUid: string; count: number; failed?: string | undefined; patient?: string | undefined },
): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.instancesTransferred, action: 'R', outcome: e.failed ? '4' : '0', outcomeText: e.failed ? `${e.destination}: ${e.failed}` : `destination ${e.destination}` },
    [gateway(src, true, ROLE_SOURCE), peer(e.aeTitle, e.address, false, ROLE_DESTINATION)],
    [...patientObject(e.patient), study(e.studyUid, e.count, e.sopClassUid)],
  );
}

/** 110102 Begin Transferring DICOM Instances, action E: gateway = Source and requestor, PACS = Destination. */
export function beginTransfer(src: AuditSource, at: Date, e: { destination: string; aeTitle: string; address: string; studyUid: string; count: number; patient?: string | undefined }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.beginTransferring, action: 'E', outcome: '0', outcomeText: `destination ${e.destination}` },
    [gateway(src, true, ROLE_SOURCE), peer(e.aeTitle, e.address, false, ROLE_DESTINATION)],
    [...patientObject(e.patient), study(e.studyUid, e.count)],
  );
}

/**
 * 110105 DICOM Study Deleted, action D: the gateway removed the objects from its spool (the
 * reason is the description). `by`: the operator who asked (then the requestor, the gateway
 * the performer), absent when the gateway did it on its own.
 */
export function purged(src: AuditSource, at: Date, e: { studyUid: string; count: number; reason: string; sopClassUid?: string | undefined; by?: string | undefined }): string {
  const who = e.by ? [operator(e.by), gateway(src, false)] : [gateway(src, true)];
  return message(src, at, { id: EVENT_IDS.studyDeleted, action: 'D', outcome: '0', outcomeText: e.reason }, who, [study(e.studyUid, e.count, e.sopClassUid)]);
}

/**
 * 110103 DICOM Instances Accessed, action U: an operator (`by`) changed the spooled objects'
 * state — dead letters put back in a destination's queue. The study is the object.
 */
export function instancesRequeued(src: AuditSource, at: Date, e: { studyUid: string; count: number; reason: string; by: string }): string {
  return message(src, at, { id: EVENT_IDS.instancesAccessed, action: 'U', outcome: '0', outcomeText: e.reason }, [operator(e.by), gateway(src, false)], [study(e.studyUid, e.count)]);
}

/** A person at the device (account name from the operating system), as requestor. */
function operator(by: string): string {
  return participant({ userId: by, idType: dcm('113871', 'Person ID'), requestor: true, userType: '1' });
}

/**
 * 110113 Security Alert, type 110126 Node Authentication, outcome 4: an association refused
 * (called AE title, calling AE title or address not allowed). The caller is the performing
 * process and the requestor; the gateway reports. The alert subject is the caller's node.
 */
export function associationRejected(src: AuditSource, at: Date, e: { callingAe: string; calledAe: string; address: string; reason: string }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.securityAlert, action: 'E', outcome: '4', type: SECURITY_ALERT_TYPES['node-authentication'], outcomeText: `association rejected: ${e.reason}` },
    [peer(e.callingAe, e.address, true), participant({ userId: e.calledAe, idType: ID_AE_TITLE, requestor: false, address: src.host, alternativeUserId: src.pid !== undefined ? String(src.pid) : undefined })],
    [object({ id: hostOf(e.address), idType: ID_NODE, type: '2', details: { 'Alert Description': e.reason } })],
  );
}

/** 110113 Security Alert, type 110126 Node Authentication, outcome 4: a peer failed authentication (TLS, address). */
export function nodeAuthFailure(src: AuditSource, at: Date, e: { address: string; reason: string }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.securityAlert, action: 'E', outcome: '4', type: SECURITY_ALERT_TYPES['node-authentication'], outcomeText: e.reason },
    [participant({ userId: hostOf(e.address), idType: ID_NODE, requestor: true, address: e.address }), device(src, false)],
    [object({ id: hostOf(e.address), idType: ID_NODE, type: '2', details: { 'Alert Description': e.reason } })],
  );
}

/** 110113 Security Alert, type 110131 Software Configuration (110129 Security Configuration with `security`). */
export function configChanged(src: AuditSource, at: Date, e: { what: string; security?: boolean | undefined }): string {
  const type = SECURITY_ALERT_TYPES[e.security ? 'security-configuration' : 'software-configuration'];
  return message(
    src,
    at,
    { id: EVENT_IDS.securityAlert, action: 'E', outcome: '0', type, outcomeText: e.what },
    [device(src, true)],
    [object({ id: src.deviceId, idType: ID_DEVICE, type: '2', details: { 'Alert Description': e.what } })],
  );
}

/**
 * 110113 Security Alert of any type of {@link SECURITY_ALERT_TYPES}; outcome 4 when `failure`
 * (default true). `by`: the person whose request it was (proven account, src/health/roles.ts),
 * then the requestor, the gateway the performer.
 */
export function securityAlert(src: AuditSource, at: Date, e: { type: SecurityAlertType; detail: string; failure?: boolean | undefined; by?: string | undefined }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.securityAlert, action: 'E', outcome: e.failure === false ? '0' : '4', type: SECURITY_ALERT_TYPES[e.type], outcomeText: e.detail },
    e.by ? [operator(e.by), device(src, false)] : [device(src, true)],
    [object({ id: src.deviceId, idType: ID_DEVICE, type: '2', details: { 'Alert Description': e.detail } })],
  );
}

/**
 * 110101 Audit Log Used, action R: `by` (the operator's account or process) read the log. The
 * object is the log itself (system object, role 13 Security Resource, id = its URI).
 */
export function auditLogRead(src: AuditSource, at: Date, e: { by: string; logUri: string; outcome?: string | undefined }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.auditLogUsed, action: 'R', outcome: e.outcome ? '4' : '0', outcomeText: e.outcome },
    [participant({ userId: e.by, idType: dcm('113871', 'Person ID'), requestor: true, userType: '1' }), device(src, false)],
    [object({ id: e.logUri, idType: ID_URI, type: '2', role: '13', name: 'Security Audit Log' })],
  );
}

/** 110101 Audit Log Used, action D: a day file of the log was deleted by the retention rule. */
export function auditLogDeleted(src: AuditSource, at: Date, e: { file: string; logUri: string; reason: string }): string {
  return message(
    src,
    at,
    { id: EVENT_IDS.auditLogUsed, action: 'D', outcome: '0', outcomeText: e.reason },
    [device(src, true)],
    [object({ id: `${e.logUri.replace(/\/$/, '')}/${encodeURIComponent(e.file)}`, idType: ID_URI, type: '2', role: '13', name: 'Security Audit Log' })],
  );
}

/** The XML of one event. */
export function buildAuditMessage(src: AuditSource, event: AuditEvent, at: Date = new Date()): string {
  switch (event.kind) {
    case 'application-start':
      return applicationActivity(src, at, true);
    case 'application-stop':
      return applicationActivity(src, at, false);
    case 'association-rejected':
      return associationRejected(src, at, event);
    case 'node-auth-failure':
      return nodeAuthFailure(src, at, event);
    case 'instances-received':
      return instancesReceived(src, at, event);
    case 'begin-transfer':
      return beginTransfer(src, at, event);
    case 'instances-forwarded':
      return instancesForwarded(src, at, event);
    case 'purged':
      return purged(src, at, event);
    case 'instances-requeued':
      return instancesRequeued(src, at, event);
    case 'config-changed':
      return configChanged(src, at, event);
    case 'audit-log-read':
      return auditLogRead(src, at, event);
    case 'audit-log-deleted':
      return auditLogDeleted(src, at, event);
    case 'security-alert':
      return securityAlert(src, at, event);
  }
}

/** True for events whose outcome is a failure or an alert (syslog severity warning instead of notice). */
export function isAlert(event: AuditEvent): boolean {
  return event.kind === 'association-rejected' || event.kind === 'node-auth-failure' || event.kind === 'security-alert' || (event.kind === 'instances-forwarded' && !!event.failed);
}
