import { mkdir } from 'node:fs/promises';
import { openAudit, type AuditHandle } from './audit/index.js';
import { auditConfigurationChange, checkAuditAnchor, writeAuditAnchor } from './audit/start-checks.js';
import type { GatewayConfig } from './config/types.js';
import { configWarnings } from './config/validate.js';
import { ControlServer } from './health/control-server.js';
import type { Logger } from './log.js';
import { AtRestCompressor } from './compress/at-rest.js';
import { CodecPool } from './compress/pool.js';
import { serveMetrics } from './health/metrics.js';
import { healthSource, startMqttHealth } from './health/mqtt-start.js';
import { CommitmentRegistry } from './forward/commitment.js';
import { DestinationForwarder } from './forward/destination.js';
import { Status } from './dicom/status.js';
import { CommitmentScp } from './receive/commitment-scp.js';
import { DicomServer } from './receive/server.js';
import { DiskGuard } from './spool/disk-guard.js';
import { LevelSpool } from './spool/level-spool.js';
import type { RecoveryReport } from './spool/spool.js';
import { HashPool } from './util/hash-pool.js';
import { spoolKey } from './security/spool-key.js';
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

  private constructor(
    readonly config: GatewayConfig,
    readonly spool: LevelSpool,
    readonly dicom: DicomServer,
    private readonly forwarders: DestinationForwarder[],
    private readonly control: ControlServer,
    private readonly hashPool: HashPool,
    private readonly codecPool: CodecPool,
    private readonly atRest: AtRestCompressor | undefined,
    private readonly health: { stop: () => Promise<void> } | undefined,
    private readonly log: Logger,
    readonly recovery: RecoveryReport,
    readonly address: { host: string; port: number },
    private readonly commitmentScp: CommitmentScp | undefined,
  ) {}

  /** `integrityAlerts`: installation files that failed the start-up check (security.integrity: warn), for the audit trail. */
  static async start(config: GatewayConfig, log: Logger, opts: { integrityAlerts?: readonly string[] } = {}): Promise<Gateway> {
    for (const w of configWarnings(config)) log.warn(w);
    await mkdir(config.spool.dir, { recursive: true, mode: 0o750 });
    // The audit trail first: everything after it can be audited. Its chain key, like the spool's,
    // derives from the device key (spool.encryption.keyFile).
    const audit = await openAudit(config, log);
    await checkAuditAnchor(config, audit, log);
    await auditConfigurationChange(config, audit.events, log);
    for (const f of (opts.integrityAlerts ?? []).slice(0, 20)) audit.events.securityAlert({ type: 'software-configuration', detail: `installation integrity check failed: ${f}` });
    // Encryption at rest: the device key (outside the spool, made at the first start) wraps every object's data key.
    const { key: seal, sealNew } = spoolKey(config);
    const hashPool = new HashPool(config.workers.threads, seal);
    const spool = new LevelSpool({
      dir: config.spool.dir,
      destinations: config.forward.map((f) => f.name),
      minFreeBytes: config.spool.minFreeBytes,
      maxBytes: config.spool.maxBytes,
      verifyOnStart: config.spool.verifyOnStart,
      keepForwardedMs: config.spool.keepForwardedHours * 3_600_000,
      hashPool,
      log,
      seal,
      sealNew,
    });
    const recovery = await spool.open();
    const level = recovery.lost.length > 0 ? 'error' : recovery.discardedPartials > 0 || recovery.danglingQueueEntries > 0 ? 'warn' : 'info';
    log[level](
      {
        recovered: recovery.recovered,
        recoveredBytes: recovery.recoveredBytes,
        discardedPartials: recovery.discardedPartials,
        discardedBytes: recovery.discardedBytes,
        lost: recovery.lost.length,
        danglingQueueEntries: recovery.danglingQueueEntries,
      },
      'spool recovered',
    );

    const f = config.forwarding;
    // Started on first use: a gateway that forwards only uncompressed never starts a codec worker.
    const codecPool = new CodecPool({ workers: config.compress.workers, seal });
    const codecs = { pool: codecPool, verify: config.compress.verify, maxObjectBytes: config.compress.maxObjectBytes };
    // Alarms go to whatever health reporting starts later (MQTT events).
    const alertSinks: ((a: { destination: string; id: string; sopInstanceUid: string }) => void)[] = [];
    const alerts = { corrupt: (a: { destination: string; id: string; sopInstanceUid: string }) => alertSinks.forEach((fn) => fn(a)) };
    // Storage Commitment transactions with destinations, for reports arriving on new associations.
    const commitments = new CommitmentRegistry();
    const forwarders = config.forward.map(
      (d) =>
        new DestinationForwarder(d, {
          spool,
          log,
          callingAeTitle: config.receive.aeTitle,
          codecs,
          alerts,
          commitments,
          audit: audit.events,
          commitBatch: f.commitBatch,
          commitTimeoutMs: f.commitTimeoutSeconds * 1000,
          settings: {
            connectTimeoutMs: f.connectTimeoutSeconds * 1000,
            acseTimeoutMs: f.acseTimeoutSeconds * 1000,
            dimseTimeoutMs: f.responseTimeoutSeconds * 1000,
            retryBaseMs: f.retryBaseSeconds * 1000,
            retryMaxMs: f.retryMaxSeconds * 1000,
            idleReleaseMs: f.idleReleaseSeconds * 1000,
            maxAttempts: f.maxAttempts,
            batch: f.batch,
            maxPduLength: f.maxPduLength,
          },
        }),
    );
    spool.onEnqueue((name) => forwarders.find((x) => x.name === name)?.notify());
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
    const dicom = new DicomServer({
      config: config.receive,
      spool,
      log,
      audit: audit.events,
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
      destinations: spool.stats().destinations.map((d) => ({ ...d, ...forwarders.find((x) => x.name === d.name)?.status() })),
      codecs: { workers: config.compress.workers, busy: codecPool.busy, queued: codecPool.queued },
      ...(commitmentScp ? { commitment: commitmentScp.stats() } : {}),
    });
    const control = new ControlServer(
      config.control.socket,
      {
        'GET /dead-letters': () => spool.listDeadLetters(),
        'POST /dead-letters/retry': async (body) => {
          const { destination, ids } = deadLetterRequest(body);
          const retried = await spool.retryDeadLetters(destination, ids);
          log.info({ destination, retried, ids }, 'dead letters put back in the queue (operator request)');
          return { retried };
        },
        'POST /dead-letters/purge': async (body) => {
          const { destination, ids } = deadLetterRequest(body);
          const letters = (await spool.listDeadLetters(destination)).filter((d) => !ids || ids.includes(d.id));
          const purged = await spool.purgeDeadLetters(destination, ids);
          log.warn({ destination, purged, ids }, 'dead letters purged: the destination will never get them (operator request)');
          // 110105: one message per study, from the spool's records (the dead letters name UIDs only).
          const byStudy = new Map<string, number>();
          for (const d of letters) {
            const study = (await spool.find(d.sopInstanceUid))?.studyInstanceUid ?? '';
            byStudy.set(study, (byStudy.get(study) ?? 0) + 1);
          }
          for (const [studyUid, count] of byStudy) audit.events.purged({ studyUid, count, reason: `dead letters of ${destination} purged by an operator` });
          return { purged };
        },
        '/status': statusDoc,
      },
      log,
    );
    await control.listen();
    const listeners = await dicom.listen();
    const address = listeners[0]!;
    if (config.receive.plain) {
      // MLPS 2.0 §8.1.2.2 asks for encrypted transport; plain DICOM is allowed only by configuration, and said so every time.
      log.warn({ port: listeners.find((l) => l.kind === 'plain')?.port }, 'SECURITY ALERT: plain DICOM listener (no TLS) is open: images cross the network unencrypted');
      audit.events.securityAlert({ type: 'network-configuration', detail: `plain DICOM listener (no TLS) on port ${config.receive.port}`, failure: false });
    }
    for (const fw of forwarders) fw.start();
    const healthDoc = healthSource({ statusDoc, startedAt });
    const mqtt = config.health.mqtt ? startMqttHealth(config, config.health.mqtt, { statusDoc, health: healthDoc, stats: dicom.stats, startedAt, recovery, log, forwarders, spool, alertSinks, onBlocked: (fn) => dicom.onBlocked(fn) }) : undefined;
    const metrics = config.health.metrics ? await serveMetrics({ ...config.health.metrics, health: healthDoc, log }) : undefined;
    const health = {
      stop: async () => {
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
        destinations: forwarders.map((x) => x.name),
      },
      'gateway listening',
    );
    const gateway = new Gateway(config, spool, dicom, forwarders, control, hashPool, codecPool, atRest, health, log, recovery, address, commitmentScp);
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
    await Promise.all(this.forwarders.map((f) => f.stop()));
    await this.atRest?.stop();
    await this.control.close();
    await this.health?.stop();
    await this.spool.close();
    await this.hashPool.close();
    await this.codecPool.close();
    if (this.audit) {
      this.audit.events.stopped();
      await this.audit.stop();
      await writeAuditAnchor(this.config, this.audit).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not write the audit anchor'));
    }
    this.log.info('gateway stopped');
  }
}

/** Validate the body of a dead-letter request from the control socket. */
function deadLetterRequest(body: unknown): { destination: string; ids?: string[] } {
  const b = body as { destination?: unknown; ids?: unknown } | undefined;
  if (!b || typeof b.destination !== 'string') throw new Error('destination is required');
  if (b.ids !== undefined && (!Array.isArray(b.ids) || !b.ids.every((i) => typeof i === 'string'))) throw new Error('ids must be a list of strings');
  return b.ids ? { destination: b.destination, ids: b.ids as string[] } : { destination: b.destination };
}
