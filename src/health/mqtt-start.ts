import type { GatewayConfig, MqttConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { ReceiveStats } from '../receive/stats.js';
import type { RecoveryReport } from '../spool/spool.js';
import { VERSION } from '../version.js';
import { EventWatch } from './event-watch.js';
import { Rate, systemFigures, watermark } from './health-report.js';
import { MqttHealth } from './mqtt-health.js';

type StatusDoc = Record<string, unknown> & {
  spool: { freeBytes: number; minFreeBytes: number; compressAtRest?: { bytesIn: number; bytesOut: number } };
  receive: Record<string, unknown> & { objectsStored: number };
  destinations: (Record<string, unknown> & { name: string; state?: string; deadLetter: number; lastError?: string; compression?: { bytesIn: number; bytesOut: number; verifyFailures: number; codecErrors: number }; retries?: number; deadLettered?: number })[];
};

/**
 * Wire MQTT health into the running gateway: the health document is `pacs-edge status --json`
 * plus board figures, the watermark, rates, compression ratio and errors by kind; events come
 * from state changes (every second), refused associations and the start-up recovery.
 */
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
      spool: { ...st.spool, watermark: watermark(st.spool.freeBytes, st.spool.minFreeBytes) },
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
  deps: { statusDoc: () => Promise<Record<string, unknown>>; health: () => Promise<Record<string, unknown>>; stats: ReceiveStats; startedAt: number; recovery: RecoveryReport; log: Logger },
): { stop: () => Promise<void> } {
  const health = deps.health;
  const mqtt = new MqttHealth(cfg, { deviceId: config.device.id, version: VERSION, startedAt: new Date(deps.startedAt), health, log: deps.log });
  const watch = new EventWatch((e) => mqtt.event(e));
  deps.stats.onRejected((r) => mqtt.event({ type: 'association-rejected', callingAeTitle: r.callingAeTitle, calledAeTitle: r.calledAeTitle, address: r.address, reason: r.why }));
  mqtt.start();
  const r = deps.recovery;
  mqtt.event({ type: 'recovery', recovered: r.recovered, lost: r.lost.length, discardedPartials: r.discardedPartials, danglingQueueEntries: r.danglingQueueEntries });
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
