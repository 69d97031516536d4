import net from 'node:net';
import tls from 'node:tls';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { listenError } from '../errors.js';
import { tlsServerOptions } from '../security/tls.js';
import type { Spool } from '../spool/spool.js';
import type { AuditEvents } from '../audit/index.js';
import { Association, type CommitmentServices } from './association.js';
import { type BlockedAddress, CallerGuard } from './caller-guard.js';
import { normalizeAddress } from './negotiation.js';
import { ReceiveStats } from './stats.js';

/** A TLS handshake that failed: who, and why (for the log, the audit trail and the block list). */
export interface TlsFailure {
  address: string;
  reason: string;
}

/** Connections without an A-ASSOCIATE-RQ allowed per receive.maxAssociations, and at least. */
const SILENT_PER_ASSOCIATION = 4;
const MIN_SILENT = 16;

/**
 * The DICOM listeners (Storage SCP, Verification SCP, Storage Commitment): plain DICOM on
 * `receive.host:receive.port` when `receive.plain`, DICOM over TLS on `receive.tls.port` when
 * configured. Both feed the same associations, limits and statistics.
 *
 * Every accepted socket gets TCP_NODELAY at once (before the A-ASSOCIATE-AC is written): with
 * Nagle on, a small C-STORE-RSP waits for the peer's delayed ACK and each image stalls ~40 ms.
 *
 * @see PS3.15 Annex B.9 (BCP 195 TLS profile), PS3.8 §9.1 (TCP port)
 */
export class DicomServer {
  readonly stats = new ReceiveStats();
  private readonly servers: { kind: 'plain' | 'tls'; server: net.Server; port: number }[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Connections that have not sent an A-ASSOCIATE-RQ yet, oldest first. */
  private readonly silent = new Set<net.Socket>();
  private seq = 0;
  private readonly tlsFailureSinks: ((f: TlsFailure) => void)[] = [];
  private readonly blockSinks: ((b: BlockedAddress) => void)[] = [];
  readonly guard: CallerGuard;
  /** Connections closed on arrival because their address is blocked. */
  refusedBlocked = 0;

  constructor(
    private deps: {
      config: GatewayConfig['receive'];
      spool: Spool;
      log: Logger;
      commitment?: CommitmentServices | undefined;
      audit?: AuditEvents | undefined;
      /** Hashes Accession Numbers for the study index (src/security/accession.ts). */
      accessionKey?: Buffer | undefined;
      /** Why new associations are refused now (the audit trail cannot write, audit.onFailure: refuse), or undefined. */
      refusing?: (() => string | undefined) | undefined;
      /** The audit trail's Patient participant from a Patient ID (src/security/patient-pseudonym.ts). */
      patientRef?: ((patientId: string | undefined) => string | undefined) | undefined;
    },
  ) {
    const c = deps.config;
    this.guard = new CallerGuard(c.blocking);
    // Who failed to associate: audited, and counted towards a block of the address.
    this.stats.onRejected((r) => {
      // Refusals because the trail cannot write are not queued as records one by one (a caller
      // retrying would fill memory): the trail's 110133/110134 alerts bound the period instead.
      if (r.code === 'audit-failure') return;
      deps.audit?.associationRejected({ callingAe: r.callingAeTitle, calledAe: r.calledAeTitle, address: r.address, reason: r.why });
      if (!r.transient) this.countRejection(r.address, r.why);
    });
    this.onTlsFailure((f) => {
      deps.audit?.nodeAuthFailure({ address: f.address, reason: `TLS handshake failed: ${f.reason}` });
      this.countRejection(f.address, `TLS handshake failed: ${f.reason}`);
    });
    if (c.plain) {
      this.servers.push({ kind: 'plain', port: c.port, server: net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.onConnection(socket, false)) });
    }
    if (c.tls) {
      const server = tls.createServer({ ...tlsServerOptions(c.tls), noDelay: true }, (socket) => this.onConnection(socket, true));
      // A failed handshake never becomes an association: say who and why, and keep serving.
      server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
        const f = { address: normalizeAddress(socket.remoteAddress ?? '?'), reason: err.code ?? err.message };
        this.deps.log.warn({ remote: f.address, reason: f.reason, detail: err.message }, 'TLS handshake failed: connection refused');
        for (const fn of this.tlsFailureSinks) fn(f);
      });
      // A blocked address does not even get a handshake.
      server.on('connection', (socket: net.Socket) => {
        if (this.guard.blocked(socket.remoteAddress ?? '')) {
          this.refusedBlocked++;
          socket.destroy();
        }
      });
      this.servers.push({ kind: 'tls', port: c.tls.port, server });
    }
  }

  /** The `receive` section of the status document (`pacs-edge status`, MQTT, the status page). */
  status(): Record<string, unknown> {
    const c = this.deps.config;
    return {
      aeTitle: c.aeTitle,
      host: c.host,
      port: c.plain ? c.port : null,
      tlsPort: c.tls?.port ?? null,
      ...this.stats.snapshot(),
      blocked: this.guard.list().map((b) => ({ address: b.address, rejections: b.rejections, until: new Date(b.until).toISOString() })),
      refusedBlocked: this.refusedBlocked,
    };
  }

  /**
   * A reload (`pacs-edge reload`, SIGHUP): new associations are judged by the new callers; the
   * TLS listener presents the certificate now in its files (renewed on the same path, or new
   * paths) from its next handshake. Running associations go on as they were.
   */
  reload(receive: GatewayConfig['receive']): void {
    this.deps = { ...this.deps, config: receive };
    const t = this.servers.find((s) => s.kind === 'tls');
    if (t && receive.tls) (t.server as tls.Server).setSecureContext(tlsServerOptions(receive.tls));
  }

  /** Called when an address gets blocked (for the MQTT alarm). */
  onBlocked(fn: (b: BlockedAddress) => void): void {
    this.blockSinks.push(fn);
  }

  private countRejection(address: string, why: string): void {
    const b = this.guard.rejected(address);
    if (!b) return;
    const seconds = this.deps.config.blocking.blockSeconds;
    this.deps.log.error(
      { remote: b.address, rejections: b.rejections, windowSeconds: this.deps.config.blocking.windowSeconds, blockSeconds: seconds, lastReason: why },
      `SECURITY ALERT: ${b.address} blocked for ${seconds} s after ${b.rejections} refused associations`,
    );
    this.deps.audit?.securityAlert({ type: 'node-authentication', detail: `address ${b.address} blocked for ${seconds} s after ${b.rejections} refused associations within ${this.deps.config.blocking.windowSeconds} s` });
    for (const fn of this.blockSinks) fn(b);
  }

  /** Called for every failed TLS handshake (node authentication failure). */
  onTlsFailure(fn: (f: TlsFailure) => void): void {
    this.tlsFailureSinks.push(fn);
  }

  /** Open every configured listener; resolves with their addresses (plain first). */
  async listen(): Promise<{ kind: 'plain' | 'tls'; host: string; port: number }[]> {
    const out: { kind: 'plain' | 'tls'; host: string; port: number }[] = [];
    for (const s of this.servers) {
      const a = await new Promise<net.AddressInfo>((resolve, reject) => {
        const failed = (err: NodeJS.ErrnoException) => reject(listenError(err, s.kind === 'tls' ? 'DICOM TLS listener (receive.tls.port)' : 'DICOM listener (receive.port)', this.deps.config.host, s.port));
        s.server.once('error', failed);
        s.server.listen({ host: this.deps.config.host, port: s.port, backlog: 128 }, () => {
          s.server.off('error', failed);
          s.server.on('error', (err) => this.deps.log.error({ err: err.message, listener: s.kind }, 'DICOM listener error'));
          resolve(s.server.address() as net.AddressInfo);
        });
      });
      out.push({ kind: s.kind, host: a.address, port: a.port });
    }
    return out;
  }

  /** Stop accepting; let running associations finish for up to `graceMs`, then cut them. */
  async close(graceMs: number): Promise<void> {
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve()))));
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private onConnection(socket: net.Socket, secure: boolean): void {
    if (this.guard.blocked(socket.remoteAddress ?? '')) {
      // Closed before any PDU is read: a blocked peer costs one accept and nothing else.
      this.refusedBlocked++;
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const id = ++this.seq;
    const remote = normalizeAddress(socket.remoteAddress ?? '?');
    this.makeRoomForSilent();
    this.sockets.add(socket);
    this.silent.add(socket);
    this.stats.connectionOpened();
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.silent.delete(socket);
    });
    const peer = secure ? (socket as tls.TLSSocket).getPeerCertificate() : undefined;
    this.deps.log.debug({ assoc: id, remote, tls: secure ? (socket as tls.TLSSocket).getProtocol() : undefined, peerCert: peer?.subject?.CN }, 'connection');
    new Association(socket, {
      id,
      config: this.deps.config,
      spool: this.deps.spool,
      log: this.deps.log,
      stats: this.stats,
      // Judged when the request arrives: only associations count against receive.maxAssociations.
      admit: () => this.stats.activeAssociations < this.deps.config.maxAssociations,
      refusing: this.deps.refusing,
      spoke: () => this.silent.delete(socket),
      silentTooLong: () => this.countRejection(remote, 'no A-ASSOCIATE-RQ within ARTIM timeout'),
      commitment: this.deps.commitment,
      audit: this.deps.audit,
      accessionKey: this.deps.accessionKey,
      patientRef: this.deps.patientRef,
    });
  }

  /**
   * Connections that have not sent an A-ASSOCIATE-RQ yet have a budget of their own
   * ({@link SILENT_PER_ASSOCIATION} × receive.maxAssociations): a modality's request is never
   * refused because idle sockets hold the slots. At the budget the oldest silent connection
   * (it had the longest to speak) is closed, and counts as a refused attempt of its address.
   */
  private makeRoomForSilent(): void {
    const budget = Math.max(MIN_SILENT, SILENT_PER_ASSOCIATION * this.deps.config.maxAssociations);
    for (const oldest of this.silent) {
      if (this.silent.size < budget) return;
      this.silent.delete(oldest);
      const remote = normalizeAddress(oldest.remoteAddress ?? '?');
      this.deps.log.warn({ remote, silent: this.silent.size + 1, budget }, 'connection closed: too many connections without an A-ASSOCIATE-RQ (the oldest goes)');
      oldest.destroy();
      this.countRejection(remote, 'too many connections without an A-ASSOCIATE-RQ');
    }
  }
}
