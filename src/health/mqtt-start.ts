import { badRequest } from './bad-request.js';
import { statfs } from 'node:fs/promises';
import type { GatewayConfig, MqttConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { DestinationForwarder } from '../forward/destination.js';
import type { ReceiveStats } from '../receive/stats.js';
import { retryDeadLetters, type OperatorAuditRecord } from '../spool/operator.js';
import type { StudyEvents } from './study-events.js';
import type { RecoveryReport, Spool } from '../spool/spool.js';
import { VERSION } from '../version.js';
import { EventWatch } from './event-watch.js';
import { Rate, systemFigures, watermark } from './health-report.js';
import { MqttHealth, type HealthEvent } from './mqtt-health.js';

type StatusDoc = Record<string, unknown> & {
  spool: { dir: string; freeBytes: number; minFreeBytes: number; compressAtRest?: { bytesIn: number; bytesOut: number } };
  receive: Record<string, unknown> & { objectsStored: number };
  destinations: (Record<string, unknown> & { name: string; state?: string; deadLetter: number; lastError?: string; compression?: { bytesIn: number; bytesOut: number; verifyFailures: number; codecErrors: number }; retries?: number; deadLettered?: number })[];
};

/**
 * Wire MQTT health into the running gateway: the health document is `pacs-edge status --json`
 * plus board figures, the watermark, rates, compression ratio and errors by kind; events come
 * from state changes (every second), refused associations and the start-up recovery.
 */
/** The MQTT commands (`health.mqtt.commands: true`). */
function commandHandlers(deps: { startedAt: number; forwarders: () => readonly DestinationForwarder[]; spool: Pick<Spool, 'retryDeadLetters' | 'listDeadLetters' | 'find'>; log: Logger; record: (r: OperatorAuditRecord) => void }): Record<string, (args: Record<string, unknown>, by: string) => Promise<unknown>> {
  const destination = (args: Record<string, unknown>): DestinationForwarder => {
    if (typeof args.destination !== 'string') throw badRequest('"destination" (a forward[] name) is required');
    const f = deps.forwarders().find((x) => x.name === args.destination);
    if (!f) throw badRequest(`no destination "${args.destination}"; configured: ${deps.forwarders().map((x) => x.name).join(', ') || 'none'}`);
    return f;
  };
  const some = (args: Record<string, unknown>) => (args.destination === undefined ? [...deps.forwarders()] : [destination(args)]);
  return {
    ping: async () => ({ pong: true, version: VERSION, uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000) }),
    'echo-destination': async (args) => {
      const r = await destination(args).echo();
      return { destination: args.destination, status: `0x${r.status.toString(16).padStart(4, '0')}`, ms: r.ms };
    },
    'retry-dead-letter': async (args, by) => {
      const f = destination(args);
      const ids = args.ids === undefined ? undefined : Array.isArray(args.ids) && args.ids.every((i) => typeof i === 'string') ? (args.ids as string[]) : undefined;
      if (args.ids !== undefined && !ids) throw badRequest('"ids" must be a list of strings');
      // The same operation, log line and audit record as `pacs-edge dead-letter retry` (src/spool/operator.ts).
      const { retried } = await retryDeadLetters(deps.spool, { destination: f.name, ids, by }, { log: deps.log, record: deps.record, how: 'MQTT command' });
      return { destination: f.name, retried };
    },
    'pause-forward': async (args, by) => {
      const fs = some(args);
      for (const f of fs) f.pause();
      deps.log.warn({ destinations: fs.map((f) => f.name), by }, 'forwarding paused (MQTT command)');
      return { paused: fs.map((f) => f.name) };
    },
    'resume-forward': async (args, by) => {
      const fs = some(args);
      for (const f of fs) f.resume();
      deps.log.info({ destinations: fs.map((f) => f.name), by }, 'forwarding resumed (MQTT command)');
      return { resumed: fs.map((f) => f.name) };
    },
  };
}

/** Size of the spool's file system (0 when it cannot be read). */
async function totalBytes(dir: string): Promise<number> {
  const s = await statfs(dir).catch(() => undefined);
  return s ? s.blocks * s.bsize : 0;
}

/** The health document builder, shared by MQTT `health` and the Prometheus metrics. */
export function healthSource(deps: { statusDoc: () => Promise<Record<string, unknown>>; startedAt: number }): () => Promise<Record<string, unknown>> {
  const received = new Rate();
  return async () => {
    const st = (await deps.statusDoc()) as StatusDoc;
    const zip = st.destinations.reduce((a, d) => ({ in: a.in + (d.compression?.bytesIn ?? 0), out: a.out + (d.compression?.bytesOut ?? 0) }), { in: 0, out: 0 });
    const rest = st.spool.compressAtRest;
    return {
      ...st,
      startedAt: new Date(deps.startedAt).toISOString(),
      nodeVersion: process.version,
      system: await systemFigures(),
      spool: { ...st.spool, totalBytes: await totalBytes(String(st.spool.dir)), watermark: watermark(st.spool.freeBytes, st.spool.minFreeBytes) },
      receive: { ...st.receive, receivedPerSecond: received.perSecond(st.receive.objectsStored) },
      compression: {
        forwardRatio: zip.out > 0 ? Math.round((zip.in / zip.out) * 100) / 100 : null,
        atRestRatio: rest && rest.bytesOut > 0 ? Math.round((rest.bytesIn / rest.bytesOut) * 100) / 100 : null,
      },
      errors: {
        receiveFailuresByStatus: st.receive.failuresByStatus ?? {},
        associationsRejectedByReason: st.receive.rejectedByReason ?? {},
        forwardRetries: st.destinations.reduce((n, d) => n + (d.retries ?? 0), 0),
        deadLettered: st.destinations.reduce((n, d) => n + (d.deadLettered ?? 0), 0),
        codecErrors: st.destinations.reduce((n, d) => n + (d.compression?.codecErrors ?? 0), 0),
        verifyFailures: st.destinations.reduce((n, d) => n + (d.compression?.verifyFailures ?? 0), 0),
      },
    };
  };
}

export function startMqttHealth(
  config: GatewayConfig,
  cfg: MqttConfig,
  deps: {
    statusDoc: () => Promise<Record<string, unknown>>;
    health: () => Promise<Record<string, unknown>>;
    stats: ReceiveStats;
    startedAt: number;
    recovery: RecoveryReport;
    log: Logger;
    /** The destinations' forwarders now (a reload replaces them). */
    forwarders: () => readonly DestinationForwarder[];
    spool: Pick<Spool, 'retryDeadLetters' | 'listDeadLetters' | 'find'>;
    /** Audit records of operator changes made by MQTT commands. */
    record: (r: OperatorAuditRecord) => void;
    /** Every MQTT command, done or refused (110113 Security Alert, 110132 Use of Restricted Function). */
    audit?: (e: { detail: string; failure: boolean; by: string }) => void;
    /** study-received / study-delivered / study-incomplete (src/health/study-events.ts). */
    studyEvents?: StudyEvents | undefined;
    /** Where alarms raised elsewhere (a corrupt spooled object) are handed in. */
    alertSinks?: ((a: { destination: string; id: string; sopInstanceUid: string }) => void)[];
    /** Addresses blocked after repeated refused associations (src/receive/caller-guard.ts). */
    onBlocked?: (fn: (b: { address: string; rejections: number; since: number; until: number }) => void) => void;
    /** More event sources (audit failure, certificate expiry), subscribed once MQTT runs. */
    subscribe?: ((emit: (e: HealthEvent) => void) => void)[];
    /** Events about the start itself (a watchdog restart, a trail already failing). */
    startEvents?: HealthEvent[];
  },
): { stop: () => Promise<void> } {
  const health = deps.health;
  const mqtt = new MqttHealth(cfg, {
    deviceId: config.device.id,
    version: VERSION,
    startedAt: new Date(deps.startedAt),
    health,
    log: deps.log,
    // Who sent a command is the role and broker account of its topic (the broker's ACL enforces them).
    commands: cfg.commands ? commandHandlers(deps) : undefined,
    audit: deps.audit,
  });
  const watch = new EventWatch((e) => mqtt.event(e));
  deps.alertSinks?.push((a) => mqtt.event({ type: 'object-corrupt', destination: a.destination, sopInstanceUid: a.sopInstanceUid }));
  deps.studyEvents?.onEvent((e) => mqtt.event(e));
  deps.onBlocked?.((b) => mqtt.event({ type: 'address-blocked', address: b.address, rejections: b.rejections, blockedUntil: new Date(b.until).toISOString() }));
  deps.stats.onRejected((r) => mqtt.event({ type: 'association-rejected', callingAeTitle: r.callingAeTitle, calledAeTitle: r.calledAeTitle, address: r.address, code: r.code, reason: r.why }));
  mqtt.start();
  for (const sub of deps.subscribe ?? []) sub((e) => mqtt.event(e));
  for (const e of deps.startEvents ?? []) mqtt.event(e);
  const r = deps.recovery;
  mqtt.event({ type: 'recovery', recovered: r.recovered, lost: r.lost.length, unreadable: r.unreadable.length, discardedPartials: r.discardedPartials, danglingQueueEntries: r.danglingQueueEntries });
  // Objects kept but not sent because their files cannot be opened (a wrong or missing device key): an alarm, not a figure.
  if (r.unreadable.length > 0) mqtt.event({ type: 'spool-unreadable', objects: r.unreadable.length, reason: r.unreadable[0]!.reason, keyFile: config.spool.encryption.keyFile });
  const look = () =>
    deps
      .statusDoc()
      .then((s) => {
        const st = s as StatusDoc;
        watch.update({ destinations: st.destinations, watermark: watermark(st.spool.freeBytes, st.spool.minFreeBytes), freeBytes: st.spool.freeBytes });
      })
      .catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'could not read the gateway state for MQTT events'));
  // The first look, at once, is the baseline: a destination that goes down in the first second is still an event.
  void look();
  const tick = setInterval(() => void look(), 1000);
  tick.unref();
  return {
    stop: async () => {
      clearInterval(tick);
      await mqtt.stop();
    },
  };
}
