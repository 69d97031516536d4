import { existsSync } from 'node:fs';
import type { GatewayConfig } from '../types.js';

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
