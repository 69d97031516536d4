import { mkdir } from 'node:fs/promises';
import { openAudit, type AuditHandle } from './audit/index.js';
import { auditConfigurationChange, checkAuditAnchor, writeAuditAnchor } from './audit/start-checks.js';
import type { GatewayConfig } from './config/types.js';
import { configWarnings } from './config/validate.js';
import { ControlServer, controlGet } from './health/control-server.js';
import type { Logger } from './log.js';
import { AtRestCompressor } from './compress/at-rest.js';
import { CodecPool } from './compress/pool.js';
import { serveMetrics } from './health/metrics.js';
import { serveWeb } from './health/web.js';
import { checkNamedFiles } from './config/file-check.js';
import { healthSource, startMqttHealth } from './health/mqtt-start.js';
import { CommitmentRegistry } from './forward/commitment.js';
import { Forwarders } from './forward/forwarders.js';
import { operatorControlRoutes, type ReloadResult } from './health/operator-controls.js';
import { setLogLevel } from './log.js';
import { loadConfig } from './config/load.js';
import { reloadPlan } from './config/reload.js';
import { routeOf } from './spool/route.js';
import { Status } from './dicom/status.js';
import { CommitmentScp } from './receive/commitment-scp.js';
import { DicomServer } from './receive/server.js';
import { DiskGuard } from './spool/disk-guard.js';
import type { LevelSpool } from './spool/level-spool.js';
import { checkSpoolFormat, openSpool } from './spool/open.js';
import { AUDIT_FORMAT, auditFormatOf } from './audit/chain.js';
import { operatorRequest, purgeDeadLetters, resendRequest, resendStudy, retryDeadLetters, type OperatorAuditRecord } from './spool/operator.js';
import { answerStudies, parseStudyQuery, studyJson } from './spool/studies.js';
import { StudyEvents } from './health/study-events.js';
import type { RecoveryReport } from './spool/spool.js';
import type { DeviceKey } from './security/device-key.js';
import { deviceKeyFor } from './security/spool-key.js';
import { checkDeviceKeyFits } from './spool/key-check.js';
import { accessionHash, accessionKey } from './security/accession.js';
import { PacsEdgeError } from './errors.js';
import { VERSION } from './version.js';

/**
 * The running gateway: spool (recovered first), DICOM listener, control socket.
 * Start order matters: the listener opens only after recovery, so no association is accepted
 * into a spool whose state is not yet known.
 */
export class Gateway {
  // ---- audit trail (src/audit, docs/audit.md) ----
  /** The tamper-evident audit trail; `audit.events` is what receive/forward/spool code calls. */
  audit: AuditHandle | undefined;
  // ---- end audit trail ----
  /** Apply the configuration file again (`pacs-edge reload`, SIGHUP): see src/config/reload.ts. */
  reload: (by: string) => Promise<ReloadResult> = () => Promise.reject(new PacsEdgeError('RELOAD_REFUSED', 'not started', { retryable: false }));

  private constructor(
    readonly config: GatewayConfig,
    readonly spool: LevelSpool,
    readonly dicom: DicomServer,
    private readonly forwarders: Forwarders,
    private readonly control: ControlServer,
    /** Closes the spool, its hash workers and its lock (src/spool/open.ts). */
    private readonly closeSpool: () => Promise<void>,
    private readonly codecPool: CodecPool,
    private readonly atRest: AtRestCompressor | undefined,
    private readonly health: { stop: () => Promise<void> } | undefined,
    private readonly log: Logger,
    readonly recovery: RecoveryReport,
    readonly address: { host: string; port: number },
    private readonly commitmentScp: CommitmentScp | undefined,
  ) {}

  /**
   * Build, wire and start every part, in order: audit trail, spool (recovered), control socket,
   * DICOM listeners, forwarders, health. When a part fails (a taken port, a locked spool, a
   * wrong key), the parts already started are stopped in reverse order before the error is
   * thrown, so a failed start leaves no lock, socket or listener behind and the process can exit.
   *
   * `integrityAlerts`: installation files that failed the start-up check (security.integrity: warn), for the audit trail.
   * `signal`: a stop asked for while starting (SIGTERM during recovery) ends a wait for a lock.
   */
  static async start(config: GatewayConfig, log: Logger, opts: { integrityAlerts?: readonly string[]; signal?: AbortSignal; configFile?: string } = {}): Promise<Gateway> {
    const undo: { what: string; fn: (err: Error) => Promise<void> }[] = [];
    try {
      return await Gateway.build(config, log, opts, undo);
    } catch (err) {
      for (const u of undo.reverse()) await u.fn(err as Error).catch((e: unknown) => log.warn({ part: u.what, err: (e as Error).message }, 'could not stop a part after a failed start'));
      throw err;
    }
  }

  private static async build(
    config: GatewayConfig,
    log: Logger,
    opts: { integrityAlerts?: readonly string[]; signal?: AbortSignal; configFile?: string },
    undo: { what: string; fn: (err: Error) => Promise<void> }[],
  ): Promise<Gateway> {
    /** The configuration in force: a reload replaces it (src/config/reload.ts). */
    const live = { config };
    for (const w of configWarnings(config)) log.warn(w);
    await mkdir(config.spool.dir, { recursive: true, mode: 0o750 });
    // A gateway already answering on this control socket owns the spool and the trail: say so at once.
    if ((await controlGet(config.control.socket, '/status', 1000).catch(() => undefined)) !== undefined) {
      throw new PacsEdgeError('GATEWAY_RUNNING', `a gateway is already running with this configuration (it answers on ${config.control.socket})`, { retryable: false });
    }
    // The device key roots the audit chain and the spool's encryption; it is made at the first
    // start only, never over data sealed or chained with another (src/security/spool-key.ts).
    const deviceKey = deviceKeyFor(config, { create: true });
    // …and a key that does not fit the data here stops the start before anything is opened with it.
    await checkDeviceKeyFits(config, deviceKey);
    const accKey = accessionKey(deviceKey);
    // A spool or an audit trail written by a newer release (a downgrade too far): exit 7, nothing changed.
    await checkSpoolFormat(config);
    const auditFormat = await auditFormatOf(config.audit.dir);
    if (auditFormat !== undefined && auditFormat > AUDIT_FORMAT) {
      throw new PacsEdgeError('AUDIT_FORMAT_NEWER', `the audit trail in ${config.audit.dir} is in format ${auditFormat}; pacs-edge ${VERSION} writes format ${AUDIT_FORMAT}: install the release that wrote it, or a newer one. Nothing was changed.`, { retryable: false });
    }
    // The audit trail first: everything after it can be audited.
    const audit = await openAuditWaiting(config, log, deviceKey, opts.signal);
    undo.push({
      what: 'audit trail',
      fn: async (err) => {
        // The refusal is itself a fact for the auditor (a wrong key, a taken port).
        audit.events.securityAlert({ type: 'software-configuration', detail: `gateway start refused: ${err.message}`.slice(0, 1000) });
        await audit.stop();
      },
    });
    await checkAuditAnchor(config, audit, log);
    await auditConfigurationChange(config, audit.events, log);
    for (const f of (opts.integrityAlerts ?? []).slice(0, 20)) audit.events.securityAlert({ type: 'software-configuration', detail: `installation integrity check failed: ${f}` });
    const opened = await openSpool(config, { access: 'gateway', log, deviceKey, command: 'pacs-edge run', signal: opts.signal });
    undo.push({ what: 'spool', fn: () => opened.close() });
    const { spool, seal, recovery } = opened;
    logRecovery(log, recovery, config);

    const f = config.forwarding;
    // Started on first use: a gateway that forwards only uncompressed never starts a codec worker.
    const codecPool = new CodecPool({ workers: config.compress.workers, seal });
    undo.push({ what: 'codec workers', fn: () => codecPool.close() });
    const codecs = { pool: codecPool, verify: config.compress.verify, maxObjectBytes: config.compress.maxObjectBytes };
    // Alarms go to whatever health reporting starts later (MQTT events).
    const alertSinks: ((a: { destination: string; id: string; sopInstanceUid: string }) => void)[] = [];
    const alerts = { corrupt: (a: { destination: string; id: string; sopInstanceUid: string }) => alertSinks.forEach((fn) => fn(a)) };
    // Storage Commitment transactions with destinations, for reports arriving on new associations.
    const commitments = new CommitmentRegistry();
    const forwarders = new Forwarders({ spool, log, codecs, alerts, commitments, audit: audit.events }, config);
    spool.onEnqueue((name) => forwarders.find(name)?.notify());
    const atRest = config.spool.compressAtRest
      ? new AtRestCompressor({
          rewriter: spool.rewriter,
          pool: codecPool,
          compression: 'jpeg-ls',
          maxObjectBytes: config.compress.maxObjectBytes,
          log,
          receiving: () => dicom.stats.activeAssociations > 0,
        })
      : undefined;
    if (atRest) {
      undo.push({ what: 'compression at rest', fn: () => atRest.stop() });
      spool.rewriter.onStored((r) => atRest.offer(r));
      // What an earlier run left uncompressed (stopped, crashed, or compression turned on since).
      void (async () => {
        for await (const r of spool.rewriter.records()) atRest.offer(r);
      })().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not list the spool for compression at rest'));
    }
    const commitmentScp = config.receive.commitment.enabled
      ? new CommitmentScp({
          config: config.receive,
          spool,
          log,
          settings: { connectTimeoutMs: f.connectTimeoutSeconds * 1000, acseTimeoutMs: f.acseTimeoutSeconds * 1000, dimseTimeoutMs: f.responseTimeoutSeconds * 1000, maxPduLength: f.maxPduLength },
        })
      : undefined;
    if (commitmentScp) undo.push({ what: 'storage commitment SCP', fn: async () => commitmentScp.stop() });
    const dicom = new DicomServer({
      config: config.receive,
      spool,
      log,
      audit: audit.events,
      accessionKey: accKey,
      commitment: {
        peers: config.forward.filter((d) => d.commit).map((d) => ({ aeTitle: d.aeTitle, host: d.host })),
        onAction: (req) =>
          commitmentScp ? commitmentScp.onAction(req) : Promise.resolve({ status: Status.SopClassNotSupported.code, comment: 'storage commitment is disabled' }),
        onEventReport: async (req) =>
          (await commitments.receive(req.dataset, req.explicitVr, log.child({ callingAe: req.callingAeTitle }))) === 'settled'
            ? { status: Status.Success.code }
            : { status: Status.InvalidArgumentValue.code, comment: 'unreadable storage commitment report' },
      },
    });
    const guard = new DiskGuard(config.spool.dir, config.spool);
    const startedAt = Date.now();
    const statusDoc = async () => ({
      device: config.device.id,
      version: VERSION,
      running: true,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      receive: {
        aeTitle: config.receive.aeTitle,
        host: config.receive.host,
        port: config.receive.plain ? config.receive.port : null,
        tlsPort: config.receive.tls?.port ?? null,
        ...dicom.stats.snapshot(),
        blocked: dicom.guard.list().map((b) => ({ address: b.address, rejections: b.rejections, until: new Date(b.until).toISOString() })),
        refusedBlocked: dicom.refusedBlocked,
      },
      spool: {
        dir: config.spool.dir,
        ...spool.stats(),
        freeBytes: await guard.freeBytes(),
        minFreeBytes: config.spool.minFreeBytes,
        ...(atRest ? { compressAtRest: atRest.stats() } : {}),
      },
      destinations: spool.stats().destinations.map((d) => ({ ...d, ...forwarders.find(d.name)?.status() })),
      codecs: { workers: config.compress.workers, busy: codecPool.busy, queued: codecPool.queued },
      ...(commitmentScp ? { commitment: commitmentScp.stats() } : {}),
    });
    const record = (r: OperatorAuditRecord) => (r.kind === 'purged' ? audit.events.purged(r) : audit.events.requeued(r));
    // `pacs-edge reload` and SIGHUP: what src/config/reload.ts allows, or nothing at all.
    const reload = async (by: string): Promise<ReloadResult> => {
      if (!opts.configFile) throw new PacsEdgeError('RELOAD_REFUSED', 'this gateway was not started from a configuration file', { retryable: false });
      const next = loadConfig(opts.configFile);
      const plan = reloadPlan(live.config, next);
      if (plan.restart.length > 0) {
        log.warn({ by, restart: plan.restart }, 'reload refused: these settings change only with a restart');
        throw new PacsEdgeError('RELOAD_REFUSED', `not reloaded: ${plan.restart.join(', ')} change only with a restart (systemctl restart pacs-edge); nothing was changed`, { retryable: false });
      }
      dicom.reload(next.receive);
      let forward: ReloadResult['forward'] = { added: [], removed: [], restarted: [] };
      if (plan.reloadable.some((p) => p.startsWith('forward'))) {
        spool.setRouting(next.forward.map((x) => x.name), routeOf(next.forward));
        forward = await forwarders.reload(next);
      }
      setLogLevel(log, next.log.level);
      studyEvents.setStableMs(next.studies.stableSeconds * 1000);
      live.config = next;
      log.warn({ by, reloaded: plan.reloadable, ...forward }, 'configuration reloaded');
      audit.events.configChanged({ what: `configuration reloaded by ${by}: ${plan.reloadable.join(', ') || 'certificates re-read, nothing else changed'}`, security: plan.reloadable.some((p) => p.startsWith('receive.')) });
      return { reloaded: plan.reloadable, certificates: !!next.receive.tls, forward };
    };
    const control = new ControlServer(
      config.control.socket,
      {
        'GET /dead-letters': () => spool.listDeadLetters(),
        'POST /dead-letters/retry': (body) => retryDeadLetters(spool, operatorRequest(body), { log, record, how: 'through the running gateway' }),
        'POST /dead-letters/purge': (body) => purgeDeadLetters(spool, operatorRequest(body), { log, record, how: 'through the running gateway' }),
        'POST /studies/query': (body) =>
          answerStudies(spool.studies.all(), parseStudyQuery(body), { now: Date.now(), stableMs: live.config.studies.stableSeconds * 1000, hash: (a) => accessionHash(accKey, a) }),
        'POST /study': (body) => {
          const uid = (body as { uid?: unknown } | undefined)?.uid;
          const s = typeof uid === 'string' ? spool.studies.get(uid) : undefined;
          if (!s) throw new PacsEdgeError('STUDY_NOT_FOUND', `no study ${String(uid)} in the spool's history`, { retryable: false });
          return studyJson(s, Date.now(), live.config.studies.stableSeconds * 1000, true);
        },
        'POST /studies/resend': (body) => resendStudy(spool, resendRequest(body), { log, record, how: 'through the running gateway', destinations: live.config.forward.map((x) => x.name) }),
        ...operatorControlRoutes({ forwarders, log, audit: audit.events, setLevel: (level) => setLogLevel(log, level), reload: (by) => reload(by) }),
        '/status': statusDoc,
      },
      log,
    );
    await control.listen();
    undo.push({ what: 'control socket', fn: () => control.close() });
    undo.push({ what: 'DICOM listeners', fn: () => dicom.close(0) });
    const listeners = await dicom.listen();
    const address = listeners[0]!;
    if (config.receive.plain) {
      // MLPS 2.0 §8.1.2.2 asks for encrypted transport; plain DICOM is allowed only by configuration, and said so every time.
      log.warn({ port: listeners.find((l) => l.kind === 'plain')?.port }, 'SECURITY ALERT: plain DICOM listener (no TLS) is open: images cross the network unencrypted');
      audit.events.securityAlert({ type: 'network-configuration', detail: `plain DICOM listener (no TLS) on port ${config.receive.port}`, failure: false });
    }
    // Study events (study-received, -delivered, -incomplete): logged, and on MQTT when configured.
    const studyEvents = new StudyEvents({ studies: () => spool.studies.all(), mark: (uid, what) => spool.markStudy(uid, what), stableMs: config.studies.stableSeconds * 1000, log });
    studyEvents.start();
    undo.push({ what: 'study events', fn: async () => studyEvents.stop() });
    // Listeners that cannot open stop the start before anything is sent.
    const metrics = config.health.metrics ? await serveMetrics({ ...config.health.metrics, health: healthSource({ statusDoc, startedAt }), log }) : undefined;
    if (metrics) undo.push({ what: 'metrics', fn: () => metrics.close() });
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
    if (web) undo.push({ what: 'status page', fn: () => web.close() });
    forwarders.start();
    undo.push({ what: 'forwarders', fn: () => forwarders.stop() });
    const healthDoc = healthSource({ statusDoc, startedAt });
    const mqtt = config.health.mqtt ? startMqttHealth(config, config.health.mqtt, { statusDoc, health: healthDoc, stats: dicom.stats, startedAt, recovery, log, forwarders: () => forwarders.all(), spool, record, studyEvents, alertSinks, onBlocked: (fn) => dicom.onBlocked(fn) }) : undefined;
    const health = {
      stop: async () => {
        studyEvents.stop();
        await web?.close();
        await metrics?.close();
        await mqtt?.stop();
      },
    };
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
    const gateway = new Gateway(config, spool, dicom, forwarders, control, opened.close, codecPool, atRest, health, log, recovery, address, commitmentScp);
    gateway.reload = reload;
    // ---- audit trail ----
    gateway.audit = audit;
    audit.events.started();
    // ---- end audit trail ----
    return gateway;
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.log.info('gateway stopping');
    await this.dicom.close(graceMs);
    this.commitmentScp?.stop();
    await this.forwarders.stop();
    await this.atRest?.stop();
    await this.control.close();
    await this.health?.stop();
    await this.closeSpool();
    await this.codecPool.close();
    if (this.audit) {
      this.audit.events.stopped();
      await this.audit.stop();
      await writeAuditAnchor(this.config, this.audit).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not write the audit anchor'));
    }
    this.log.info('gateway stopped');
  }
}

/** The spool's recovery, said once at start: an error when anything could not be vouched for. */
function logRecovery(log: Logger, recovery: RecoveryReport, config: GatewayConfig): void {
  const level = recovery.lost.length > 0 || recovery.unreadable.length > 0 ? 'error' : recovery.discardedPartials > 0 || recovery.danglingQueueEntries > 0 ? 'warn' : 'info';
  log[level](
    {
      recovered: recovery.recovered,
      recoveredBytes: recovery.recoveredBytes,
      discardedPartials: recovery.discardedPartials,
      discardedBytes: recovery.discardedBytes,
      lost: recovery.lost.length,
      unreadable: recovery.unreadable.length,
      danglingQueueEntries: recovery.danglingQueueEntries,
    },
    'spool recovered',
  );
  if (recovery.unreadable.length > 0) {
    log.error(
      { unreadable: recovery.unreadable.length, keyFile: config.spool.encryption.keyFile, first: recovery.unreadable[0]?.reason },
      'some spooled objects cannot be opened with this device key: they stay in the spool, unsent, until a start with the key they were sealed with',
    );
  }
}

/**
 * Open the audit trail; a command may hold it for a moment (`audit verify`, a dead-letter
 * retry on a stopped gateway), so a held trail is waited for, up to 10 s.
 */
async function openAuditWaiting(config: GatewayConfig, log: Logger, key: DeviceKey, signal?: AbortSignal): Promise<AuditHandle> {
  const deadline = Date.now() + 10_000;
  for (let told = false; ; told = true) {
    try {
      return await openAudit(config, log, { key });
    } catch (err) {
      if ((err as { code?: string }).code !== 'AUDIT_LOCKED' || Date.now() > deadline || signal?.aborted) throw err;
      if (!told) log.warn({ err: (err as Error).message }, 'the audit trail is held by another process; waiting for it');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
