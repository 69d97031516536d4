#!/usr/bin/env node
import path from 'node:path';
import { loadConfig } from '../config/load.js';
import { configWarnings } from '../config/validate.js';
import { ConfigError } from '../errors.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { VERSION } from '../version.js';
import { auditCommand } from '../audit/cli.js';
import { openAudit } from '../audit/index.js';
import { INTEGRITY_EXIT_CODE, installRoot, integrityFailures, MANIFEST_PATH, verifyInstallation, writeManifest } from '../security/integrity.js';
import { backupCommand, restoreCommand } from './backup.js';
import { deadLetterCommand } from './dead-letter.js';
import { statusCommand } from './status.js';

const USAGE = `pacs-edge ${VERSION} — DICOM edge gateway

usage:
  pacs-edge run          --config FILE      start the gateway (foreground; logs JSON to stdout)
  pacs-edge check-config --config FILE      validate a configuration; exit 0 when valid, 1 when not
  pacs-edge status       --config FILE [--json | --watch [SECONDS]]
                                            queue, destination and receive state, from the running gateway or the spool
  pacs-edge dead-letter  list|retry|purge --config FILE [--destination NAME] [--id ID ...] [--yes] [--json]
                                            objects a destination refused for good: list them, queue them again,
                                            or give up on them (purge needs --yes and is logged)
  pacs-edge audit verify --config FILE [--json]
                                            check the audit trail's HMAC chain; exit 0 intact, 3 not intact
                                            (the reading is itself audited: 110101 Audit Log Used)
  pacs-edge backup       --config FILE --out FILE.peb --passphrase-file FILE [--force]
                                            one encrypted file (scrypt + AES-256-GCM): configuration and profiles,
                                            device key, TLS/MQTT credential files, audit trail head
  pacs-edge restore      --in FILE.peb --passphrase-file FILE --root DIR [--force]
                                            write them back under DIR at their original paths (--root / in place)
  pacs-edge manifest     [--root DIR] [--check]
                                            write DIR/dist/MANIFEST.sha256 (SHA-256 of dist/, package*.json, production
                                            node_modules; DIR: this installation), or --check it (exit 0 intact, 4 not)
  pacs-edge --version`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === '--version' || cmd === 'version') {
    console.log(VERSION);
    return 0;
  }
  if (!cmd || cmd === '--help' || cmd === 'help' || cmd === '-h') {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'manifest') return manifestCommand(option(args, '--root'), args.includes('--check'));
  if (cmd === 'restore') return restoreCommand(args, (name) => option(args, name));
  const file = option(args, '--config') ?? process.env.PACS_EDGE_CONFIG;
  if (!file) {
    console.error(`pacs-edge ${cmd}: --config FILE is required\n\n${USAGE}`);
    return 2;
  }
  switch (cmd) {
    case 'check-config': {
      try {
        const config = loadConfig(file);
        for (const w of configWarnings(config)) console.error(`warning: ${w}`);
        console.log(`${file}: valid (device ${config.device.id}, AE ${config.receive.aeTitle} on ${config.receive.host}${config.receive.plain ? `:${config.receive.port}` : ''}${config.receive.tls ? ` (TLS ${config.receive.tls.port})` : ''}, ${config.forward.length} destination(s))`);
        return 0;
      } catch (err) {
        console.error(err instanceof ConfigError ? err.message : `${file}: ${(err as Error).message}`);
        return 1;
      }
    }
    case 'status':
      return statusCommand(loadConfig(file), args.includes('--json'), watchInterval(args));
    case 'dead-letter':
      return deadLetterCommand(loadConfig(file), args, (name) => option(args, name));
    case 'backup':
      return backupCommand(file, args, (name) => option(args, name));
    case 'audit':
      return auditCommand(loadConfig(file), args);
    case 'run':
      return run(file);
    default:
      console.error(`pacs-edge: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

async function run(file: string): Promise<number> {
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : (err as Error).message);
    return 1;
  }
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
        const audit = await openAudit(config, log);
        for (const f of failures.slice(0, 20)) audit.events.securityAlert({ type: 'software-configuration', detail: `installation integrity check failed: ${f}; start refused` });
        await audit.stop();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'could not record the integrity failure in the audit trail');
      }
      log.fatal({ failures: failures.length, exitCode: INTEGRITY_EXIT_CODE }, 'gateway refused to start: installation integrity check failed (security.integrity: enforce)');
      await new Promise((r) => setTimeout(r, 50));
      return INTEGRITY_EXIT_CODE;
    }
  }
  // Handlers go in before anything starts: a SIGTERM that arrives while the spool is being
  // recovered must still mean "stop cleanly", not the default "die".
  let stopRequested: string | undefined;
  let onSignal: (signal: string) => void = (signal) => {
    stopRequested ??= signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, log, { integrityAlerts });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { cause?: { message?: string } };
    log.fatal({ err: e.message, code: e.code, cause: e.cause?.message }, 'gateway failed to start');
    await new Promise((r) => setTimeout(r, 50));
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    onSignal = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'signal received');
      gateway.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'error while stopping');
          resolve(1);
        },
      );
    };
    if (stopRequested) onSignal(stopRequested);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exitCode = 1;
  },
);

/** `pacs-edge manifest [--root DIR] [--check]`: write or check DIR/dist/MANIFEST.sha256. */
function manifestCommand(root: string | undefined, check: boolean): number {
  const dir = root ? path.resolve(root) : installRoot();
  if (check) {
    const failures = integrityFailures(verifyInstallation(dir));
    for (const f of failures) console.error(`SECURITY ALERT: installation integrity check failed: ${f}`);
    if (failures.length === 0) console.log(`${path.join(dir, MANIFEST_PATH)}: installation intact`);
    return failures.length === 0 ? 0 : INTEGRITY_EXIT_CODE;
  }
  const m = writeManifest(dir);
  console.log(`${m.file}: ${m.files} files, ${(m.bytes / 1e6).toFixed(1)} MB, hashed in ${Math.round(m.ms)} ms`);
  return 0;
}

/** `--watch` (2 s) or `--watch N`: the refresh period of the live status view. */
function watchInterval(args: string[]): number | undefined {
  const i = args.indexOf('--watch');
  if (i < 0) return undefined;
  const n = Number(args[i + 1]);
  return Number.isFinite(n) && n >= 0.5 ? n : 2;
}
