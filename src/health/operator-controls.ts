import type { AuditEvents } from '../audit/index.js';
import { PacsEdgeError } from '../errors.js';
import type { Forwarders } from '../forward/forwarders.js';
import { LOG_LEVELS, type Logger } from '../log.js';

/**
 * What an operator does to the running gateway without MQTT (`pacs-edge destination
 * pause|resume|echo`, `log-level`, `reload`), as control-socket routes. Each is logged and audited
 * with the caller's proven account (`by`, set by the control server from the who-proof, never
 * the client's word; 110113 Security Alert, 110132 Use of Restricted Function, not a failure): a paused destination holds images back, a debug log level and a reload change what
 * the gateway does.
 */
export interface ReloadResult {
  reloaded: string[];
  /** TLS certificate files re-read (always, on a reload). */
  certificates: boolean;
  forward: { added: string[]; removed: string[]; restarted: string[] };
}

const bad = (m: string) => new PacsEdgeError('CONTROL_BAD_REQUEST', m, { retryable: false });
const who = (b: { by?: unknown }) => (typeof b.by === 'string' && b.by.length > 0 && b.by.length <= 128 ? b.by : 'unknown operator');

export function operatorControlRoutes(deps: {
  forwarders: Forwarders;
  log: Logger;
  audit: AuditEvents;
  setLevel: (level: (typeof LOG_LEVELS)[number]) => void;
  reload: (by: string) => Promise<ReloadResult>;
}): Record<string, (body: unknown) => Promise<unknown>> {
  const audit = (detail: string, by: string) => deps.audit.securityAlert({ type: 'use-of-restricted-function', detail, failure: false, by });
  const destination = (body: unknown) => {
    const b = (body ?? {}) as { name?: unknown; by?: unknown };
    if (typeof b.name !== 'string') throw bad('name (a destination) is required');
    const f = deps.forwarders.find(b.name);
    if (!f) throw bad(`no destination "${b.name}"; configured: ${deps.forwarders.all().map((x) => x.name).join(', ') || 'none'}`);
    return { f, by: who(b) };
  };
  return {
    'POST /destinations/pause': async (body) => {
      const { f, by } = destination(body);
      f.pause();
      deps.log.warn({ destination: f.name, by }, 'forwarding paused (operator request): objects stay queued until resumed');
      audit(`destination ${f.name} paused by ${by}`, by);
      return { destination: f.name, paused: true };
    },
    'POST /destinations/resume': async (body) => {
      const { f, by } = destination(body);
      f.resume();
      deps.log.info({ destination: f.name, by }, 'forwarding resumed (operator request)');
      audit(`destination ${f.name} resumed by ${by}`, by);
      return { destination: f.name, paused: false };
    },
    'POST /destinations/echo': async (body) => {
      const { f, by } = destination(body);
      const r = await f.echo();
      const status = `0x${r.status.toString(16).toUpperCase().padStart(4, '0')}`;
      deps.log.info({ destination: f.name, by, status, ms: r.ms }, 'C-ECHO to a destination (operator request)');
      audit(`C-ECHO to destination ${f.name} by ${by}: ${status}`, by);
      return { destination: f.name, status, ms: r.ms };
    },
    'POST /log-level': async (body) => {
      const b = (body ?? {}) as { level?: unknown; by?: unknown };
      if (!LOG_LEVELS.includes(b.level as never)) throw bad(`level is one of ${LOG_LEVELS.join(', ')}`);
      const level = b.level as (typeof LOG_LEVELS)[number];
      deps.setLevel(level);
      deps.log.warn({ level, by: who(b) }, 'log level changed (operator request)');
      audit(`log level set to ${level} by ${who(b)}`, who(b));
      return { level };
    },
    'POST /reload': async (body) => deps.reload(who((body ?? {}) as { by?: unknown })),
  };
}
