import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { AuditEvents, AuditHandle } from './index.js';

/*
 * What the gateway checks about its audit trail and configuration at start, and records.
 */

/**
 * The audit trail's own record of how far it got lives in its directory; a deleted directory
 * starts a fresh chain that verifies. So the spool keeps an anchor too (`audit.anchor`: the
 * last sequence number of the previous run, written at every start and stop): a trail that
 * restarts below it has lost records, and says so in a Security Alert in the new chain.
 */
export async function checkAuditAnchor(config: GatewayConfig, audit: AuditHandle, log: Logger): Promise<void> {
  const file = path.join(config.spool.dir, 'audit.anchor');
  const before = await readFile(file, 'utf8').then((t) => Number(JSON.parse(t).seq), () => undefined);
  const now = audit.trail.lastSeq;
  if (before !== undefined && Number.isFinite(before) && now < before) {
    const detail = `the audit trail restarts at seq ${now}, but the previous run reached seq ${before}: its records were deleted`;
    log.error({ auditSeq: now, anchorSeq: before }, `SECURITY ALERT: ${detail}`);
    audit.events.securityAlert({ type: 'audit-chain-broken', detail });
  }
  await writeAuditAnchor(config, audit);
}

/** Remember where the audit chain stands (see {@link checkAuditAnchor}). */
export async function writeAuditAnchor(config: GatewayConfig, audit: AuditHandle): Promise<void> {
  const file = path.join(config.spool.dir, 'audit.anchor');
  await writeFile(`${file}.tmp`, JSON.stringify({ seq: audit.trail.lastSeq, at: new Date().toISOString() }), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/**
 * A configuration that differs from the one of the last start is a configuration change
 * (110113 / 110131, or 110129 when a security setting changed): the gateway is configured by
 * file, so the start after an edit is where the change shows. The fingerprint of the validated
 * configuration is kept beside the audit trail.
 */
export async function auditConfigurationChange(config: GatewayConfig, events: AuditEvents, log: Logger): Promise<void> {
  const part = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex');
  const now = { all: part(config), security: part([config.receive.tls, config.receive.plain, config.receive.callers, config.receive.blocking, config.spool.encryption, config.audit, config.forward.map((f) => f.tls)]) };
  const file = path.join(config.audit.dir, 'config.fingerprint');
  const before = await readFile(file, 'utf8').then((t) => JSON.parse(t) as typeof now, () => undefined);
  if (before && before.all !== now.all) {
    const security = before.security !== now.security;
    events.configChanged({ what: security ? 'configuration changed since the last start, including security settings' : 'configuration changed since the last start', security });
    log.warn({ security }, 'configuration changed since the last start (audited)');
  }
  if (!before || before.all !== now.all) {
    await writeFile(`${file}.tmp`, JSON.stringify(now), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }
}
