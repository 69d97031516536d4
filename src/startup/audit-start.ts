import { openAudit, type AuditHandle } from '../audit/index.js';
import { auditConfigurationChange, checkAuditAnchor } from '../audit/start-checks.js';
import type { GatewayConfig } from '../config/types.js';
import { Code } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceKey } from '../security/device-key.js';

/**
 * Open the audit trail for a start, first of all parts so that everything after it can be
 * audited: its anchor is checked (a trail cut short is an alert), a changed configuration and
 * failed installation files are recorded (PS3.15 A.5.3.11 Security Alert).
 *
 * A command may hold the trail for a moment (`audit verify`, a dead-letter retry on a stopped
 * gateway), so a held trail is waited for, up to 10 s.
 */
export async function openAuditForStart(
  config: GatewayConfig,
  log: Logger,
  opts: { deviceKey: DeviceKey; signal?: AbortSignal | undefined; integrityAlerts?: readonly string[] | undefined },
): Promise<AuditHandle> {
  const audit = await openAuditWaiting(config, log, opts.deviceKey, opts.signal);
  try {
    checkAuditAnchor(audit, log);
    await auditConfigurationChange(config, audit.events, log);
  } catch (err) {
    await refuseStart(audit, err as Error);
    throw err;
  }
  for (const f of (opts.integrityAlerts ?? []).slice(0, 20)) audit.events.securityAlert({ type: 'software-configuration', detail: `installation integrity check failed: ${f}` });
  return audit;
}

/** A start that failed after the trail opened: the refusal is itself a fact for the auditor (a wrong key, a taken port). */
export async function refuseStart(audit: AuditHandle, err: Error): Promise<void> {
  audit.events.securityAlert({ type: 'software-configuration', detail: `gateway start refused: ${err.message}`.slice(0, 1000) });
  await audit.stop();
}

async function openAuditWaiting(config: GatewayConfig, log: Logger, key: DeviceKey, signal?: AbortSignal): Promise<AuditHandle> {
  const deadline = Date.now() + 10_000;
  for (let told = false; ; told = true) {
    try {
      return await openAudit(config, log, { key });
    } catch (err) {
      if ((err as { code?: string }).code !== Code.AUDIT_LOCKED || Date.now() > deadline || signal?.aborted) throw err;
      if (!told) log.warn({ err: (err as Error).message }, 'the audit trail is held by another process; waiting for it');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
