import { loadConfig } from '../config/load.js';
import { checkNamedFiles } from '../config/file-check.js';
import { configWarnings } from '../config/validate.js';
import { ConfigError } from '../errors.js';
import { sealProfileWarningHere } from '../security/cpu-crypto.js';
import { EXIT } from './exit-codes.js';

/**
 * `pacs-edge check-config --config FILE`: the configuration's own rules (every problem, one per
 * line), then every file it names: present, readable by the service user, parsing, and every
 * certificate's days left. Exit 0 when all is well (warnings allowed), 1 otherwise.
 */
export function checkConfigCommand(file: string, opts: { forStart?: boolean; /** /proc/cpuinfo's text (a test's board) */ cpuinfo?: string; arch?: string } = {}): number {
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `${file}: ${(err as Error).message}`);
    return EXIT.failed;
  }
  for (const w of configWarnings(config)) console.error(`warning: ${w}`);
  const cpu = sealProfileWarningHere(config, opts.cpuinfo, opts.arch);
  if (cpu) console.error(`warning: ${cpu}`);
  const r = config.receive;
  // Before a start (the unit's ExecStartPre, --for-start) an expired certificate is said loudly
  // but does not keep the gateway from receiving: the plain listener and the spool still work,
  // and a box that will not start at 3 a.m. because a certificate ran out helps nobody.
  const files = checkNamedFiles(config).map((f) => (opts.forStart && !f.ok && f.daysLeft !== undefined && f.daysLeft < 0 ? { ...f, ok: true, warning: true } : f));
  const bad = files.filter((f) => !f.ok);
  const head = `${file}: ${bad.length ? 'INVALID' : 'valid'} (device ${config.device.id}, AE ${r.aeTitle} on ${r.host}${r.plain ? `:${r.port}` : ''}${r.tls ? ` (TLS ${r.tls.port})` : ''}, ${config.forward.length} destination(s))`;
  (bad.length ? console.error : console.log)(head);
  for (const f of files) {
    const line = `  ${f.ok ? (f.warning ? 'warn' : 'ok  ') : 'FAIL'}  ${f.key} ${f.file}: ${f.detail}`;
    (f.ok ? console.log : console.error)(line);
  }
  return bad.length ? EXIT.failed : EXIT.ok;
}
