import { isIP } from 'node:net';

/*
 * The parts every DICOM audit message is built of (PS3.15 A.5, RFC 3881): the coded values the
 * gateway uses, escaping, the active participants (the gateway, a peer, the device),
 * the participant objects (a study, a patient) and the <AuditMessage> envelope. messages.ts
 * builds one message per event kind from these.
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

export interface Code {
  code: string;
  system: string;
  text: string;
}
export const dcm = (code: string, text: string): Code => ({ code, system: 'DCM', text });

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

export const APPLICATION_START = dcm('110120', 'Application Start');
export const APPLICATION_STOP = dcm('110121', 'Application Stop');
/** PS3.16 CID 402 (RoleIDCode). */
export const ROLE_APPLICATION = dcm('110150', 'Application');
export const ROLE_SOURCE = dcm('110153', 'Source Role ID');
export const ROLE_DESTINATION = dcm('110152', 'Destination Role ID');
/** UserIDTypeCode / ParticipantObjectIDTypeCode. */
export const ID_AE_TITLE = dcm('110119', 'Station AE Title');
export const ID_NODE = dcm('110182', 'Node ID');
export const ID_DEVICE = dcm('113877', 'Device Name');
const ID_STUDY = dcm('110180', 'Study Instance UID');
export const ID_URI: Code = { code: '12', system: 'RFC-3881', text: 'URI' };
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

export function participant(p: Participant): string {
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
export function gateway(src: AuditSource, requestor: boolean, role?: Code): string {
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
export function peer(aeTitle: string, address: string, requestor: boolean, role?: Code): string {
  return participant({ userId: aeTitle, idType: ID_AE_TITLE, requestor, role, address });
}

export function object(o: {
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
export const patientObject = (patient: string | undefined): string[] => (patient ? [object({ id: patient, idType: ID_PATIENT, type: '1', role: '1' })] : []);

/** The study as participant object: Study Instance UID, SOP Class and count. */
export function study(studyUid: string, count: number, sopClassUid?: string, lifeCycle?: string): string {
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

export function message(
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
export const device = (src: AuditSource, requestor: boolean): string =>
  participant({ userId: src.deviceId, idType: ID_DEVICE, requestor, address: src.host, alternativeUserId: src.pid !== undefined ? String(src.pid) : undefined });
