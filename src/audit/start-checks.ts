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
 * The audit trail's own record of how far it got lives in its directory; a deleted directory
 * starts a fresh chain that verifies. So the spool keeps an anchor too (`audit.anchor`: the
 * last durable sequence number of the previous run, written at every start and stop): a trail
 * that restarts below it has lost records, and says so in a Security Alert in the new chain.
 *
 * The anchor is replaced durably (src/util/durable-write.ts), so a crash or a power loss leaves
 * the previous anchor or the new one. An anchor that is there but unreadable (damaged on the
 * disk, or edited) can vouch for nothing: like a head that fails its MAC (docs/audit.md), it is
 * recorded as a Security Alert and the gateway starts, with a fresh anchor. A missing anchor is
 * the first start (or one before anchors existed) and says nothing.
 */
export async function checkAuditAnchor(config: GatewayConfig, audit: AuditHandle, log: Logger): Promise<void> {
  const file = anchorFile(config);
  const before = await readAnchor(file);
  const now = audit.trail.lastSeq;
  if (before.state === 'ok' && now < before.seq) {
    const detail = `the audit trail restarts at seq ${now}, but the previous run reached seq ${before.seq}: its records were deleted`;
    log.error({ auditSeq: now, anchorSeq: before.seq }, `SECURITY ALERT: ${detail}`);
    audit.events.securityAlert({ type: 'audit-chain-broken', detail });
  } else if (before.state === 'unreadable') {
    const detail = `the audit anchor ${file} is unreadable (${before.detail}): it cannot show whether records of the previous run were deleted`;
    log.error({ auditSeq: now, anchor: file }, `SECURITY ALERT: ${detail}`);
    audit.events.securityAlert({ type: 'audit-chain-broken', detail });
  }
  await writeAuditAnchor(config, audit);
}

/**
 * Remember where the audit chain stands (see {@link checkAuditAnchor}): the last record that is
 * on the disk, never one still queued, so a crash right after cannot leave an anchor ahead of
 * the trail (which the next start would take for deleted records).
 */
export async function writeAuditAnchor(config: GatewayConfig, audit: AuditHandle): Promise<void> {
  await audit.trail.flush();
  await writeDurable(anchorFile(config), JSON.stringify({ seq: audit.trail.durableSeq, at: new Date().toISOString() }), { mode: 0o600 });
}

const anchorFile = (config: GatewayConfig): string => path.join(config.spool.dir, 'audit.anchor');

type Anchor = { state: 'missing' } | { state: 'unreadable'; detail: string } | { state: 'ok'; seq: number };

async function readAnchor(file: string): Promise<Anchor> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'unreadable', detail: (err as Error).message };
  }
  try {
    const seq = (JSON.parse(text) as { seq?: unknown } | null)?.seq;
    if (Number.isSafeInteger(seq) && (seq as number) >= 0) return { state: 'ok', seq: seq as number };
  } catch {
    /* not JSON: below */
  }
  return { state: 'unreadable', detail: text.length === 0 ? 'empty' : `${Buffer.byteLength(text)} bytes that are not an anchor` };
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
    await writeDurable(file, JSON.stringify(now), { mode: 0o600 });
  }
}
