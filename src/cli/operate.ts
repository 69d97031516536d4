import { safeUser } from './audit.js';
import type { GatewayConfig } from '../config/types.js';
import { controlRequest } from '../health/control-server.js';
import type { ReloadResult } from '../health/operator-controls.js';
import { LOG_LEVELS } from '../log.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

/**
 * Operating the running gateway without MQTT: `destination pause|resume|echo NAME`,
 * `log-level LEVEL`, `reload`. They act on the running process (its control socket); with the
 * gateway stopped there is nothing to act on, and they say so (exit 1). Audited by the gateway,
 * with the account proven on the control socket; a role that may not do it gets exit 8.
 */
async function ask(config: GatewayConfig, what: string, path: string, body: Record<string, unknown>): Promise<{ ok: true; answer: unknown } | { ok: false; code: number }> {
  // As whoever runs it (root under sudo stays root): the gateway records the proven account.
  try {
    const answer = await controlRequest(config.control.socket, 'POST', path, { ...body, by: safeUser() }, 30_000);
    if (answer === undefined) {
      console.error(`pacs-edge ${what}: the gateway is not running (nothing answers on ${config.control.socket})`);
      return { ok: false, code: EXIT.failed };
    }
    return { ok: true, answer };
  } catch (err) {
    console.error(`pacs-edge ${what}: ${(err as Error).message}`);
    return { ok: false, code: exitCodeFor(err) };
  }
}

export async function destinationCommand(config: GatewayConfig, action: 'pause' | 'resume' | 'echo', args: string[], json: boolean): Promise<number> {
  const name = args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '--config');
  if (!name) {
    console.error(`usage: pacs-edge destination ${action} NAME --config FILE`);
    return EXIT.usage;
  }
  if (!config.forward.some((f) => f.name === name)) {
    console.error(`pacs-edge destination ${action}: no destination "${name}" in the configuration`);
    return EXIT.usage;
  }
  const r = await ask(config, `destination ${action}`, `/destinations/${action}`, { name });
  if (!r.ok) return r.code;
  const a = r.answer as { destination: string; paused?: boolean; status?: string; ms?: number };
  if (json) console.log(JSON.stringify(a));
  else if (action === 'echo') console.log(`${a.destination}: C-ECHO ${a.status === '0x0000' ? 'Success' : a.status} in ${a.ms} ms`);
  else console.log(`${a.destination}: ${a.paused ? 'paused (objects stay queued; pacs-edge destination resume to go on)' : 'resumed'}`);
  return action === 'echo' && a.status !== '0x0000' ? EXIT.failed : EXIT.ok;
}

export async function logLevelCommand(config: GatewayConfig, args: string[]): Promise<number> {
  const level = args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '--config');
  if (!level || !LOG_LEVELS.includes(level as never)) {
    console.error(`usage: pacs-edge log-level ${LOG_LEVELS.join('|')} --config FILE`);
    return EXIT.usage;
  }
  const r = await ask(config, 'log-level', '/log-level', { level });
  if (!r.ok) return r.code;
  console.log(`log level: ${level} (until the next start, or a reload: log.level in the configuration)`);
  return EXIT.ok;
}

export async function reloadCommand(config: GatewayConfig, json: boolean): Promise<number> {
  const r = await ask(config, 'reload', '/reload', {});
  if (!r.ok) return r.code;
  const a = r.answer as ReloadResult;
  if (json) console.log(JSON.stringify(a));
  else {
    console.log(`reloaded: ${a.reloaded.length ? a.reloaded.join(', ') : 'no setting changed'}${a.certificates ? '; TLS certificate files re-read' : ''}`);
    const f = a.forward;
    if (f.added.length || f.removed.length || f.restarted.length) console.log(`destinations: added ${f.added.join(', ') || '-'}; removed ${f.removed.join(', ') || '-'}; restarted ${f.restarted.join(', ') || '-'}`);
  }
  return EXIT.ok;
}
