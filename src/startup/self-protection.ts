import path from 'node:path';
import type { AuditHandle } from '../audit/index.js';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { readStallMarker, removeStallMarker, STALL_MARKER, startLoopWatchdog, type StallMarker } from '../util/loop-watchdog.js';

/** Where the in-process watchdog leaves its marker: the spool directory (writable under ProtectSystem=strict, kept across restarts). */
export function stallMarkerFile(config: GatewayConfig): string {
  return path.join(config.spool.dir, STALL_MARKER);
}

/**
 * What an earlier run left when the watchdog killed it (src/util/loop-watchdog.ts): logged,
 * audited (Security Alert, private code WATCHDOG, outcome 4) and made durable before the marker is
 * removed, so a crash now cannot lose the fact. Returns the marker, for the MQTT
 * `watchdog-restart` event once MQTT runs.
 */
export async function auditStallMarker(config: GatewayConfig, audit: AuditHandle, log: Logger): Promise<StallMarker | undefined> {
  const file = stallMarkerFile(config);
  const m = readStallMarker(file);
  if (!m) return undefined;
  if (m.systemd) {
    log.error({ ...m, marker: file }, `SECURITY ALERT: the previous run was killed by systemd's watchdog (WatchdogSec=): it stopped answering (${m.systemd})`);
    audit.events.securityAlert({ type: 'watchdog-restart', detail: `the previous run was killed by systemd's watchdog (WatchdogSec=) at ${m.killedAt || 'an unknown time'}: ${m.systemd}` });
  } else {
    log.error({ ...m, marker: file }, `SECURITY ALERT: the previous run was killed by the watchdog: its event loop had not run for ${m.stalledSeconds} s`);
    audit.events.securityAlert({
      type: 'watchdog-restart',
      detail: `the previous run (pid ${m.pid}) was killed by the in-process watchdog at ${m.killedAt || 'an unknown time'}: its event loop had not run for ${m.stalledSeconds} s (watchdog.stallSeconds ${m.stallSeconds})`,
    });
  }
  await audit.trail.flush();
  if (audit.trail.durableSeq === audit.trail.lastSeq) removeStallMarker(file);
  else log.warn({ marker: file }, 'the watchdog restart could not be made durable in the audit trail yet: the marker stays for the next start');
  return m;
}

/** Start the in-process watchdog (watchdog.stallSeconds > 0). Returns its stop. */
export function startStallWatchdog(config: GatewayConfig, log: Logger): (() => void) | undefined {
  const s = config.watchdog.stallSeconds;
  if (s <= 0) return undefined;
  const stop = startLoopWatchdog({ stallMs: s * 1000, markerFile: stallMarkerFile(config) });
  log.info({ stallSeconds: s }, 'watchdog: the process is killed (and restarted by systemd) when its event loop stops for watchdog.stallSeconds');
  return stop;
}

/**
 * `audit.onFailure: alarm` trades the refusal for availability: say so in the trail at every
 * start (Security Alert 110129 Security Configuration), because from now on it may have gaps.
 */
export function announceAuditPolicy(config: GatewayConfig, audit: AuditHandle, log: Logger): void {
  if (config.audit.onFailure !== 'alarm') return;
  log.warn('audit.onFailure is alarm: when the audit trail cannot be written the gateway keeps receiving, and the trail may have gaps');
  audit.events.securityAlert({ type: 'security-configuration', detail: 'audit.onFailure: alarm — associations are accepted while audit records cannot be written; the trail may have gaps', failure: false });
}
