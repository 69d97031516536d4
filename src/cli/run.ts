import { chownSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { openAudit } from '../audit/index.js';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { deviceKeyFor } from '../security/spool-key.js';
import { INTEGRITY_EXIT_CODE, installRoot, integrityFailures, verifyInstallation } from '../security/integrity.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { actAsStateOwner, stateOwner } from '../security/state-owner.js';

/**
 * `pacs-edge run`: the gateway in the foreground until SIGTERM/SIGINT. A start that fails (a
 * taken port, a locked spool, a wrong device key) is logged with its reason and ends the
 * process at once with its exit code (src/cli/exit-codes.ts): the parts already started are
 * stopped by Gateway.start, so no lock or socket outlives it.
 */
export async function runCommand(file: string): Promise<number> {
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : (err as Error).message);
    return EXIT.failed;
  }
  // The control sockets' run directory (systemd makes it: RuntimeDirectory=); started by root
  // without systemd, made here while root may, for the state owner (0711: passable, not listable).
  // A socket kept in the spool directory (older configurations) waits for the spool to be made,
  // after the installation check: a refused start must not have touched the spool.
  const runDir = path.dirname(config.control.socket);
  if (process.geteuid?.() === 0 && !existsSync(runDir) && path.resolve(runDir) !== path.resolve(config.spool.dir)) {
    mkdirSync(runDir, { recursive: true, mode: 0o711 });
    const owner = stateOwner(config);
    if (owner) chownSync(runDir, owner.uid, owner.gid);
  }
  // Started by root on a box whose state is the service user's: run as that user (state-owner.ts).
  actAsStateOwner(config);
  const log = createLogger({ level: config.log.level, deviceId: config.device.id });
  // Installation integrity (可信验证) before anything opens: not the spool, not a port.
  let integrityAlerts: string[] = [];
  if (config.security.integrity !== 'off') {
    const report = verifyInstallation(installRoot());
    const failures = integrityFailures(report);
    const enforce = config.security.integrity === 'enforce';
    for (const f of failures.slice(0, 20)) log[enforce ? 'error' : 'warn']({ mode: config.security.integrity }, `SECURITY ALERT: installation integrity check failed: ${f}`);
    if (failures.length > 20) log[enforce ? 'error' : 'warn']({ mode: config.security.integrity, more: failures.length - 20 }, `SECURITY ALERT: installation integrity check failed: ${failures.length - 20} more file(s)`);
    if (failures.length === 0) log.info({ files: report.checked, ms: Math.round(report.ms) }, 'installation integrity verified');
    integrityAlerts = failures;
    if (failures.length > 0 && enforce) {
      // The refusal goes into the audit trail too (only the trail opens; nothing else runs).
      try {
        const audit = await openAudit(config, log, { key: deviceKeyFor(config, { create: true }), anchor: false });
        for (const f of failures.slice(0, 20)) audit.events.securityAlert({ type: 'software-configuration', detail: `installation integrity check failed: ${f}; start refused` });
        await audit.stop();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'could not record the integrity failure in the audit trail');
      }
      log.fatal({ failures: failures.length, exitCode: INTEGRITY_EXIT_CODE }, 'gateway refused to start: installation integrity check failed (security.integrity: enforce)');
      return INTEGRITY_EXIT_CODE;
    }
  }
  // Handlers go in before anything starts: a SIGTERM that arrives while the spool is being
  // recovered must still mean "stop cleanly", not the default "die"; it also ends a wait for a lock.
  const starting = new AbortController();
  let onSignal: (signal: string) => void = (signal) => {
    log.info({ signal }, 'signal received while starting: stopping once the start has finished or failed');
    starting.abort();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // SIGHUP reloads what can be reloaded (certificates, callers, destinations, log level); its
  // default, ending the process, is never what an operator means.
  let onHangup: () => void = () => log.warn('SIGHUP while starting: ignored (send it again once the gateway listens)');
  process.on('SIGHUP', () => onHangup());

  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, log, { integrityAlerts, signal: starting.signal, configFile: file });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { cause?: { message?: string } };
    const exitCode = exitCodeFor(err);
    log.fatal({ err: e.message, code: e.code, cause: e.cause?.message, exitCode }, `gateway failed to start: ${e.message}`);
    return exitCode;
  }
  onHangup = () => {
    gateway.reload('SIGHUP').then(
      (r) => log.info({ reloaded: r.reloaded }, 'SIGHUP: configuration reloaded'),
      (err: unknown) => log.error({ err: (err as Error).message }, 'SIGHUP: configuration not reloaded'),
    );
  };
  return new Promise<number>((resolve) => {
    let stopping = false;
    onSignal = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'signal received');
      gateway.stop().then(
        () => resolve(EXIT.ok),
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'error while stopping');
          resolve(EXIT.failed);
        },
      );
    };
    if (starting.signal.aborted) onSignal('SIGTERM');
  });
}
