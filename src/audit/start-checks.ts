import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { writeDurable } from '../util/durable-write.js';
import type { AuditEvents, AuditHandle } from './index.js';

/*
 * What the gateway checks about its audit trail and configuration at start, and records.
 */

/**
 * The audit trail's own record of how far it got lives in its directory; a deleted or rolled
 * back directory would start a chain that verifies. So the spool keeps an anchor too
 * (`<spool.dir>/audit.anchor`, authenticated, anchor.ts), which the trail checks when it opens
 * and rewrites after every flush: what that check found is already a Security Alert in the
 * chain; here the gateway also says it in its log.
 */
export function checkAuditAnchor(audit: AuditHandle, log: Logger): void {
  for (const detail of audit.trail.anchorProblems) log.error({ auditSeq: audit.trail.lastSeq }, `SECURITY ALERT: ${detail}`);
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
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const before = text === undefined ? undefined : parseFingerprint(text);
  if (before === 'unreadable') {
    // Left empty or damaged (by the disk, or by a hand): never a reason not to start. What the
    // last start ran with is unknown, so a change, security settings included, cannot be ruled out.
    events.configChanged({ what: 'the fingerprint of the last start\'s configuration is unreadable: a change since then, security settings included, cannot be ruled out', security: true });
    log.warn({ file }, 'configuration fingerprint of the last start is unreadable: audited as a possible change, written anew');
  } else if (before && before.all !== now.all) {
    const security = before.security !== now.security;
    events.configChanged({ what: security ? 'configuration changed since the last start, including security settings' : 'configuration changed since the last start', security });
    log.warn({ security }, 'configuration changed since the last start (audited)');
  }
  if (before === undefined || before === 'unreadable' || before.all !== now.all) {
    await writeDurable(file, JSON.stringify(now), { mode: 0o600 });
  }
}

/** The fingerprint file's content, or 'unreadable' when it is not the JSON the gateway writes. */
function parseFingerprint(text: string): { all: string; security: string } | 'unreadable' {
  try {
    const o = JSON.parse(text) as { all?: unknown; security?: unknown } | null;
    if (o && typeof o.all === 'string' && typeof o.security === 'string') return { all: o.all, security: o.security };
  } catch {
    // Below: the same answer as a well-formed file without the two hashes.
  }
  return 'unreadable';
}
