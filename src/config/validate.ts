import { resolveSopClass } from '../dicom/sop-classes.js';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { transferSyntax } from '../dicom/transfer-syntaxes.js';
import { isValidUid } from '../dicom/uids.js';
import { ConfigError } from '../errors.js';
import type { CallerConfig, ForwardConfig, GatewayConfig } from './types.js';

/**
 * Validates a parsed YAML/JSON document into a {@link GatewayConfig}, filling defaults.
 * Every problem is reported with its path (e.g. `receive.callers[1].aeTitle: required`), all
 * at once, so an operator fixes a file in one pass. Unknown keys are errors: a typo must not
 * silently fall back to a default.
 */
export function validateConfig(doc: unknown, opts: { baseDir: string; file?: string }): GatewayConfig {
  const v = new Validator();
  const root = v.object(doc, '', ['extends', 'device', 'receive', 'spool', 'forward', 'forwarding', 'compress', 'health', 'log', 'control', 'workers', 'audit', 'security', 'studies', 'watchdog']);
  const studies = v.object(root.studies ?? {}, 'studies', ['stableSeconds', 'keepDays']);
  const fwd = v.object(root.forwarding ?? {}, 'forwarding', [
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
  const file = (x: unknown, p: string, required = false) => ((f) => (f ? path.resolve(opts.baseDir, f) : undefined))(v.string(x, p, { required }));
  const commitment = v.object(receive.commitment ?? {}, 'receive.commitment', ['enabled', 'report', 'timeoutSeconds']);
  const spool = v.object(root.spool, 'spool', ['dir', 'minFreeBytes', 'maxBytes', 'verifyOnStart', 'keepForwardedHours', 'compressAtRest', 'encryption']);
  const encryption = v.object(spool.encryption ?? {}, 'spool.encryption', ['profile', 'keyFile', 'keyCredential']);
  const log = v.object(root.log ?? {}, 'log', ['level']);
  const control = v.object(root.control ?? {}, 'control', ['socket']);
  const workers = v.object(root.workers ?? {}, 'workers', ['threads']);
  const compress = v.object(root.compress ?? {}, 'compress', ['workers', 'verify', 'maxObjectBytes']);
  const security = v.object(root.security ?? {}, 'security', ['integrity', 'roles']);
  const roles = v.object(security.roles ?? {}, 'security.roles', ['operatorsGroup', 'auditorsGroup']);
  const group = (x: unknown, p: string, d: string) => {
    const g = v.string(x, p);
    if (g !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(g)) v.problem(p, 'not a group name (lower-case letters, digits, _ and -)');
    return g ?? d;
  };
  const audit = v.object(root.audit ?? {}, 'audit', ['dir', 'retentionDays', 'maxBytes', 'syslog', 'onFailure', 'patientId']);
  const watchdog = v.object(root.watchdog ?? {}, 'watchdog', ['stallSeconds']);
  const auditSyslog = audit.syslog === undefined ? undefined : v.object(audit.syslog, 'audit.syslog', ['host', 'port', 'ca', 'cert', 'key']);
  const health = v.object(root.health ?? {}, 'health', ['mqtt', 'metrics', 'web']);
  const metrics = health.metrics === undefined ? undefined : v.object(health.metrics, 'health.metrics', ['host', 'port']);
  const web = health.web === undefined ? undefined : v.object(health.web, 'health.web', ['host', 'port', 'tls', 'passwordFile']);
  const webTls = web?.tls === undefined ? undefined : v.object(web.tls, 'health.web.tls', ['cert', 'key', 'ca']);
  const mqtt = health.mqtt === undefined ? undefined : v.object(health.mqtt, 'health.mqtt', ['url', 'topicPrefix', 'intervalSeconds', 'clientId', 'username', 'passwordFile', 'tls', 'protocolVersion', 'commands']);
  const mqttTls = mqtt?.tls === undefined ? undefined : v.object(mqtt.tls, 'health.mqtt.tls', ['ca', 'cert', 'key']);

  const spoolDir = v.string(spool.dir, 'spool.dir', { required: true });
  const resolvedSpool = spoolDir ? path.resolve(opts.baseDir, spoolDir) : '';

  const callers = v.array(receive.callers ?? [], 'receive.callers').map((c, i): CallerConfig => {
    const p = `receive.callers[${i}]`;
    const o = v.object(c, p, ['aeTitle', 'host', 'port']);
    const aeTitle = v.aeTitle(o.aeTitle, `${p}.aeTitle`, { required: true, wildcard: true }) ?? '';
    const host = v.string(o.host, `${p}.host`);
    // Compared with the peer's address as is: a host name would never match (no DNS lookups on the receive path).
    if (host && isIP(host) === 0) v.problem(`${p}.host`, `"${host}" is not an IP address (host names are not resolved)`);
    const port = v.int(o.port, `${p}.port`, { min: 1, max: 65535 });
    return { aeTitle, ...(host ? { host } : {}), ...(port !== undefined ? { port } : {}) };
  });

  const names = new Set<string>();
  const forward = v.array(root.forward ?? [], 'forward').map((f, i): ForwardConfig => {
    const p = `forward[${i}]`;
    const o = v.object(f, p, ['name', 'aeTitle', 'host', 'port', 'callingAeTitle', 'associations', 'compression', 'commit', 'tls', 'match', 'prefetchBytes']);
    const t = o.tls === undefined ? undefined : v.object(o.tls, `${p}.tls`, ['ca', 'cert', 'key']);
    const name = v.string(o.name, `${p}.name`, { required: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, _ . - (1-64)' }) ?? '';
    if (name && names.has(name)) v.problem(`${p}.name`, `duplicate destination name "${name}"`);
    names.add(name);
    const out: ForwardConfig = {
      name,
      aeTitle: v.aeTitle(o.aeTitle, `${p}.aeTitle`, { required: true }) ?? '',
      host: v.string(o.host, `${p}.host`, { required: true }) ?? '',
      port: v.int(o.port, `${p}.port`, { min: 1, max: 65535, required: true }) ?? 0,
      associations: v.int(o.associations, `${p}.associations`, { min: 1, max: 32 }) ?? 2,
      compression: v.oneOf(o.compression, `${p}.compression`, ['none', 'jpeg-ls', 'htj2k', 'rle', 'deflate'] as const) ?? 'jpeg-ls',
      commit: v.boolean(o.commit, `${p}.commit`) ?? false,
      prefetchBytes: v.bytes(o.prefetchBytes, `${p}.prefetchBytes`) ?? 32 * 1024 * 1024,
    };
    if (t) {
      out.tls = { ca: file(t.ca, `${p}.tls.ca`), cert: file(t.cert, `${p}.tls.cert`), key: file(t.key, `${p}.tls.key`) };
      if (Boolean(out.tls.cert) !== Boolean(out.tls.key)) v.problem(`${p}.tls`, 'cert and key go together (the client certificate and its private key)');
    }
    const calling = v.aeTitle(o.callingAeTitle, `${p}.callingAeTitle`);
    if (calling) out.callingAeTitle = calling;
    if (o.match !== undefined) {
      const m = v.object(o.match, `${p}.match`, ['callingAeTitle', 'modality', 'sopClass', 'notSopClass']);
      const list = (x: unknown, k: string) => (x === undefined ? undefined : v.array(x, `${p}.match.${k}`).map((e, j) => v.string(e, `${p}.match.${k}[${j}]`, { required: true }) ?? ''));
      const classes = (x: unknown, k: string) =>
        list(x, k)?.map((e, j) => {
          const uid = resolveSopClass(e);
          if (!uid) v.problem(`${p}.match.${k}[${j}]`, `"${e}" is neither a SOP Class UID nor a PS3.6 keyword of a storage SOP Class (e.g. CTImageStorage)`);
          return uid ?? e;
        });
      const match: NonNullable<ForwardConfig['match']> = {};
      const ae = list(m.callingAeTitle, 'callingAeTitle');
      if (ae) match.callingAeTitle = ae;
      const mod = list(m.modality, 'modality')?.map((x) => x.toUpperCase());
      if (mod) match.modality = mod;
      const sc = classes(m.sopClass, 'sopClass');
      if (sc) match.sopClass = sc;
      const not = classes(m.notSopClass, 'notSopClass');
      if (not) match.notSopClass = not;
      out.match = match;
    }
    return out;
  });

  const ts = receive.transferSyntaxes;
  let transferSyntaxes: 'all' | string[] = 'all';
  if (ts !== undefined && ts !== 'all') {
    transferSyntaxes = v.array(ts, 'receive.transferSyntaxes').map((u, i) => {
      const s = v.string(u, `receive.transferSyntaxes[${i}]`, { required: true }) ?? '';
      if (s && !isValidUid(s)) v.problem(`receive.transferSyntaxes[${i}]`, `"${s}" is not a UID`);
      else if (s && !transferSyntax(s)) v.problem(`receive.transferSyntaxes[${i}]`, `"${s}" is not a transfer syntax this gateway knows`);
      return s;
    });
  }

  const config: GatewayConfig = {
    device: { id: v.string(device.id, 'device.id', { required: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, _ . - (1-64)' }) ?? '' },
    receive: {
      aeTitle: v.aeTitle(receive.aeTitle, 'receive.aeTitle', { required: true }) ?? '',
      host: v.string(receive.host, 'receive.host') ?? '0.0.0.0',
      port: v.int(receive.port, 'receive.port', { min: 1, max: 65535 }) ?? 11112,
      // With TLS, plain DICOM only when asked for (a port, or plain: true); without TLS it is the only listener.
      plain: v.boolean(receive.plain, 'receive.plain') ?? (receiveTls === undefined || receive.port !== undefined),
      tls: receiveTls
        ? {
            port: v.int(receiveTls.port, 'receive.tls.port', { min: 1, max: 65535 }) ?? 2762,
            cert: file(receiveTls.cert, 'receive.tls.cert', true) ?? '',
            key: file(receiveTls.key, 'receive.tls.key', true) ?? '',
            ca: file(receiveTls.ca, 'receive.tls.ca'),
            requireClientCert: v.boolean(receiveTls.requireClientCert, 'receive.tls.requireClientCert') ?? true,
          }
        : undefined,
      callers,
      maxAssociations: v.int(receive.maxAssociations, 'receive.maxAssociations', { min: 1, max: 1024 }) ?? 8,
      maxPduLength: v.int(receive.maxPduLength, 'receive.maxPduLength', { min: 4096, max: 16 * 1024 * 1024 }) ?? 262144,
      artimTimeoutSeconds: v.number(receive.artimTimeoutSeconds, 'receive.artimTimeoutSeconds', { min: 1, max: 3600 }) ?? 30,
      idleTimeoutSeconds: v.number(receive.idleTimeoutSeconds, 'receive.idleTimeoutSeconds', { min: 1, max: 86400 }) ?? 120,
      unknownSopClasses: v.oneOf(receive.unknownSopClasses, 'receive.unknownSopClasses', ['reject', 'accept']) ?? 'reject',
      transferSyntaxes,
      maxObjectBytes: v.bytes(receive.maxObjectBytes, 'receive.maxObjectBytes') ?? 4 * 1024 ** 3,
      blocking: {
        rejections: v.int(blocking.rejections, 'receive.blocking.rejections', { min: 1, max: 100_000 }) ?? 20,
        windowSeconds: v.number(blocking.windowSeconds, 'receive.blocking.windowSeconds', { min: 1, max: 86400 }) ?? 60,
        blockSeconds: v.number(blocking.blockSeconds, 'receive.blocking.blockSeconds', { min: 0, max: 30 * 86400 }) ?? 600,
        exempt: blocking.exempt === undefined ? ['127.0.0.1', '::1'] : v.array(blocking.exempt, 'receive.blocking.exempt').map((x, i) => {
          const a = v.string(x, `receive.blocking.exempt[${i}]`, { required: true }) ?? '';
          if (a && isIP(a) === 0) v.problem(`receive.blocking.exempt[${i}]`, `"${a}" is not an IP address`);
          return a;
        }),
      },
      commitment: {
        enabled: v.boolean(commitment.enabled, 'receive.commitment.enabled') ?? true,
        report: v.oneOf(commitment.report, 'receive.commitment.report', ['spooled', 'forwarded'] as const) ?? 'spooled',
        timeoutSeconds: v.number(commitment.timeoutSeconds, 'receive.commitment.timeoutSeconds', { min: 1, max: 7 * 86400 }) ?? 3600,
      },
    },
    spool: {
      dir: resolvedSpool,
      minFreeBytes: v.bytes(spool.minFreeBytes, 'spool.minFreeBytes') ?? 1024 ** 3,
      maxBytes: v.bytes(spool.maxBytes, 'spool.maxBytes') ?? 0,
      verifyOnStart: v.oneOf(spool.verifyOnStart, 'spool.verifyOnStart', ['size', 'sha256']) ?? 'size',
      compressAtRest: v.boolean(spool.compressAtRest, 'spool.compressAtRest') ?? true,
      encryption: {
        profile: v.oneOf(encryption.profile, 'spool.encryption.profile', ['aes-256-gcm', 'gm', 'none'] as const) ?? 'aes-256-gcm',
        // Beside the spool, never in it: a copy of the spool alone must not carry its key.
        keyFile: ((f) => (f ? path.resolve(opts.baseDir, f) : path.join(path.dirname(resolvedSpool || '.'), 'keys', 'device.key')))(v.string(encryption.keyFile, 'spool.encryption.keyFile')),
        ...credentialName(v, encryption.keyCredential),
      },
      keepForwardedHours: v.number(spool.keepForwardedHours, 'spool.keepForwardedHours', { min: 0, max: 24 * 365 }) ?? 48,
    },
    forward,
    forwarding: {
      connectTimeoutSeconds: v.number(fwd.connectTimeoutSeconds, 'forwarding.connectTimeoutSeconds', { min: 1, max: 600 }) ?? 10,
      acseTimeoutSeconds: v.number(fwd.acseTimeoutSeconds, 'forwarding.acseTimeoutSeconds', { min: 1, max: 600 }) ?? 30,
      responseTimeoutSeconds: v.number(fwd.responseTimeoutSeconds, 'forwarding.responseTimeoutSeconds', { min: 1, max: 3600 }) ?? 120,
      retryBaseSeconds: v.number(fwd.retryBaseSeconds, 'forwarding.retryBaseSeconds', { min: 0.1, max: 3600 }) ?? 2,
      retryMaxSeconds: v.number(fwd.retryMaxSeconds, 'forwarding.retryMaxSeconds', { min: 1, max: 86400 }) ?? 300,
      idleReleaseSeconds: v.number(fwd.idleReleaseSeconds, 'forwarding.idleReleaseSeconds', { min: 0.1, max: 3600 }) ?? 10,
      maxAttempts: v.int(fwd.maxAttempts, 'forwarding.maxAttempts', { min: 1, max: 1000 }) ?? 10,
      batch: v.int(fwd.batch, 'forwarding.batch', { min: 1, max: 1000 }) ?? 16,
      maxPduLength: v.int(fwd.maxPduLength, 'forwarding.maxPduLength', { min: 4096, max: 16 * 1024 * 1024 }) ?? 262144,
      commitBatch: v.int(fwd.commitBatch, 'forwarding.commitBatch', { min: 1, max: 5000 }) ?? 500,
      commitTimeoutSeconds: v.number(fwd.commitTimeoutSeconds, 'forwarding.commitTimeoutSeconds', { min: 1, max: 7 * 86400 }) ?? 3600,
    },
    log: { level: v.oneOf(log.level, 'log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) ?? 'info' },
    control: {
      socket: path.resolve(opts.baseDir, v.string(control.socket, 'control.socket') ?? path.join(resolvedSpool || '.', 'control.sock')),
    },
    workers: { threads: v.int(workers.threads, 'workers.threads', { min: 1, max: 64 }) ?? 2 },
    studies: {
      stableSeconds: v.number(studies.stableSeconds, 'studies.stableSeconds', { min: 1, max: 86_400 }) ?? 60,
      keepDays: v.number(studies.keepDays, 'studies.keepDays', { min: 1, max: 3650 }) ?? 30,
    },
    health: {
      web: web
        ? {
            host: v.string(web.host, 'health.web.host') ?? '127.0.0.1',
            port: v.int(web.port, 'health.web.port', { min: 1, max: 65535, required: true }) ?? 0,
            ...(webTls ? { tls: { cert: file(webTls.cert, 'health.web.tls.cert', true) ?? '', key: file(webTls.key, 'health.web.tls.key', true) ?? '', ca: file(webTls.ca, 'health.web.tls.ca') } } : {}),
            ...(web.passwordFile !== undefined ? { passwordFile: file(web.passwordFile, 'health.web.passwordFile', true) ?? '' } : {}),
          }
        : undefined,
      metrics: metrics
        ? { host: v.string(metrics.host, 'health.metrics.host') ?? '127.0.0.1', port: v.int(metrics.port, 'health.metrics.port', { min: 1, max: 65535, required: true }) ?? 0 }
        : undefined,
      mqtt: mqtt
        ? {
            url: v.string(mqtt.url, 'health.mqtt.url', { required: true, pattern: /^mqtts?:\/\/[^\s/]+/, hint: 'mqtt://host[:port] or mqtts://host[:port]' }) ?? '',
            topicPrefix: v.string(mqtt.topicPrefix, 'health.mqtt.topicPrefix', { pattern: /^[^#+\s]+$/, hint: 'no spaces, no MQTT wildcards # +' })?.replace(/\/+$/, '') ?? 'pacs-edge',
            intervalSeconds: v.number(mqtt.intervalSeconds, 'health.mqtt.intervalSeconds', { min: 1, max: 3600 }) ?? 30,
            clientId: v.string(mqtt.clientId, 'health.mqtt.clientId') ?? `pacs-edge-${typeof device.id === 'string' ? device.id : ''}`,
            username: v.string(mqtt.username, 'health.mqtt.username'),
            passwordFile: ((f) => (f ? path.resolve(opts.baseDir, f) : undefined))(v.string(mqtt.passwordFile, 'health.mqtt.passwordFile')),
            tls: mqttTls
              ? Object.fromEntries(
                  (['ca', 'cert', 'key'] as const).map((k) => [k, ((f) => (f ? path.resolve(opts.baseDir, f) : undefined))(v.string(mqttTls[k], `health.mqtt.tls.${k}`))]),
                )
              : undefined,
            protocolVersion: (v.oneOf(mqtt.protocolVersion === undefined ? undefined : String(mqtt.protocolVersion), 'health.mqtt.protocolVersion', ['4', '5']) ?? '5') === '4' ? 4 : 5,
            commands: v.boolean(mqtt.commands, 'health.mqtt.commands') ?? false,
          }
        : undefined,
    },
    watchdog: { stallSeconds: v.int(watchdog.stallSeconds, 'watchdog.stallSeconds', { min: 0, max: 3600 }) ?? 60 },
    security: {
      integrity: v.oneOf(security.integrity, 'security.integrity', ['enforce', 'warn', 'off'] as const) ?? 'warn',
      roles: {
        operatorsGroup: group(roles.operatorsGroup, 'security.roles.operatorsGroup', 'pacs-edge-operators'),
        auditorsGroup: group(roles.auditorsGroup, 'security.roles.auditorsGroup', 'pacs-edge-auditors'),
      },
    },
    compress: {
      workers: v.int(compress.workers, 'compress.workers', { min: 1, max: 64 }) ?? Math.max(1, availableParallelism() - 1),
      verify: v.boolean(compress.verify, 'compress.verify') ?? true,
      maxObjectBytes: v.bytes(compress.maxObjectBytes, 'compress.maxObjectBytes') ?? 256 * 1024 ** 2,
    },
    audit: {
      // Beside the spool by default (<dirname(spool.dir)>/audit), resolved like spool.dir.
      dir: path.resolve(opts.baseDir, v.string(audit.dir, 'audit.dir') ?? path.join(path.dirname(resolvedSpool || path.resolve(opts.baseDir, 'spool')), 'audit')),
      retentionDays: v.int(audit.retentionDays, 'audit.retentionDays', { min: 1, max: 36500 }) ?? 180,
      maxBytes: v.bytes(audit.maxBytes, 'audit.maxBytes') ?? 1024 ** 3,
      onFailure: v.oneOf(audit.onFailure, 'audit.onFailure', ['refuse', 'alarm'] as const) ?? 'refuse',
      patientId: v.oneOf(audit.patientId, 'audit.patientId', ['pseudonym', 'clear', 'none'] as const) ?? 'pseudonym',
      syslog: auditSyslog
        ? {
            host: v.string(auditSyslog.host, 'audit.syslog.host', { required: true }) ?? '',
            port: v.int(auditSyslog.port, 'audit.syslog.port', { min: 1, max: 65535 }) ?? 6514,
            ...Object.fromEntries(
              (['ca', 'cert', 'key'] as const).map((k) => [k, ((f) => (f ? path.resolve(opts.baseDir, f) : undefined))(v.string(auditSyslog[k], `audit.syslog.${k}`))]),
            ),
          }
        : undefined,
    },
  };

  if (config.forwarding.retryMaxSeconds < config.forwarding.retryBaseSeconds) {
    v.problem('forwarding.retryMaxSeconds', `must be at least forwarding.retryBaseSeconds (${config.forwarding.retryBaseSeconds})`);
  }
  const w = config.health.web;
  if (w && !['127.0.0.1', '::1', 'localhost'].includes(w.host)) {
    if (!w.tls) v.problem('health.web.tls', `required when health.web.host is ${w.host} (not loopback): the page must not cross the network in clear`);
    if (!w.passwordFile && !w.tls?.ca) v.problem('health.web', `a passwordFile or tls.ca (client certificates) is required when health.web.host is ${w.host} (not loopback)`);
  }
  const rt = config.receive.tls;
  if (rt?.requireClientCert && !rt.ca) v.problem('receive.tls.ca', 'required when receive.tls.requireClientCert is true (the CA that signs the modalities\' certificates)');
  if (!config.receive.plain && !rt) v.problem('receive.plain', 'false leaves no listener: configure receive.tls');
  if (rt && config.receive.plain && rt.port === config.receive.port) v.problem('receive.tls.port', `the same as receive.port (${rt.port})`);
  if (resolvedSpool && isInside(config.spool.encryption.keyFile, resolvedSpool)) v.problem('spool.encryption.keyFile', 'must not be inside spool.dir (the key must not travel with the data it protects)');
  if (config.audit.syslog && (config.audit.syslog.cert === undefined) !== (config.audit.syslog.key === undefined)) {
    v.problem('audit.syslog', 'cert and key go together (client certificate and its private key)');
  }
  if (callers.length === 0) v.problem('receive.callers', 'at least one caller is required (use aeTitle "*" only for development)');
  if (v.problems.length) throw new ConfigError(v.problems, opts.file);
  return config;
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** A systemd credential name (no path: it is looked up in $CREDENTIALS_DIRECTORY only). */
function credentialName(v: Validator, raw: unknown): { keyCredential?: string } {
  const name = v.string(raw, 'spool.encryption.keyCredential');
  if (name === undefined) return {};
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name.startsWith('.')) v.problem('spool.encryption.keyCredential', 'must be a systemd credential name ([A-Za-z0-9_.-], no path)');
  return { keyCredential: name };
}

/** Warnings that do not stop the gateway but that an operator must see. */
export function configWarnings(c: GatewayConfig): string[] {
  const out: string[] = [];
  if (c.receive.callers.some((x) => x.aeTitle === '*')) out.push('receive.callers accepts any calling AE title ("*"): development only, never on a hospital network');
  const mh = c.health.metrics?.host;
  if (mh && !['127.0.0.1', '::1', 'localhost'].includes(mh)) out.push(`health.metrics.host is ${mh}: /metrics (no authentication) is reachable from the network`);
  if (c.spool.encryption.profile === 'none') out.push('spool.encryption.profile is none: spooled images are stored unencrypted, and anyone holding the SD card can read them');
  if (c.spool.encryption.keyCredential && existsSync(c.spool.encryption.keyFile)) {
    out.push(`spool.encryption.keyCredential is set, yet a clear key file lies at ${c.spool.encryption.keyFile}: it is not used; shred it once the credential works (docs/operations.md)`);
  }
  if (c.security.integrity === 'off') out.push('security.integrity is off: the installation is not checked against dist/MANIFEST.sha256 at start');
  if (!c.compress.verify) out.push('compress.verify is off: compressed frames are sent without being decoded and compared first');
  if (c.audit.patientId === 'clear') out.push('audit.patientId is clear: the audit trail and the syslog copy carry Patient IDs in clear (pseudonym is the default)');
  if (c.audit.retentionDays < 180) out.push(`audit.retentionDays is ${c.audit.retentionDays}: below the 180 days 等级保护 (MLPS 2.0) asks for; tests and labs only`);
  if (c.audit.maxBytes > 0 && c.audit.maxBytes < 16 * 1024 * 1024) out.push('audit.maxBytes is below 16 MiB: the audit budget alarm will fire early and often');
  if (c.spool.minFreeBytes < 64 * 1024 * 1024) out.push('spool.minFreeBytes is below 64 MiB: the disk may fill before the gateway refuses objects');
  return out;
}

type Obj = Record<string, unknown>;
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

class Validator {
  readonly problems: string[] = [];

  problem(p: string, msg: string): void {
    this.problems.push(`${p || '(top level)'}: ${msg}`);
  }

  object(x: unknown, p: string, keys: readonly string[]): Obj {
    if (x === undefined || x === null) {
      this.problem(p, 'required section is missing');
      return {};
    }
    if (typeof x !== 'object' || Array.isArray(x)) {
      this.problem(p, `must be a mapping, got ${kind(x)}`);
      return {};
    }
    for (const k of Object.keys(x)) {
      if (!keys.includes(k)) {
        const near = keys.find((c) => c.toLowerCase() === k.toLowerCase());
        this.problem(p ? `${p}.${k}` : k, `unknown key${near ? ` (did you mean "${near}"?)` : ''}`);
      }
    }
    return x as Obj;
  }

  array(x: unknown, p: string): unknown[] {
    if (!Array.isArray(x)) {
      this.problem(p, `must be a list, got ${kind(x)}`);
      return [];
    }
    return x;
  }

  string(x: unknown, p: string, o: { required?: boolean; pattern?: RegExp; hint?: string } = {}): string | undefined {
    if (x === undefined || x === null) {
      if (o.required) this.problem(p, 'required');
      return undefined;
    }
    if (typeof x !== 'string' || x.length === 0) {
      this.problem(p, `must be a non-empty string, got ${kind(x)}`);
      return undefined;
    }
    if (o.pattern && !o.pattern.test(x)) {
      this.problem(p, `"${x}" is not valid${o.hint ? ` (${o.hint})` : ''}`);
      return undefined;
    }
    return x;
  }

  /** AE title: 1-16 characters of the default repertoire, no backslash or control characters. @see PS3.5 Table 6.2-1 */
  boolean(x: unknown, p: string): boolean | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'boolean') {
      this.problem(p, `must be true or false, got ${JSON.stringify(x)}`);
      return undefined;
    }
    return x;
  }

  aeTitle(x: unknown, p: string, o: { required?: boolean; wildcard?: boolean } = {}): string | undefined {
    const s = this.string(x, p, o.required ? { required: true } : {});
    if (s === undefined) return undefined;
    if (o.wildcard && s === '*') return s;
    const t = s.trim();
    if (t.length === 0 || t.length > 16 || /[\\\x00-\x1f\x7f-\uffff]/.test(t)) {
      this.problem(p, `"${s}" is not a valid AE title (1-16 ASCII characters, no backslash)`);
      return undefined;
    }
    return t;
  }

  number(x: unknown, p: string, o: { min: number; max: number; required?: boolean }): number | undefined {
    if (x === undefined || x === null) {
      if (o.required) this.problem(p, 'required');
      return undefined;
    }
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      this.problem(p, `must be a number, got ${kind(x)}`);
      return undefined;
    }
    if (x < o.min || x > o.max) {
      this.problem(p, `${x} is out of range [${o.min}, ${o.max}]`);
      return undefined;
    }
    return x;
  }

  int(x: unknown, p: string, o: { min: number; max: number; required?: boolean }): number | undefined {
    const n = this.number(x, p, o);
    if (n !== undefined && !Number.isInteger(n)) {
      this.problem(p, `must be a whole number, got ${n}`);
      return undefined;
    }
    return n;
  }

  /** A byte count: a number, or a string such as "2GiB", "500 MB", "0". */
  bytes(x: unknown, p: string): number | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x === 'number' && Number.isInteger(x) && x >= 0) return x;
    if (typeof x === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(x);
      const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
      if (m && unit !== undefined) return Math.round(Number(m[1]) * unit);
    }
    this.problem(p, `must be a byte count such as 2147483648 or "2GiB", got ${JSON.stringify(x)}`);
    return undefined;
  }

  oneOf<T extends string>(x: unknown, p: string, allowed: readonly T[]): T | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || !allowed.includes(x as T)) {
      this.problem(p, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${JSON.stringify(x)}`);
      return undefined;
    }
    return x as T;
  }
}

function kind(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  return `${typeof x} ${JSON.stringify(x)}`;
}
