import { describe, expect, it } from 'vitest';
import { AuditEvents } from '../../src/audit/index.js';
import { buildAuditMessage, hostOf, SECURITY_ALERT_TYPES, xmlEscape, type AuditEvent, type AuditSource } from '../../src/audit/messages.js';
import { kid, kids, parseXml, type XmlElement } from './xml.js';

const SRC: AuditSource = { deviceId: 'edge-01', aeTitle: 'PACS_EDGE', host: '10.1.2.3', pid: 4242 };
const AT = new Date('2025-03-04T05:06:07.089Z');
const STUDY = '1.2.826.0.1.3680043.8.498.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';

const EVENTS: AuditEvent[] = [
  { kind: 'application-start' },
  { kind: 'application-stop' },
  { kind: 'association-rejected', callingAe: 'EVIL', calledAe: 'PACS_EDGE', address: '192.0.2.9:50123', reason: 'calling AE title not in receive.callers' },
  { kind: 'node-auth-failure', address: '192.0.2.10', reason: 'TLS: certificate signed by an unknown CA' },
  { kind: 'instances-received', callingAe: 'CT01', address: '10.1.2.50', studyUid: STUDY, sopClassUid: CT, count: 120 },
  { kind: 'begin-transfer', destination: 'central', aeTitle: 'PACS', address: 'pacs.hospital.example', studyUid: STUDY, count: 120 },
  { kind: 'instances-forwarded', destination: 'central', aeTitle: 'PACS', address: '10.9.9.9', studyUid: STUDY, sopClassUid: CT, count: 120 },
  { kind: 'instances-forwarded', destination: 'central', aeTitle: 'PACS', address: '10.9.9.9', studyUid: STUDY, sopClassUid: CT, count: 1, failed: 'dead letter: 0x0122' },
  { kind: 'purged', studyUid: STUDY, count: 3, reason: 'dead letters purged (operator request)' },
  { kind: 'config-changed', what: 'receive.callers: CT02 added' },
  { kind: 'config-changed', what: 'audit.syslog.ca replaced', security: true },
  { kind: 'audit-log-read', by: 'admin', logUri: 'file:///var/lib/pacs-edge/audit' },
  { kind: 'audit-log-deleted', file: 'audit-20240101.log', logUri: 'file:///var/lib/pacs-edge/audit', reason: 'retention' },
  { kind: 'security-alert', type: 'audit-storage-exhausted', detail: 'over budget' },
];

/** EventID code, EventActionCode, EventTypeCode (if any), outcome: the catalogue of docs/audit.md. */
const CATALOGUE: [string, string, string | undefined, string][] = [
  ['110100', 'E', '110120', '0'],
  ['110100', 'E', '110121', '0'],
  ['110113', 'E', '110126', '4'],
  ['110113', 'E', '110126', '4'],
  ['110104', 'C', undefined, '0'],
  ['110102', 'E', undefined, '0'],
  ['110104', 'R', undefined, '0'],
  ['110104', 'R', undefined, '4'],
  ['110105', 'D', undefined, '0'],
  ['110113', 'E', '110131', '0'],
  ['110113', 'E', '110129', '0'],
  ['110101', 'R', undefined, '0'],
  ['110101', 'D', undefined, '0'],
  ['110113', 'E', 'AUDIT-BUDGET', '4'],
];

function structure(root: XmlElement): void {
  expect(root.name).toBe('AuditMessage');
  const order = root.children.map((c) => c.name);
  // Schema order: EventIdentification, ActiveParticipant+, AuditSourceIdentification, ParticipantObjectIdentification*.
  expect(order[0]).toBe('EventIdentification');
  const firstSource = order.indexOf('AuditSourceIdentification');
  expect(firstSource).toBeGreaterThan(1);
  expect(order.slice(1, firstSource).every((n) => n === 'ActiveParticipant')).toBe(true);
  expect(order.slice(firstSource + 1).every((n) => n === 'ParticipantObjectIdentification')).toBe(true);
  const src = kid(root, 'AuditSourceIdentification');
  expect(src.attrs.AuditSourceID).toBe('edge-01');
  expect(kid(src, 'AuditSourceTypeCode').attrs['csd-code']).toBe('4');
  for (const p of kids(root, 'ActiveParticipant')) {
    expect(p.attrs.UserID).toBeTruthy();
    expect(['true', 'false']).toContain(p.attrs.UserIsRequestor);
    expect(kid(p, 'UserIDTypeCode').attrs['csd-code']).toBeTruthy();
    if (p.attrs.NetworkAccessPointID) expect(p.attrs.NetworkAccessPointTypeCode).toBe(/^[\d.]+$/.test(p.attrs.NetworkAccessPointID) ? '2' : '1');
  }
  for (const o of kids(root, 'ParticipantObjectIdentification')) {
    // A person only as the Patient participant (type 1, role 1, ID type 2 "Patient Number").
    if (o.attrs.ParticipantObjectTypeCode === '1') {
      expect(o.attrs.ParticipantObjectTypeCodeRole).toBe('1');
      expect(kid(o, 'ParticipantObjectIDTypeCode').attrs).toMatchObject({ 'csd-code': '2', codeSystemName: 'RFC-3881', originalText: 'Patient Number' });
    }
    expect(kid(o, 'ParticipantObjectIDTypeCode').attrs['csd-code']).toBeTruthy();
  }
  const ev = kid(root, 'EventIdentification');
  expect(ev.attrs.EventDateTime).toBe(AT.toISOString());
  for (const c of [kid(ev, 'EventID'), ...kids(ev, 'EventTypeCode')]) {
    expect(c.attrs.codeSystemName).toBeTruthy();
    expect(c.attrs.originalText).toBeTruthy();
  }
}

describe('audit messages (PS3.15 A.5)', () => {
  it('every event kind is well-formed XML on one line with the catalogue codes', () => {
    EVENTS.forEach((e, i) => {
      const xml = buildAuditMessage(SRC, e, AT);
      expect(xml).not.toMatch(/[\r\n]/);
      const root = parseXml(xml);
      structure(root);
      const ev = kid(root, 'EventIdentification');
      const [id, action, type, outcome] = CATALOGUE[i]!;
      expect(kid(ev, 'EventID').attrs['csd-code'], e.kind).toBe(id);
      expect(ev.attrs.EventActionCode, e.kind).toBe(action);
      expect(ev.attrs.EventOutcomeIndicator, e.kind).toBe(outcome);
      expect(kids(ev, 'EventTypeCode').map((c) => c.attrs['csd-code'])[0], e.kind).toBe(type);
    });
  });

  it('participants: who is the requestor, roles, AE titles and addresses', () => {
    const rx = parseXml(buildAuditMessage(SRC, EVENTS[4]!, AT));
    const [modality, gw] = kids(rx, 'ActiveParticipant');
    expect(modality!.attrs).toMatchObject({ UserID: 'CT01', UserIsRequestor: 'true', NetworkAccessPointID: '10.1.2.50', NetworkAccessPointTypeCode: '2' });
    expect(kid(modality!, 'RoleIDCode').attrs['csd-code']).toBe('110153');
    expect(gw!.attrs).toMatchObject({ UserID: 'PACS_EDGE', UserIsRequestor: 'false', NetworkAccessPointID: '10.1.2.3', AlternativeUserID: '4242' });
    expect(kid(gw!, 'RoleIDCode').attrs['csd-code']).toBe('110152');
    const study = kid(rx, 'ParticipantObjectIdentification');
    expect(study.attrs).toMatchObject({ ParticipantObjectID: STUDY, ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '3' });
    expect(kid(study, 'ParticipantObjectIDTypeCode').attrs['csd-code']).toBe('110180');
    expect(kid(study, 'SOPClass').attrs).toEqual({ UID: CT, NumberOfInstances: '120' });

    const fw = parseXml(buildAuditMessage(SRC, EVENTS[6]!, AT));
    const [gw2, pacs] = kids(fw, 'ActiveParticipant');
    expect(gw2!.attrs).toMatchObject({ UserID: 'PACS_EDGE', UserIsRequestor: 'true' });
    expect(kid(gw2!, 'RoleIDCode').attrs['csd-code']).toBe('110153');
    expect(pacs!.attrs).toMatchObject({ UserID: 'PACS', UserIsRequestor: 'false', NetworkAccessPointID: '10.9.9.9' });

    const bt = parseXml(buildAuditMessage(SRC, EVENTS[5]!, AT));
    expect(kids(bt, 'ActiveParticipant')[1]!.attrs).toMatchObject({ NetworkAccessPointID: 'pacs.hospital.example', NetworkAccessPointTypeCode: '1' });

    const rj = parseXml(buildAuditMessage(SRC, EVENTS[2]!, AT));
    expect(kids(rj, 'ActiveParticipant')[0]!.attrs).toMatchObject({ UserID: 'EVIL', UserIsRequestor: 'true', NetworkAccessPointID: '192.0.2.9' });
    expect(kid(kid(rj, 'EventIdentification'), 'EventOutcomeDescription').text).toContain('calling AE title not in receive.callers');

    const start = parseXml(buildAuditMessage(SRC, EVENTS[0]!, AT));
    const app = kid(start, 'ActiveParticipant');
    expect(kid(app, 'RoleIDCode').attrs['csd-code']).toBe('110150');
    expect(app.attrs.UserIsRequestor).toBe('true');
  });

  it('escapes every value, including characters XML forbids', () => {
    const nasty = `a<b>&"c'\n\td\u0001\u001f]]>`;
    const xml = buildAuditMessage(SRC, { kind: 'association-rejected', callingAe: nasty, calledAe: 'X', address: '192.0.2.1', reason: nasty }, AT);
    const root = parseXml(xml);
    expect(kids(root, 'ActiveParticipant')[0]!.attrs.UserID).toBe(`a<b>&"c'\n\td\ufffd\ufffd]]>`);
    expect(kid(kid(root, 'EventIdentification'), 'EventOutcomeDescription').text).toBe(`association rejected: a<b>&"c'\n\td\ufffd\ufffd]]>`);
    expect(xmlEscape('&amp;')).toBe('&amp;amp;');
    const detail = kid(kid(root, 'ParticipantObjectIdentification'), 'ParticipantObjectDetail');
    expect(Buffer.from(detail.attrs.value!, 'base64').toString('utf8')).toBe(nasty);
  });

  it('hostOf strips a port, keeps IPv6 literals', () => {
    expect(hostOf('10.0.0.1:104')).toBe('10.0.0.1');
    expect(hostOf('[::1]:104')).toBe('::1');
    expect(hostOf('fe80::1')).toBe('fe80::1');
    expect(hostOf('pacs.example:11112')).toBe('pacs.example');
  });

  it('security alert types are CID 403 codes (or the private 99PACSEDGE ones)', () => {
    for (const [name, c] of Object.entries(SECURITY_ALERT_TYPES)) {
      if (c.system === 'DCM') expect(Number(c.code), name).toBeGreaterThanOrEqual(110126);
      else expect(c.system).toBe('99PACSEDGE');
    }
  });

  it('a patient name given anywhere never reaches a message: there is no parameter for it', () => {
    const CANARY = 'DOE^CANARY-4f1c';
    const xmls: string[] = [];
    const trail = { record: (e: AuditEvent) => xmls.push(buildAuditMessage(SRC, e, AT)), uri: 'file:///x' };
    const events = new AuditEvents(trail as never);
    // Extra properties (a future caller passing a whole record) are not read by any builder.
    const extra = { patientName: CANARY, patientId: CANARY, PatientName: CANARY } as Record<string, string>;
    events.started();
    events.stopped();
    events.associationRejected({ callingAe: 'CT01', calledAe: 'PACS_EDGE', address: '10.0.0.1', reason: 'x', ...extra });
    events.nodeAuthFailure({ address: '10.0.0.1', reason: 'x', ...extra });
    events.instancesReceived({ callingAe: 'CT01', address: '10.0.0.1', studyUid: STUDY, sopClassUid: CT, count: 1, ...extra });
    events.beginTransfer({ destination: 'c', aeTitle: 'PACS', address: '10.0.0.2', studyUid: STUDY, count: 1, ...extra });
    events.instancesForwarded({ destination: 'c', aeTitle: 'PACS', address: '10.0.0.2', studyUid: STUDY, sopClassUid: CT, count: 1, ...extra });
    events.purged({ studyUid: STUDY, count: 1, reason: 'r', ...extra });
    events.configChanged({ what: 'w', ...extra });
    events.auditLogRead({ by: 'admin', ...extra });
    events.securityAlert({ type: 'node-authentication', detail: 'd', ...extra });
    // @ts-expect-error: the API has no patient field; excess properties are a compile error.
    events.instancesReceived({ callingAe: 'CT01', address: '10.0.0.1', studyUid: STUDY, sopClassUid: CT, count: 1, patientName: CANARY });
    expect(xmls).toHaveLength(12);
    for (const x of xmls) {
      expect(x).not.toContain('CANARY');
      expect(x).not.toMatch(/Patient/i);
      parseXml(x);
    }
  });

  it('the Patient participant (PS3.15 A.5.3: type 1 person, role 1 patient, ID type 2) comes first in the instance messages that carry one, and nowhere else', () => {
    const PSEUDONYM = 'ab'.repeat(32);
    const withPatient: AuditEvent[] = [
      { kind: 'instances-received', callingAe: 'CT01', address: '10.1.2.50', studyUid: STUDY, sopClassUid: CT, count: 2, patient: PSEUDONYM },
      { kind: 'begin-transfer', destination: 'central', aeTitle: 'PACS', address: '10.9.9.9', studyUid: STUDY, count: 2, patient: PSEUDONYM },
      { kind: 'instances-forwarded', destination: 'central', aeTitle: 'PACS', address: '10.9.9.9', studyUid: STUDY, sopClassUid: CT, count: 2, patient: PSEUDONYM },
    ];
    for (const e of withPatient) {
      const root = parseXml(buildAuditMessage(SRC, e, AT));
      structure(root);
      const [patient, study] = kids(root, 'ParticipantObjectIdentification');
      expect(patient!.attrs).toMatchObject({ ParticipantObjectID: PSEUDONYM, ParticipantObjectTypeCode: '1', ParticipantObjectTypeCodeRole: '1' });
      expect(kid(patient!, 'ParticipantObjectIDTypeCode').attrs).toMatchObject({ 'csd-code': '2', codeSystemName: 'RFC-3881', originalText: 'Patient Number' });
      expect(study!.attrs.ParticipantObjectID).toBe(STUDY);
    }
    // Without `patient` (audit.patientId: none, or no Patient ID in the data set): the study only.
    for (const e of EVENTS) {
      const objects = kids(parseXml(buildAuditMessage(SRC, e, AT)), 'ParticipantObjectIdentification');
      expect(objects.filter((o) => o.attrs.ParticipantObjectTypeCode === '1')).toEqual([]);
    }
  });
});
