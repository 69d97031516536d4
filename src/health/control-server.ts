import { chmod, unlink } from 'node:fs/promises';
import http from 'node:http';
import type { Logger } from '../log.js';

/**
 * Local control endpoint: HTTP on a Unix socket (`control.socket`, mode 0660), so that
 * `pacs-edge status` can ask the running gateway without opening a network port. Only
 * counts, UIDs-free summaries and states are served: never patient data.
 */
export class ControlServer {
  private readonly server: http.Server;

  constructor(
    private readonly socketPath: string,
    routes: Record<string, () => unknown | Promise<unknown>>,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => {
      const route = routes[(req.url ?? '/').split('?')[0]!];
      if (req.method !== 'GET' || !route) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        return;
      }
      Promise.resolve()
        .then(route)
        .then(
          (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
          (err: unknown) => {
            this.log.error({ err: (err as Error).message, url: req.url }, 'control request failed');
            res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal"}');
          },
        );
    });
  }

  async listen(): Promise<void> {
    // A socket file left by a killed gateway would make listen() fail with EADDRINUSE.
    await unlink(this.socketPath).catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ path: this.socketPath, readableAll: false, writableAll: false }, () => resolve());
    });
    // Owner and group (operators in the service's group) may ask; nobody else.
    await chmod(this.socketPath, 0o660);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await unlink(this.socketPath).catch(() => undefined);
  }
}

/** GET a path from a control socket; undefined when nothing listens there. */
export function controlGet(socketPath: string, path: string, timeoutMs = 3000): Promise<unknown | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
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
  });
}
