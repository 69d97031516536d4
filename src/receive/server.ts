import net from 'node:net';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Spool } from '../spool/spool.js';
import { Association, type CommitmentServices } from './association.js';
import { normalizeAddress } from './negotiation.js';
import { ReceiveStats } from './stats.js';

/**
 * The DICOM listener (Storage SCP and Verification SCP) on `receive.host:receive.port`.
 * Every accepted socket gets TCP_NODELAY at once (before the A-ASSOCIATE-AC is written): with
 * Nagle on, a small C-STORE-RSP waits for the peer's delayed ACK and each image stalls ~40 ms.
 */
export class DicomServer {
  readonly stats = new ReceiveStats();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private seq = 0;

  constructor(
    private readonly deps: { config: GatewayConfig['receive']; spool: Spool; log: Logger; commitment?: CommitmentServices | undefined },
  ) {
    this.server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.onConnection(socket));
  }

  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.deps.config;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 128 }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.deps.log.error({ err: err.message }, 'DICOM listener error'));
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stop accepting; let running associations finish for up to `graceMs`, then cut them. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private onConnection(socket: net.Socket): void {
    socket.setNoDelay(true);
    const id = ++this.seq;
    // Sockets still negotiating count too: otherwise a burst could overshoot the limit.
    const admitted = this.sockets.size < this.deps.config.maxAssociations;
    this.sockets.add(socket);
    this.stats.connectionOpened();
    socket.once('close', () => this.sockets.delete(socket));
    this.deps.log.debug({ assoc: id, remote: normalizeAddress(socket.remoteAddress ?? '?'), admitted }, 'connection');
    new Association(socket, { id, config: this.deps.config, spool: this.deps.spool, log: this.deps.log, stats: this.stats, admitted, commitment: this.deps.commitment });
  }
}
