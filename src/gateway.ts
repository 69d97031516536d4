import { ANCHOR_PURPOSE, type AuditAlarm, type AuditHandle, anchorFileOf } from './audit/index.js';
import { AtRestCompressor, spoolUnderPressure } from './compress/at-rest.js';
import { CodecPool } from './compress/pool.js';
import { checkNamedFiles } from './config/file-check.js';
import type { GatewayConfig } from './config/types.js';
import { configWarnings } from './config/validate.js';
import { CommitmentRegistry } from './forward/commitment.js';
import { Forwarders } from './forward/forwarders.js';
import { auditControlRoutes } from './health/audit-routes.js';
import { ControlServer } from './health/control-server.js';
import { CertificateWatch } from './health/certificate-watch.js';
import { serveMetrics } from './health/metrics.js';
import type { HealthEvent } from './health/mqtt-health.js';
import { healthSource, startMqttHealth } from './health/mqtt-start.js';
import { operatorControlRoutes, type ReloadResult } from './health/operator-controls.js';
import { statusDocument } from './health/status-document.js';
import { StudyEvents } from './health/study-events.js';
import { serveWeb } from './health/web.js';
import { type Logger, setLogLevel } from './log.js';
import { CommitmentScp } from './receive/commitment-scp.js';
import { DicomServer } from './receive/server.js';
import { accessionKey } from './security/accession.js';
import { sealProfileWarningHere } from './security/cpu-crypto.js';
import { patientAuditRef } from './security/patient-pseudonym.js';
import { spoolControlRoutes } from './spool/control-routes.js';
import { DiskGuard } from './spool/disk-guard.js';
import type { LevelSpool } from './spool/level-spool.js';
import { openSpool } from './spool/open.js';
import type { OperatorAuditRecord } from './spool/operator.js';
import { logRecovery } from './spool/recovery-log.js';
import type { RecoveryReport } from './spool/spool.js';
import { answerStudies } from './spool/studies.js';
import { openAuditForStart, refuseStart } from './startup/audit-start.js';
import { commitmentServices } from './startup/commitment-services.js';
import { preflight } from './startup/preflight.js';
import { announceAuditPolicy, auditStallMarker, startStallWatchdog } from './startup/self-protection.js';
import { startSystemdNotify } from './startup/systemd-notify.js';
import { makeReload } from './startup/reload.js';
import { StartedParts } from './startup/started-parts.js';
import { VERSION } from './version.js';

export interface StartOptions {
  /** Installation files that failed the start-up check (security.integrity: warn), for the audit trail. */
  integrityAlerts?: readonly string[];
  /** A stop asked for while starting (SIGTERM during recovery) ends a wait for a lock. */
  signal?: AbortSignal;
  /** The file the configuration came from: what `reload` reads again. */
  configFile?: string;
}

/** The running parts, in the order they stop. */
interface Parts {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly audit: AuditHandle;
  readonly spool: LevelSpool;
  readonly closeSpool: () => Promise<void>;
  readonly recovery: RecoveryReport;
  readonly codecPool: CodecPool;
  readonly atRest: AtRestCompressor | undefined;
  readonly commitmentScp: CommitmentScp | undefined;
  readonly dicom: DicomServer;
  readonly address: { host: string; port: number };
  readonly forwarders: Forwarders;
  readonly control: ControlServer;
  readonly health: { stop: () => Promise<void> };
  readonly reload: (by: string) => Promise<ReloadResult>;
}

/**
 * The composition root: builds every part with its options, wires them, starts them in order
 * and stops them in reverse. Start order matters: the audit trail first (everything after it
 * can be audited), then the spool (recovered), and the DICOM listener only after recovery, so
 * no association is accepted into a spool whose state is not yet known; forwarding starts last.
 */
export class Gateway {
  readonly config: GatewayConfig;
  readonly spool: LevelSpool;
  readonly dicom: DicomServer;
  readonly recovery: RecoveryReport;
  readonly address: { host: string; port: number };
  /** The tamper-evident audit trail; `audit.events` is what receive/forward/spool code calls. */
  readonly audit: AuditHandle;

  private constructor(private readonly parts: Parts) {
    this.config = parts.config;
    this.spool = parts.spool;
    this.dicom = parts.dicom;
    this.recovery = parts.recovery;
    this.address = parts.address;
    this.audit = parts.audit;
  }

  /** Apply the configuration file again (`pacs-edge reload`, SIGHUP): see src/startup/reload.ts. */
  reload(by: string): Promise<ReloadResult> {
    return this.parts.reload(by);
  }

  /**
   * Build, wire and start every part. When one fails (a taken port, a locked spool, a wrong
   * key), those already started are stopped in reverse order before the error is thrown.
   */
  static async start(config: GatewayConfig, log: Logger, opts: StartOptions = {}): Promise<Gateway> {
    const started = new StartedParts(log);
    try {
      return new Gateway(await build(config, log, opts, started));
    } catch (err) {
      await started.unwind(err as Error);
      throw err;
    }
  }

  async stop(graceMs = 10_000): Promise<void> {
    const p = this.parts;
    p.log.info('gateway stopping');
    await p.dicom.close(graceMs);
    p.commitmentScp?.stop();
    await p.forwarders.stop();
    await p.atRest?.stop();
    await p.control.close();
    await p.health.stop();
    await p.closeSpool();
    await p.codecPool.close();
    p.audit.events.stopped();
    // The trail's last flush also writes the audit anchor (src/audit/anchor.ts).
    await p.audit.stop();
    p.log.info('gateway stopped');
  }
}

async function build(config: GatewayConfig, log: Logger, opts: StartOptions, started: StartedParts): Promise<Parts> {
  /** The configuration in force: a reload replaces it. */
  const live = { config };
  for (const w of configWarnings(config)) log.warn(w);
  // Once per start: AES-GCM sealing on a CPU without AES instructions (src/security/cpu-crypto.ts).
  const cpu = sealProfileWarningHere(config);
  if (cpu) log.warn(cpu);
  const deviceKey = await preflight(config);
  const accKey = accessionKey(deviceKey);

  const audit = await openAuditForStart(config, log, { deviceKey, signal: opts.signal, integrityAlerts: opts.integrityAlerts });
  started.add('audit trail', (err) => refuseStart(audit, err));
  // A run the watchdog killed is audited first; then what an alarm-only audit policy means.
  const stall = await auditStallMarker(config, audit, log);
  announceAuditPolicy(config, audit, log);
  const opened = await openSpool(config, { access: 'gateway', log, deviceKey, command: 'pacs-edge run', signal: opts.signal });
  started.add('spool', () => opened.close());
  const { spool, recovery } = opened;
  logRecovery(log, recovery, config);
  // Changed on the card without the device key: kept (not sent), and a Security Alert each (ids only, no patient data).
  for (const t of recovery.tampered ?? []) audit.events.securityAlert({ type: 'spool-integrity', detail: `spooled object ${t.id}: ${t.reason}` });

  // Started on first use: a gateway that forwards only uncompressed never starts a codec worker.
  const codecPool = new CodecPool({ workers: config.compress.workers, seal: opened.seal });
  started.add('codec workers', () => codecPool.close());
  // Alarms go to whatever health reporting starts later (MQTT events).
  const alertSinks: ((a: { destination: string; id: string; sopInstanceUid: string; reason?: string }) => void)[] = [
    // A spooled copy found corrupt when sent (damaged, or planted/swapped on the card): audited as a Security Alert.
    (a) => audit.events.securityAlert({ type: 'spool-integrity', detail: `spooled object ${a.id} for ${a.destination} is corrupt, not sent${a.reason ? `: ${a.reason}` : ''}` }),
  ];
  const registry = new CommitmentRegistry();
  const forwarders = new Forwarders({
    config,
    spool,
    log,
    codecs: { pool: codecPool, verify: config.compress.verify, maxObjectBytes: config.compress.maxObjectBytes },
    alerts: { corrupt: (a) => alertSinks.forEach((fn) => fn(a)) },
    commitments: registry,
    audit: audit.events,
  });
  spool.onEnqueue((name) => forwarders.find(name)?.notify());

  const f = config.forwarding;
  const commitmentScp = config.receive.commitment.enabled
    ? new CommitmentScp({
        config: config.receive,
        spool,
        log,
        settings: { connectTimeoutMs: f.connectTimeoutSeconds * 1000, acseTimeoutMs: f.acseTimeoutSeconds * 1000, dimseTimeoutMs: f.responseTimeoutSeconds * 1000, maxPduLength: f.maxPduLength },
      })
    : undefined;
  if (commitmentScp) started.add('storage commitment SCP', () => commitmentScp.stop());
  const dicom = new DicomServer({
    config: config.receive,
    spool,
    log,
    audit: audit.events,
    accessionKey: accKey,
    patientRef: patientAuditRef(config.audit.patientId, deviceKey),
    commitment: commitmentServices({ config, scp: commitmentScp, registry, log }),
    // audit.onFailure: refuse — no new association while its facts could not be recorded.
    refusing: config.audit.onFailure === 'refuse' ? () => (audit.trail.failure.failing ? (audit.trail.failure.state().reason ?? 'unknown') : undefined) : undefined,
  });
  const atRest = config.spool.compressAtRest ? startAtRest({ spool, codecPool, config, log, receiving: () => dicom.stats.activeAssociations > 0, forwarders }) : undefined;
  if (atRest) started.add('compression at rest', () => atRest.stop());

  const startedAt = Date.now();
  const certificates = new CertificateWatch({ config: () => live.config, log, audit: audit.events });
  const auditState = () => ({ ...audit.trail.failure.state(), onFailure: config.audit.onFailure, queuedRecords: audit.trail.lastSeq - audit.trail.durableSeq });
  const statusDoc = statusDocument({ config, startedAt, dicom, spool, guard: new DiskGuard(config.spool.dir, config.spool), forwarders, codecPool, atRest, commitmentScp, audit: auditState, certificates: () => certificates.status() });
  const record = (r: OperatorAuditRecord) => (r.kind === 'purged' ? audit.events.purged(r) : audit.events.requeued(r));
  const studyEvents = new StudyEvents({ studies: () => spool.studies.all(), mark: (uid, what) => spool.markStudy(uid, what), stableMs: config.studies.stableSeconds * 1000, log });
  const reloadConfig = makeReload({ configFile: opts.configFile, live, log, dicom, spool, forwarders, studyEvents, audit: audit.events });
  // A reload re-reads the certificate files: their days left follow at once.
  const reload = (by: string) => reloadConfig(by).then((r) => (certificates.check(), r));

  // Who did what through the control sockets and MQTT commands, allowed or refused (src/health/roles.ts).
  const restricted = (e: { detail: string; failure: boolean; by: string }) => audit.events.securityAlert({ type: 'use-of-restricted-function', ...e });
  const control = new ControlServer({
    socketPath: config.control.socket,
    routes: {
      ...spoolControlRoutes({ spool, log, record, accessionKey: accKey, config: () => live.config }),
      ...operatorControlRoutes({ forwarders, log, audit: audit.events, setLevel: (level) => setLogLevel(log, level), reload }),
      ...auditControlRoutes({ dir: config.audit.dir, chainKey: deviceKey.derive('audit-chain'), anchor: { file: anchorFileOf(config.spool.dir), key: deviceKey.derive(ANCHOR_PURPOSE) }, audit: audit.events }),
      '/status': statusDoc,
    },
    log,
    groups: config.security.roles,
    audit: restricted,
  });
  await control.listen();
  started.add('control socket', () => control.close());
  started.add('DICOM listeners', () => dicom.close(0));
  const listeners = await dicom.listen();
  const address = listeners[0]!;
  if (config.receive.plain) {
    // MLPS 2.0 §8.1.2.2 asks for encrypted transport; plain DICOM is allowed only by configuration, and said so every time.
    log.warn({ port: listeners.find((l) => l.kind === 'plain')?.port }, 'SECURITY ALERT: plain DICOM listener (no TLS) is open: images cross the network unencrypted');
    audit.events.securityAlert({ type: 'network-configuration', detail: `plain DICOM listener (no TLS) on port ${config.receive.port}`, failure: false });
  }
  // Study events (study-received, -delivered, -incomplete): logged, and on MQTT when configured.
  studyEvents.start();
  started.add('study events', () => studyEvents.stop());
  // Listeners that cannot open stop the start before anything is sent.
  const health = healthSource({ statusDoc, startedAt });
  const metrics = config.health.metrics ? await serveMetrics({ ...config.health.metrics, health, log }) : undefined;
  if (metrics) started.add('metrics', () => metrics.close());
  // The status page for site IT (health.web): read-only, from the same documents as `status`.
  const web = config.health.web
    ? await serveWeb({
        ...config.health.web,
        log,
        sources: {
          status: statusDoc,
          studies: () => answerStudies(spool.studies.all(), { sinceMs: 7 * 86_400_000 }, { now: Date.now(), stableMs: live.config.studies.stableSeconds * 1000, hash: () => undefined }).studies,
          certificates: () => checkNamedFiles(live.config),
        },
      })
    : undefined;
  if (web) started.add('status page', () => web.close());
  forwarders.start();
  started.add('forwarders', () => forwarders.stop());
  const startEvents: HealthEvent[] = [];
  if (stall) startEvents.push({ type: 'watchdog-restart', stalledSeconds: stall.stalledSeconds, killedAt: stall.killedAt || null, stallSeconds: stall.stallSeconds, ...(stall.systemd ? { by: 'systemd', systemd: stall.systemd } : { by: 'in-process' }) });
  if (audit.trail.failure.failing) startEvents.push(auditEvent({ kind: 'audit-failure', reason: audit.trail.failure.state().reason ?? '', since: audit.trail.failure.state().since ?? '' })!);
  const subscribe = [(emit: (e: HealthEvent) => void) => audit.onAlarm((a) => ((e) => e && emit(e))(auditEvent(a))), (emit: (e: HealthEvent) => void) => certificates.onEvent(emit)];
  const mqtt = config.health.mqtt
    ? startMqttHealth(config, config.health.mqtt, { statusDoc, health, stats: dicom.stats, startedAt, recovery, log, forwarders: () => forwarders.all(), spool, record, audit: restricted, studyEvents, alertSinks, onBlocked: (fn) => dicom.onBlocked(fn), subscribe, startEvents })
    : undefined;
  certificates.start();

  log.info(
    {
      version: VERSION,
      aeTitle: config.receive.aeTitle,
      host: address.host,
      port: address.port,
      ...Object.fromEntries(listeners.map((l) => [`${l.kind}Port`, l.port])),
      spool: config.spool.dir,
      destinations: forwarders.all().map((x) => x.name),
      unreadable: recovery.unreadable.length,
    },
    'gateway listening',
  );
  audit.events.started();
  // The two watchdogs start once the gateway listens: systemd's (READY=1, then WATCHDOG=1 pings)
  // and the in-process one (a worker thread that kills a stalled process).
  const systemd = startSystemdNotify({ log });
  const stopStallWatchdog = startStallWatchdog(config, log);
  return {
    config,
    log,
    audit,
    spool,
    closeSpool: opened.close,
    recovery,
    codecPool,
    atRest,
    commitmentScp,
    dicom,
    address,
    forwarders,
    control,
    reload,
    health: {
      stop: async () => {
        systemd?.stop();
        stopStallWatchdog?.();
        certificates.stop();
        studyEvents.stop();
        await web?.close();
        await metrics?.close();
        await mqtt?.stop();
      },
    },
  };
}

/** Lossless compression of stored objects while nothing is being received (src/compress/at-rest.ts). */
function startAtRest(o: { spool: LevelSpool; codecPool: CodecPool; config: GatewayConfig; log: Logger; receiving: () => boolean; forwarders: Forwarders }): AtRestCompressor {
  const guard = new DiskGuard(o.config.spool.dir, o.config.spool);
  const atRest = new AtRestCompressor({
    rewriter: o.spool.rewriter,
    pool: o.codecPool,
    compression: 'jpeg-ls',
    maxObjectBytes: o.config.compress.maxObjectBytes,
    log: o.log,
    receiving: o.receiving,
    // Only when a destination would send the compressed form as stored, or to make room.
    worthIt: (r, syntax) => o.forwarders.takesAtRest(r, syntax),
    pressure: async () => spoolUnderPressure({ spoolBytes: o.spool.stats().bytes, freeBytes: await guard.freeBytes(), ...o.config.spool }),
  });
  o.spool.rewriter.onStored((r) => atRest.offer(r));
  // What an earlier run left uncompressed (stopped, crashed, or compression turned on since).
  void (async () => {
    for await (const r of o.spool.rewriter.records()) atRest.offer(r);
  })().catch((err: unknown) => o.log.warn({ err: (err as Error).message }, 'could not list the spool for compression at rest'));
  return atRest;
}

/** The MQTT event of an audit alarm that is one (recording stopped, recording again). */
function auditEvent(a: AuditAlarm): HealthEvent | undefined {
  if (a.kind === 'audit-failure') return { type: 'audit-failure', reason: a.reason, since: a.since };
  if (a.kind === 'audit-recovered') return { type: 'audit-recovered', seconds: a.seconds };
  return undefined;
}
