import { tlsClientOptions } from '../security/tls.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeDurable } from '../util/durable-write.js';
import { readRecords, type AuditRecord, type ReadPosition } from './chain.js';

export const CURSOR_FILE = 'syslog.cursor';

export interface SyslogOptions {
  /** `audit.syslog`: server, RFC 5425 port (6514 by default), CA file, optional client certificate and key files. */
  host: string;
  port: number;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  /** The audit directory: the log is the spool; the cursor file lives there too. */
  dir: string;
  /** HOSTNAME of the messages (device.id). */
  hostname: string;
  log: Logger;
  /** Last durable seq of the trail: nothing beyond it is sent (it could still vanish in a crash). */
  durableSeq: () => number;
  /**
   * A record counts as delivered once it has been written to a connection that then stayed up
   * for this long (default 2 s). RFC 5425 has no acknowledgement; see docs/audit.md.
   */
  confirmMs?: number | undefined;
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  connectTimeoutMs?: number | undefined;
  /** Records read from the log per batch (default 256). */
  batch?: number | undefined;
}

/** RFC 5424 facility 10: security/authorization messages. Severity 5 notice, 4 warning (failure outcome). */
const FACILITY = 10;

/** One RFC 5424 message for a record: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG. */
export function syslogMessage(r: AuditRecord, hostname: string, pid = process.pid): Buffer {
  const failure = /EventOutcomeIndicator="(?:4|8|12)"/.test(r.xml.slice(0, 400));
  const pri = FACILITY * 8 + (failure ? 4 : 5);
  const host = hostname.replace(/[^\x21-\x7e]/g, '_').slice(0, 255) || '-';
  const header = `<${pri}>1 ${r.at} ${host} pacs-edge ${pid} IHE+RFC-3881 [pacsEdgeAudit@32473 seq="${r.seq}" hmac="${r.hmac}"] `;
  return Buffer.concat([Buffer.from(header, 'utf8'), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(r.xml, 'utf8')]);
}

/** RFC 5425 octet-counting framing: MSG-LEN SP SYSLOG-MSG. */
export function frame(msg: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${msg.length} `, 'ascii'), msg]);
}

/**
 * Forwards every audit record to a syslog server over TLS (RFC 5425), in seq order. The local
 * log is the spool: `syslog.cursor` (fsynced, replaced atomically) holds the last seq counted as
 * delivered; at start and after every reconnect, sending resumes after it. A record counts as
 * delivered when the connection it was written on stayed up `confirmMs` after the write, so a
 * server that dies or a link that drops makes the last `confirmMs` of records go again: delivery
 * is at least once (the server may see a few records twice; each carries its seq in the
 * structured data to tell duplicates apart). Failures back off exponentially up to `retryMaxMs`.
 */
export class SyslogForwarder {
  private cursor = 0;
  private savedCursor = 0;
  private sentSeq = 0;
  private pos: ReadPosition | undefined;
  private socket: tls.TLSSocket | undefined;
  private inflight: { seq: number; at: number }[] = [];
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> = Promise.resolve();
  private confirmTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  readonly stats = { sent: 0, resent: 0, connects: 0, failures: 0 };

  private constructor(private readonly o: SyslogOptions) {}

  static async start(o: SyslogOptions): Promise<SyslogForwarder> {
    const f = new SyslogForwarder(o);
    f.cursor = f.savedCursor = f.sentSeq = await readCursor(o.dir);
    f.loop = f.run();
    f.confirmTimer = setInterval(() => void f.confirm(), Math.min(500, f.confirmMs / 2));
    f.confirmTimer.unref();
    return f;
  }

  /** Last seq counted as delivered (and saved). */
  get deliveredSeq(): number {
    return this.cursor;
  }

  get connected(): boolean {
    return !!this.socket && !this.socket.destroyed;
  }

  private get confirmMs(): number {
    return this.o.confirmMs ?? 2000;
  }

  /** New durable records: send them. */
  notify(): void {
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let socket: tls.TLSSocket;
      try {
        socket = await this.connect();
      } catch (err) {
        await this.failed(err as Error, 'connect');
        continue;
      }
      this.socket = socket;
      this.stats.connects++;
      this.o.log.info({ host: this.o.host, port: this.o.port, resumeAfter: this.cursor, protocol: socket.getProtocol() }, 'audit syslog connected');
      let broken: Error | undefined;
      const onGone = (err?: Error) => {
        broken ??= err ?? new PacsEdgeError('CONNECTION_LOST', 'connection closed by the server');
        this.wake?.();
      };
      socket.on('error', onGone);
      socket.on('close', () => onGone());
      socket.on('end', () => onGone());
      socket.on('data', () => {}); // RFC 5425 servers send nothing; keep the stream flowing.
      try {
        while (!this.stopped && !broken) {
          const { records, pos } = await readRecords(this.o.dir, this.sentSeq, this.o.batch ?? 256, this.pos, this.o.durableSeq());
          this.pos = pos;
          if (records.length === 0) {
            await this.sleep(1000);
            continue;
          }
          for (const r of records) {
            if (broken || this.stopped) break;
            const ok = socket.write(frame(syslogMessage(r, this.o.hostname)));
            this.inflight.push({ seq: r.seq, at: Date.now() });
            this.sentSeq = r.seq;
            this.stats.sent++;
            if (!ok) await new Promise<void>((resolve) => {
              const go = () => {
                socket.off('drain', go);
                socket.off('close', go);
                resolve();
              };
              socket.once('drain', go);
              socket.once('close', go);
            });
          }
          this.failures = 0;
        }
      } catch (err) {
        broken ??= err as Error;
      }
      socket.destroy();
      this.socket = undefined;
      if (this.stopped) break;
      await this.failed(broken ?? new Error('stopped'), 'send');
    }
  }

  /** After a failure: forget what was not confirmed (it is sent again), back off. */
  private async failed(err: Error, stage: string): Promise<void> {
    this.stats.failures++;
    this.failures++;
    const unconfirmed = this.sentSeq - this.cursor;
    this.stats.resent += unconfirmed;
    this.inflight = [];
    this.sentSeq = this.cursor;
    this.pos = undefined;
    const base = this.o.retryBaseMs ?? 1000;
    const delay = Math.min(this.o.retryMaxMs ?? 60_000, base * 2 ** Math.min(this.failures - 1, 16)) * (0.5 + Math.random() / 2);
    this.o.log.warn({ host: this.o.host, port: this.o.port, stage, err: err.message, resendFrom: this.cursor + 1, unconfirmed, retryInMs: Math.round(delay) }, 'audit syslog unavailable; records stay in the local log');
    if (!this.stopped) await this.sleep(delay);
  }

  private connect(): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const o = this.o;
      // The same BCP 195 profile as DICOM TLS, the server's certificate always verified.
      const socket = tls.connect({ ...tlsClientOptions({ ca: o.ca, cert: o.cert, key: o.key, host: o.host }), host: o.host, port: o.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new PacsEdgeError('CONNECT_TIMEOUT', `no TLS connection within ${o.connectTimeoutMs ?? 10_000} ms`));
      }, o.connectTimeoutMs ?? 10_000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        resolve(socket);
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
    });
  }

  /** Count as delivered what was written at least confirmMs ago on a connection that is still up; save the cursor. */
  private async confirm(): Promise<void> {
    if (this.connected) {
      const limit = Date.now() - this.confirmMs;
      let n = 0;
      while (n < this.inflight.length && this.inflight[n]!.at <= limit) n++;
      if (n > 0) {
        this.cursor = this.inflight[n - 1]!.seq;
        this.inflight.splice(0, n);
      }
    }
    await this.saveCursor();
  }

  private saving = false;
  private async saveCursor(): Promise<void> {
    if (this.saving || this.cursor === this.savedCursor) return;
    this.saving = true;
    const seq = this.cursor;
    try {
      await writeCursor(this.o.dir, seq);
      this.savedCursor = seq;
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'audit syslog cursor could not be saved');
    } finally {
      this.saving = false;
    }
  }

  /**
   * Stop: give the connection `confirmMs` to prove what is in flight (up to `graceMs`), save the
   * cursor, close. What is not confirmed is sent again at the next start.
   */
  async stop(graceMs = 3000): Promise<void> {
    const deadline = Date.now() + Math.min(graceMs, this.confirmMs + 500);
    while (this.connected && this.inflight.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      await this.confirm();
    }
    this.stopped = true;
    this.wake?.();
    if (this.confirmTimer) clearInterval(this.confirmTimer);
    this.socket?.end();
    this.socket?.destroy();
    await this.loop;
    await this.confirm();
    while (this.saving) await new Promise((r) => setTimeout(r, 10));
    await this.saveCursor();
  }
}

export async function readCursor(dir: string): Promise<number> {
  try {
    const o = JSON.parse(await readFile(path.join(dir, CURSOR_FILE), 'utf8')) as { seq?: unknown };
    return Number.isSafeInteger(o.seq) && (o.seq as number) >= 0 ? (o.seq as number) : 0;
  } catch {
    return 0;
  }
}

async function writeCursor(dir: string, seq: number): Promise<void> {
  await writeDurable(path.join(dir, CURSOR_FILE), `${JSON.stringify({ seq })}\n`, { mode: 0o640 });
}
