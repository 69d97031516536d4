import { isIP } from 'node:net';

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

/** Who writes the messages: the gateway itself. */
export interface AuditSource {
  /** `device.id`: AuditSourceID, and the Device Name of device-level participants. */
  deviceId: string;
  /** `receive.aeTitle`: the gateway's UserID in DICOM participants. */
  aeTitle: string;
  /** The gateway's own network access point (host name or IP address). */
  host: string;
  /** Process id (AlternativeUserID of the gateway participant). */
  pid?: number | undefined;
}

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

interface Code {
  code: string;
  system: string;
  text: string;
}
const dcm = (code: string, text: string): Code => ({ code, system: 'DCM', text });

/** PS3.16 CID 400 (EventID). */
export const EVENT_IDS = {
  applicationActivity: dcm('110100', 'Application Activity'),
  auditLogUsed: dcm('110101', 'Audit Log Used'),
  beginTransferring: dcm('110102', 'Begin Transferring DICOM Instances'),
  instancesAccessed: dcm('110103', 'DICOM Instances Accessed'),
  instancesTransferred: dcm('110104', 'DICOM Instances Transferred'),
  studyDeleted: dcm('110105', 'DICOM Study Deleted'),
  securityAlert: dcm('110113', 'Security Alert'),
} as const;

const APPLICATION_START = dcm('110120', 'Application Start');
const APPLICATION_STOP = dcm('110121', 'Application Stop');
/** PS3.16 CID 402 (RoleIDCode). */
const ROLE_APPLICATION = dcm('110150', 'Application');
const ROLE_SOURCE = dcm('110153', 'Source Role ID');
const ROLE_DESTINATION = dcm('110152', 'Destination Role ID');
/** UserIDTypeCode / ParticipantObjectIDTypeCode. */
const ID_AE_TITLE = dcm('110119', 'Station AE Title');
const ID_NODE = dcm('110182', 'Node ID');
const ID_DEVICE = dcm('113877', 'Device Name');
const ID_STUDY = dcm('110180', 'Study Instance UID');
const ID_URI: Code = { code: '12', system: 'RFC-3881', text: 'URI' };
const ID_PATIENT: Code = { code: '2', system: 'RFC-3881', text: 'Patient Number' };

/** RFC 3881 EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
type Outcome = '0' | '4' | '8' | '12';

/** XML text and attribute escaping; characters XML 1.0 forbids become U+FFFD. */
export function xmlEscape(s: string): string {
  return String(s)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd')
    .replace(/[&<>"'\t\n\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' })[c]!);
}

const attrs = (a: Record<string, string | number | boolean | undefined>): string =>
  Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

const coded = (el: string, c: Code): string => `<${el}${attrs({ 'csd-code': c.code, codeSystemName: c.system, originalText: c.text })}/>`;

/** NetworkAccessPointTypeCode: 1 machine name, 2 IP address. */
const napType = (address: string): '1' | '2' => (isIP(address) ? '2' : '1');

/** Strip a ":port" from "1.2.3.4:104" or "[::1]:104"; IPv6 literals stay whole. */
export function hostOf(address: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (m) return m[1]!;
  if (isIP(address)) return address;
  const i = address.lastIndexOf(':');
  return i > 0 && address.indexOf(':') === i && /^\d+$/.test(address.slice(i + 1)) ? address.slice(0, i) : address;
}

interface Participant {
  userId: string;
  idType: Code;
  requestor: boolean;
  role?: Code | undefined;
  address?: string | undefined;
  alternativeUserId?: string | undefined;
  /** RFC 3881 UserTypeCode: 1 person, 2 process/application. */
  userType?: '1' | '2' | undefined;
}

function participant(p: Participant): string {
  const nap = p.address ? hostOf(p.address) : undefined;
  return (
    `<ActiveParticipant${attrs({
      UserID: p.userId,
      AlternativeUserID: p.alternativeUserId,
      UserIsRequestor: p.requestor ? 'true' : 'false',
      UserTypeCode: p.userType ?? '2',
      NetworkAccessPointID: nap,
      NetworkAccessPointTypeCode: nap ? napType(nap) : undefined,
    })}>` +
    (p.role ? coded('RoleIDCode', p.role) : '') +
    coded('UserIDTypeCode', p.idType) +
    '</ActiveParticipant>'
  );
}

/** The gateway as a DICOM application entity. */
function gateway(src: AuditSource, requestor: boolean, role?: Code): string {
  return participant({
    userId: src.aeTitle,
    idType: ID_AE_TITLE,
    requestor,
    role,
    address: src.host,
    alternativeUserId: src.pid !== undefined ? String(src.pid) : undefined,
  });
}

/** A DICOM peer (modality or PACS) identified by its AE title. */
function peer(aeTitle: string, address: string, requestor: boolean, role?: Code): string {
  return participant({ userId: aeTitle, idType: ID_AE_TITLE, requestor, role, address });
}

function object(o: {
  id: string;
  idType: Code;
  /** RFC 3881 ParticipantObjectTypeCode: 1 person, 2 system object, 3 organization, 4 other. */
  type: '1' | '2' | '4';
  /** ParticipantObjectTypeCodeRole: 1 patient, 3 report (used for studies), 13 security resource. */
  role?: '1' | '3' | '13' | undefined;
  lifeCycle?: string | undefined;
  name?: string | undefined;
  details?: Record<string, string> | undefined;
  description?: string | undefined;
  sopClasses?: { uid: string; count: number }[] | undefined;
}): string {
  return (
    `<ParticipantObjectIdentification${attrs({
      ParticipantObjectID: o.id,
      ParticipantObjectTypeCode: o.type,
      ParticipantObjectTypeCodeRole: o.role,
      ParticipantObjectDataLifeCycle: o.lifeCycle,
    })}>` +
    coded('ParticipantObjectIDTypeCode', o.idType) +
    (o.name ? `<ParticipantObjectName>${xmlEscape(o.name)}</ParticipantObjectName>` : '') +
    Object.entries(o.details ?? {})
      .map(([type, value]) => `<ParticipantObjectDetail${attrs({ type, value: Buffer.from(value, 'utf8').toString('base64') })}/>`)
      .join('') +
    (o.description ? `<ParticipantObjectDescription>${xmlEscape(o.description)}</ParticipantObjectDescription>` : '') +
    (o.sopClasses ?? []).map((s) => `<SOPClass${attrs({ UID: s.uid, NumberOfInstances: s.count })}/>`).join('') +
    '</ParticipantObjectIdentification>'
  );
}

/** The Patient participant object (type 1 person, role 1 patient), when there is one: PS3.15 A.5.3. */
const patientObject = (patient: string | undefined): string[] => (patient ? [object({ id: patient, idType: ID_PATIENT, type: '1', role: '1' })] : []);

/** The study as participant object: Study Instance UID, SOP Class and count. */
function study(studyUid: string, count: number, sopClassUid?: string, lifeCycle?: string): string {
  return object({
    id: studyUid,
    idType: ID_STUDY,
    type: '2',
    role: '3',
    lifeCycle,
    details: sopClassUid ? undefined : { NumberOfInstances: String(count) },
    sopClasses: sopClassUid ? [{ uid: sopClassUid, count }] : undefined,
  });
}

function message(
  src: AuditSource,
  at: Date,
  ev: { id: Code; action: 'C' | 'R' | 'U' | 'D' | 'E'; outcome: Outcome; type?: Code | undefined; outcomeText?: string | undefined },
  participants: string[],
  objects: string[] = [],
): string {
  return (
    '<AuditMessage>' +
    `<EventIdentification${attrs({ EventActionCode: ev.action, EventDateTime: at.toISOString(), EventOutcomeIndicator: ev.outcome })}>` +
    coded('EventID', ev.id) +
    (ev.type ? coded('EventTypeCode', ev.type) : '') +
    (ev.outcomeText ? `<EventOutcomeDescription>${xmlEscape(ev.outcomeText)}</EventOutcomeDescription>` : '') +
    '</EventIdentification>' +
    participants.join('') +
    // AuditSourceTypeCode 4: application server process (RFC 3881 table).
    `<AuditSourceIdentification${attrs({ AuditSourceID: src.deviceId })}>` +
    coded('AuditSourceTypeCode', { code: '4', system: 'RFC-3881', text: 'Application Server Process' }) +
    '</AuditSourceIdentification>' +
    objects.join('') +
    '</AuditMessage>'
  );
}

/** The gateway as the device (for alerts that are about the device, not an association). */
const device = (src: AuditSource, requestor: boolean): string =>
  participant({ userId: src.deviceId, idType: ID_DEVICE, requestor, address: src.host, alternativeUserId: src.pid !== undefined ? String(src.pid) : undefined });

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
