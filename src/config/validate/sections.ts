import type { Obj, Validator } from './validator.js';

/** Every mapping of the document, each checked for unknown keys; absent optional ones are {} or undefined. */
export interface Sections {
  root: Obj;
  studies: Obj;
  forwarding: Obj;
  device: Obj;
  receive: Obj;
  blocking: Obj;
  receiveTls: Obj | undefined;
  commitment: Obj;
  spool: Obj;
  encryption: Obj;
  log: Obj;
  control: Obj;
  workers: Obj;
  compress: Obj;
  security: Obj;
  roles: Obj;
  audit: Obj;
  watchdog: Obj;
  auditSyslog: Obj | undefined;
  health: Obj;
  metrics: Obj | undefined;
  web: Obj | undefined;
  webTls: Obj | undefined;
  mqtt: Obj | undefined;
  mqttTls: Obj | undefined;
}

/**
 * The sections' shapes, read first and in this order: the order in which their problems are
 * reported (before any value's), which operators and the tests see.
 */
export function readSections(v: Validator, doc: unknown): Sections {
  const root = v.object(doc, '', ['extends', 'device', 'receive', 'spool', 'forward', 'forwarding', 'compress', 'health', 'log', 'control', 'workers', 'audit', 'security', 'studies', 'watchdog']);
  const studies = v.object(root.studies ?? {}, 'studies', ['stableSeconds', 'keepDays']);
  const forwarding = v.object(root.forwarding ?? {}, 'forwarding', [
    'connectTimeoutSeconds', 'acseTimeoutSeconds', 'responseTimeoutSeconds', 'retryBaseSeconds', 'retryMaxSeconds', 'idleReleaseSeconds', 'maxAttempts', 'batch', 'maxPduLength',
    'commitBatch', 'commitTimeoutSeconds',
  ]);
  const device = v.object(root.device, 'device', ['id']);
  const receive = v.object(root.receive, 'receive', [
    'aeTitle', 'host', 'port', 'callers', 'maxAssociations', 'maxPduLength', 'artimTimeoutSeconds', 'idleTimeoutSeconds',
    'unknownSopClasses', 'transferSyntaxes', 'maxObjectBytes', 'commitment', 'tls', 'plain', 'blocking',
  ]);
  const blocking = v.object(receive.blocking ?? {}, 'receive.blocking', ['rejections', 'windowSeconds', 'blockSeconds', 'exempt']);
  const receiveTls = receive.tls === undefined ? undefined : v.object(receive.tls, 'receive.tls', ['port', 'cert', 'key', 'ca', 'requireClientCert']);
  const commitment = v.object(receive.commitment ?? {}, 'receive.commitment', ['enabled', 'report', 'timeoutSeconds']);
  const spool = v.object(root.spool, 'spool', ['dir', 'minFreeBytes', 'maxBytes', 'verifyOnStart', 'keepForwardedHours', 'compressAtRest', 'encryption']);
  const encryption = v.object(spool.encryption ?? {}, 'spool.encryption', ['profile', 'keyFile', 'keyCredential']);
  const log = v.object(root.log ?? {}, 'log', ['level']);
  const control = v.object(root.control ?? {}, 'control', ['socket']);
  const workers = v.object(root.workers ?? {}, 'workers', ['threads']);
  const compress = v.object(root.compress ?? {}, 'compress', ['workers', 'verify', 'maxObjectBytes']);
  const security = v.object(root.security ?? {}, 'security', ['integrity', 'roles']);
  const roles = v.object(security.roles ?? {}, 'security.roles', ['operatorsGroup', 'auditorsGroup']);
  const audit = v.object(root.audit ?? {}, 'audit', ['dir', 'retentionDays', 'maxBytes', 'syslog', 'onFailure', 'patientId']);
  const watchdog = v.object(root.watchdog ?? {}, 'watchdog', ['stallSeconds']);
  const auditSyslog = audit.syslog === undefined ? undefined : v.object(audit.syslog, 'audit.syslog', ['host', 'port', 'ca', 'cert', 'key']);
  const health = v.object(root.health ?? {}, 'health', ['mqtt', 'metrics', 'web']);
  const metrics = health.metrics === undefined ? undefined : v.object(health.metrics, 'health.metrics', ['host', 'port']);
  const web = health.web === undefined ? undefined : v.object(health.web, 'health.web', ['host', 'port', 'tls', 'passwordFile']);
  const webTls = web?.tls === undefined ? undefined : v.object(web.tls, 'health.web.tls', ['cert', 'key', 'ca']);
  const mqtt = health.mqtt === undefined ? undefined : v.object(health.mqtt, 'health.mqtt', ['url', 'topicPrefix', 'intervalSeconds', 'clientId', 'username', 'passwordFile', 'tls', 'protocolVersion', 'commands']);
  const mqttTls = mqtt?.tls === undefined ? undefined : v.object(mqtt.tls, 'health.mqtt.tls', ['ca', 'cert', 'key']);
  return { root, studies, forwarding, device, receive, blocking, receiveTls, commitment, spool, encryption, log, control, workers, compress, security, roles, audit, watchdog, auditSyslog, health, metrics, web, webTls, mqtt, mqttTls };
}
