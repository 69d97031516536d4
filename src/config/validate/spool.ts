import path from 'node:path';
import type { GatewayConfig } from '../types.js';
import type { Sections } from './sections.js';
import type { FileReader, Validator } from './validator.js';

/** The `spool` section; `resolvedSpool` is spool.dir resolved (read first: other defaults hang on it). */
export function readSpool(v: Validator, s: Pick<Sections, 'spool' | 'encryption'>, baseDir: string, resolvedSpool: string): GatewayConfig['spool'] {
  const { spool, encryption } = s;
  return {
    dir: resolvedSpool,
    minFreeBytes: v.bytes(spool.minFreeBytes, 'spool.minFreeBytes') ?? 1024 ** 3,
    maxBytes: v.bytes(spool.maxBytes, 'spool.maxBytes') ?? 0,
    verifyOnStart: v.oneOf(spool.verifyOnStart, 'spool.verifyOnStart', ['size', 'sha256']) ?? 'size',
    compressAtRest: v.boolean(spool.compressAtRest, 'spool.compressAtRest') ?? true,
    encryption: {
      profile: v.oneOf(encryption.profile, 'spool.encryption.profile', ['aes-256-gcm', 'gm', 'chacha20-poly1305', 'none'] as const) ?? 'aes-256-gcm',
      // Beside the spool, never in it: a copy of the spool alone must not carry its key.
      keyFile: ((f) => (f ? path.resolve(baseDir, f) : path.join(path.dirname(resolvedSpool || '.'), 'keys', 'device.key')))(v.string(encryption.keyFile, 'spool.encryption.keyFile')),
      ...credentialName(v, encryption.keyCredential),
    },
    keepForwardedHours: v.number(spool.keepForwardedHours, 'spool.keepForwardedHours', { min: 0, max: 24 * 365 }) ?? 48,
  };
}

/** A systemd credential name (no path: it is looked up in $CREDENTIALS_DIRECTORY only). */
function credentialName(v: Validator, raw: unknown): { keyCredential?: string } {
  const name = v.string(raw, 'spool.encryption.keyCredential');
  if (name === undefined) return {};
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name.startsWith('.')) v.problem('spool.encryption.keyCredential', 'must be a systemd credential name ([A-Za-z0-9_.-], no path)');
  return { keyCredential: name };
}

/** The `audit` section: the trail beside the spool by default (<dirname(spool.dir)>/audit). */
export function readAudit(v: Validator, s: Pick<Sections, 'audit' | 'auditSyslog'>, file: FileReader, baseDir: string, resolvedSpool: string): GatewayConfig['audit'] {
  const { audit, auditSyslog } = s;
  return {
    // Resolved like spool.dir.
    dir: path.resolve(baseDir, v.string(audit.dir, 'audit.dir') ?? path.join(path.dirname(resolvedSpool || path.resolve(baseDir, 'spool')), 'audit')),
    retentionDays: v.int(audit.retentionDays, 'audit.retentionDays', { min: 1, max: 36500 }) ?? 180,
    maxBytes: v.bytes(audit.maxBytes, 'audit.maxBytes') ?? 1024 ** 3,
    onFailure: v.oneOf(audit.onFailure, 'audit.onFailure', ['refuse', 'alarm'] as const) ?? 'refuse',
    patientId: v.oneOf(audit.patientId, 'audit.patientId', ['pseudonym', 'clear', 'none'] as const) ?? 'pseudonym',
    syslog: auditSyslog
      ? {
          host: v.string(auditSyslog.host, 'audit.syslog.host', { required: true }) ?? '',
          port: v.int(auditSyslog.port, 'audit.syslog.port', { min: 1, max: 65535 }) ?? 6514,
          ...Object.fromEntries((['ca', 'cert', 'key'] as const).map((k) => [k, file(auditSyslog[k], `audit.syslog.${k}`)])),
        }
      : undefined,
  };
}
