import { availableParallelism } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import type { GatewayConfig } from './types.js';
import { readForward, readForwarding } from './validate/forward.js';
import { readHealth } from './validate/health.js';
import { readCallers, readReceive, readTransferSyntaxes } from './validate/receive.js';
import { readSections } from './validate/sections.js';
import { readAudit, readSpool } from './validate/spool.js';
import { fileReader, Validator } from './validate/validator.js';

export { configWarnings } from './validate/warnings.js';

/**
 * Validates a parsed YAML/JSON document into a {@link GatewayConfig}, filling defaults.
 * Every problem is reported with its path (e.g. `receive.callers[1].aeTitle: required`), all
 * at once, so an operator fixes a file in one pass. Unknown keys are errors: a typo must not
 * silently fall back to a default.
 *
 * The sections' shapes are read first, then the values section by section (validate/*.ts), then
 * the rules across sections below; problems are reported in that order.
 */
export function validateConfig(doc: unknown, opts: { baseDir: string; file?: string }): GatewayConfig {
  const v = new Validator();
  const s = readSections(v, doc);
  const file = fileReader(v, opts.baseDir);
  const group = (x: unknown, p: string, d: string) => {
    const g = v.string(x, p);
    if (g !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(g)) v.problem(p, 'not a group name (lower-case letters, digits, _ and -)');
    return g ?? d;
  };

  const spoolDir = v.string(s.spool.dir, 'spool.dir', { required: true });
  const resolvedSpool = spoolDir ? path.resolve(opts.baseDir, spoolDir) : '';
  const callers = readCallers(v, s.receive);
  const forward = readForward(v, s.root, file);
  const transferSyntaxes = readTransferSyntaxes(v, s.receive);

  const config: GatewayConfig = {
    device: { id: v.string(s.device.id, 'device.id', { required: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, _ . - (1-64)' }) ?? '' },
    receive: readReceive(v, s, file, { callers, transferSyntaxes }),
    spool: readSpool(v, s, opts.baseDir, resolvedSpool),
    forward,
    forwarding: readForwarding(v, s.forwarding),
    log: { level: v.oneOf(s.log.level, 'log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) ?? 'info' },
    control: {
      socket: path.resolve(opts.baseDir, v.string(s.control.socket, 'control.socket') ?? path.join(resolvedSpool || '.', 'control.sock')),
    },
    workers: { threads: v.int(s.workers.threads, 'workers.threads', { min: 1, max: 64 }) ?? 2 },
    studies: {
      stableSeconds: v.number(s.studies.stableSeconds, 'studies.stableSeconds', { min: 1, max: 86_400 }) ?? 60,
      keepDays: v.number(s.studies.keepDays, 'studies.keepDays', { min: 1, max: 3650 }) ?? 30,
    },
    health: readHealth(v, s, file),
    watchdog: { stallSeconds: v.int(s.watchdog.stallSeconds, 'watchdog.stallSeconds', { min: 0, max: 3600 }) ?? 60 },
    security: {
      integrity: v.oneOf(s.security.integrity, 'security.integrity', ['enforce', 'warn', 'off'] as const) ?? 'warn',
      roles: {
        operatorsGroup: group(s.roles.operatorsGroup, 'security.roles.operatorsGroup', 'pacs-edge-operators'),
        auditorsGroup: group(s.roles.auditorsGroup, 'security.roles.auditorsGroup', 'pacs-edge-auditors'),
      },
    },
    compress: {
      workers: v.int(s.compress.workers, 'compress.workers', { min: 1, max: 64 }) ?? Math.max(1, availableParallelism() - 1),
      verify: v.boolean(s.compress.verify, 'compress.verify') ?? true,
      maxObjectBytes: v.bytes(s.compress.maxObjectBytes, 'compress.maxObjectBytes') ?? 256 * 1024 ** 2,
    },
    audit: readAudit(v, s, file, opts.baseDir, resolvedSpool),
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
