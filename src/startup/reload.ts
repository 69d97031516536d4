import type { AuditEvents } from '../audit/index.js';
import { loadConfig } from '../config/load.js';
import { reloadPlan } from '../config/reload.js';
import type { GatewayConfig } from '../config/types.js';
import { Code, PacsEdgeError } from '../errors.js';
import type { Forwarders } from '../forward/forwarders.js';
import type { ReloadResult } from '../health/operator-controls.js';
import type { StudyEvents } from '../health/study-events.js';
import { type Logger, setLogLevel } from '../log.js';
import type { DicomServer } from '../receive/server.js';
import type { LevelSpool } from '../spool/level-spool.js';
import { routeOf } from '../spool/route.js';

/**
 * `pacs-edge reload` and SIGHUP: read the configuration file again and apply what
 * src/config/reload.ts allows without a restart (callers and blocking, certificates,
 * destinations, log level, study timing), or nothing at all. Logged and audited with who asked.
 */
export function makeReload(o: {
  configFile: string | undefined;
  /** The configuration in force; replaced by a successful reload. */
  live: { config: GatewayConfig };
  log: Logger;
  dicom: DicomServer;
  spool: LevelSpool;
  forwarders: Forwarders;
  studyEvents: StudyEvents;
  audit: AuditEvents;
}): (by: string) => Promise<ReloadResult> {
  const { log, live } = o;
  return async (by) => {
    if (!o.configFile) throw new PacsEdgeError(Code.RELOAD_REFUSED, 'this gateway was not started from a configuration file');
    const next = loadConfig(o.configFile);
    const plan = reloadPlan(live.config, next);
    if (plan.restart.length > 0) {
      log.warn({ by, restart: plan.restart }, 'reload refused: these settings change only with a restart');
      throw new PacsEdgeError(Code.RELOAD_REFUSED, `not reloaded: ${plan.restart.join(', ')} change only with a restart (systemctl restart pacs-edge); nothing was changed`);
    }
    o.dicom.reload(next.receive);
    let forward: ReloadResult['forward'] = { added: [], removed: [], restarted: [] };
    if (plan.reloadable.some((p) => p.startsWith('forward'))) {
      o.spool.setRouting(next.forward.map((x) => x.name), routeOf(next.forward));
      forward = await o.forwarders.reload(next);
    }
    setLogLevel(log, next.log.level);
    o.studyEvents.setStableMs(next.studies.stableSeconds * 1000);
    live.config = next;
    log.warn({ by, reloaded: plan.reloadable, ...forward }, 'configuration reloaded');
    o.audit.configChanged({
      what: `configuration reloaded by ${by}: ${plan.reloadable.join(', ') || 'certificates re-read, nothing else changed'}`,
      security: plan.reloadable.some((p) => p.startsWith('receive.')),
    });
    return { reloaded: plan.reloadable, certificates: !!next.receive.tls, forward };
  };
}
