import { chmod, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * Local control endpoint: HTTP on a Unix socket (`control.socket`, mode 0660), so that
 * `pacs-edge status` can ask the running gateway without opening a network port. Only
 * counts, UIDs-free summaries and states are served: never patient data.
 */
export class ControlServer {
  private readonly server: http.Server;

  private readonly socketPath: string;
  private readonly log: Logger;

  constructor(o: {
    /** control.socket */
    socketPath: string;
    /** "METHOD /path" → handler; each part of the gateway contributes its own. */
    routes: Record<string, (body: unknown) => unknown | Promise<unknown>>;
    log: Logger;
  }) {
    this.socketPath = o.socketPath;
    this.log = o.log;
    const routes = o.routes;
    this.server = http.createServer((req, res) => {
      // Routes are "METHOD /path"; GETs may also be registered by path alone.
      const path = (req.url ?? '/').split('?')[0]!;
      const route = routes[`${req.method} ${path}`] ?? (req.method === 'GET' ? routes[path] : undefined);
      if (!route) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        Promise.resolve()
          .then(() => route(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined))
          .then(
            (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
            (err: unknown) => {
              this.log.error({ err: (err as Error).message, url: req.url }, 'control request failed');
              res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
            },
          );
      });
    });
  }

  async listen(): Promise<void> {
    // A socket file left by a killed gateway would make listen() fail with EADDRINUSE; but one
    // that a live gateway answers on is not ours to take: that gateway would lose its commands.
    if (await answers(this.socketPath)) {
      throw new PacsEdgeError('CONTROL_SOCKET_IN_USE', `another gateway answers on the control socket ${this.socketPath}: stop it first, or give this one its own control.socket`, { retryable: false });
    }
    await unlink(this.socketPath).catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => reject(new PacsEdgeError('LISTEN_FAILED', `control socket ${this.socketPath} cannot listen: ${err.message}`, { cause: err, retryable: false })));
      this.server.listen({ path: this.socketPath, readableAll: false, writableAll: false }, () => resolve());
    });
    // Owner and group (operators in the service's group) may ask; nobody else.
    await chmod(this.socketPath, 0o660);
  }

  async close(): Promise<void> {
    const listening = this.server.listening;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Only the socket this server made: a refused listen() must not remove another gateway's.
    if (listening) await unlink(this.socketPath).catch(() => undefined);
  }
}

/** Whether something accepts connections on the Unix socket (within a second). */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ path: socketPath });
    const done = (v: boolean) => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(1000, () => done(false));
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

/** GET (or POST with a JSON body) on a control socket; undefined when nothing listens there. */
export function controlGet(socketPath: string, path: string, timeoutMs = 3000): Promise<unknown | undefined> {
  return controlRequest(socketPath, 'GET', path, undefined, timeoutMs);
}

export function controlRequest(socketPath: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs = 10_000): Promise<unknown | undefined> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath, path, method, timeout: timeoutMs, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if ((res.statusCode ?? 500) >= 400) reject(new Error((parsed as { error?: string }).error ?? `HTTP ${res.statusCode}`));
          else resolve(parsed);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('control socket timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(undefined);
      else reject(err);
    });
    req.end(payload);
  });
}
