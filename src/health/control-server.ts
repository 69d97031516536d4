import { chmod, chown, stat, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import { Code, PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { Challenges, createWhoFile, PROOF_HEADER } from './peer-proof.js';
import { groupId, mayCall, NOT_AUDITED, type Role, ROLES, ROUTE_ROLES, roleSockets, SELF_AUDITED, userName } from './roles.js';

/** Who made a control request: proven uid, its account name, and the role of the socket it came in on. */
export interface ControlCaller {
  uid: number;
  name: string;
  role: Role;
  /** For log lines and audit records: `name (uid N, role)`. */
  label: string;
}

export type ControlRoute = (body: unknown, caller: ControlCaller) => unknown | Promise<unknown>;

const MAX_BODY = 1024 * 1024;

/**
 * Local control endpoint: HTTP on three Unix sockets, one per role (src/health/roles.ts), so that
 * `pacs-edge status` can ask the running gateway without opening a network port. The kernel
 * decides who may open which socket (owner, group, mode); each socket serves only its role's
 * routes, and every request proves its sender's uid first (src/health/peer-proof.ts). A request
 * outside its role is answered 403 and audited (110113 Security Alert, 110132 Use of Restricted
 * Function, failure); the `by` field a client sends is ignored (logged as what it claimed).
 * Only counts, UIDs-free summaries and states are served: never patient data.
 */
export class ControlServer {
  private readonly servers = new Map<Role, http.Server>();
  private readonly paths: ReturnType<typeof roleSockets>;
  private readonly challenges: Challenges;
  private readonly log: Logger;
  private listening = false;

  constructor(
    private readonly o: {
      /** control.socket (administrator); the other two are made next to it. */
      socketPath: string;
      /** "METHOD /path" → handler; each part of the gateway contributes its own. */
      routes: Record<string, ControlRoute>;
      log: Logger;
      /** security.roles: the groups that may open the operator and auditor sockets. */
      groups?: { operatorsGroup: string; auditorsGroup: string } | undefined;
      /** Where allowed and refused requests are audited (110113 / 110132). */
      audit?: ((e: { detail: string; failure: boolean; by: string }) => void) | undefined;
    },
  ) {
    this.log = o.log;
    this.paths = roleSockets(o.socketPath);
    this.challenges = new Challenges(this.paths.whoDir);
    for (const role of ROLES) this.servers.set(role, http.createServer((req, res) => void this.handle(role, req, res)));
  }

  private async handle(role: Role, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (code: number, body: unknown): void => void res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    // Routes are "METHOD /path"; GETs may also be registered by path alone.
    const path = (req.url ?? '/').split('?')[0]!;
    const key = `${req.method} ${path}`;
    if (key === 'POST /who') return send(200, { nonce: this.challenges.issue(role), role });
    const route = this.o.routes[key] ?? (req.method === 'GET' ? this.o.routes[path] : undefined);
    if (!route) return send(404, { error: 'not found' });
    let body: unknown;
    try {
      body = await readBody(req);
    } catch (err) {
      return send(400, { error: (err as Error).message, code: Code.CONTROL_BAD_REQUEST });
    }
    let caller: ControlCaller;
    try {
      const uid = await this.challenges.verify(req.headers[PROOF_HEADER] as string | undefined, role);
      const name = await userName(uid);
      caller = { uid, name, role, label: `${name} (uid ${uid}, ${role})` };
    } catch (err) {
      this.log.warn({ route: key, role, err: (err as Error).message }, 'control request refused: sender not proven');
      this.o.audit?.({ detail: `control ${key} on the ${role} socket refused: ${(err as Error).message}`, failure: true, by: `unproven caller (${role} socket)` });
      return send(401, { error: (err as Error).message, code: Code.CONTROL_PROOF_FAILED });
    }
    const claimed = (body as { by?: unknown } | undefined)?.by;
    if (claimed !== undefined && claimed !== caller.name) this.log.info({ route: key, caller: caller.label, claimed: String(claimed).slice(0, 128) }, 'control request: the "by" it claimed is ignored');
    if (!mayCall(role, key)) {
      const allowed = (ROUTE_ROLES[key] ?? ['administrator']).join(' or ');
      const error = `${caller.name} (${role}) may not ${key}: it is for the ${allowed} role`;
      this.log.warn({ route: key, caller: caller.label }, 'control request refused: outside the caller’s role');
      this.o.audit?.({ detail: `control ${key} refused to ${caller.label}: outside the role`, failure: true, by: caller.label });
      return send(403, { error, code: Code.ROLE_DENIED, role });
    }
    // The identity the handlers record is the proven one, whatever the body said.
    if (body && typeof body === 'object' && !Array.isArray(body)) body = { ...body, by: caller.label };
    try {
      const answer = await route(body, caller);
      if (!NOT_AUDITED.has(key) && !SELF_AUDITED.has(key)) this.o.audit?.({ detail: `control ${key} by ${caller.label}`, failure: false, by: caller.label });
      send(200, answer);
    } catch (err) {
      this.log.error({ err: (err as Error).message, url: req.url, caller: caller.label }, 'control request failed');
      if (!NOT_AUDITED.has(key) && !SELF_AUDITED.has(key)) this.o.audit?.({ detail: `control ${key} by ${caller.label} failed: ${(err as Error).message}`, failure: true, by: caller.label });
      send(500, { error: (err as Error).message, code: (err as { code?: unknown }).code });
    }
  }

  async listen(): Promise<void> {
    // A socket file left by a killed gateway would make listen() fail with EADDRINUSE; but one
    // that a live gateway answers on is not ours to take: that gateway would lose its commands.
    if (await answers(this.o.socketPath)) {
      throw new PacsEdgeError('CONTROL_SOCKET_IN_USE', `another gateway answers on the control socket ${this.o.socketPath}: stop it first, or give this one its own control.socket`, { retryable: false });
    }
    await this.challenges.prepare();
    const groups = this.o.groups;
    const gids = { operator: groups ? await groupId(groups.operatorsGroup) : undefined, auditor: groups ? await groupId(groups.auditorsGroup) : undefined };
    for (const role of ROLES) {
      const socketPath = this.paths[role];
      await unlink(socketPath).catch(() => undefined);
      const server = this.servers.get(role)!;
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new PacsEdgeError('LISTEN_FAILED', `control socket ${socketPath} cannot listen: ${err.message}`, { cause: err, retryable: false })));
        server.listen({ path: socketPath, readableAll: false, writableAll: false }, () => resolve());
      });
      this.listening = true;
      // Owner only, unless the role's group exists and the socket could be given to it.
      await chmod(socketPath, 0o600);
      if (role === 'administrator') continue;
      const group = role === 'operator' ? groups?.operatorsGroup : groups?.auditorsGroup;
      const gid = gids[role];
      if (gid === undefined) {
        this.log.warn({ socket: socketPath, group }, `the ${role} socket stays owner-only: group "${group}" does not exist (see docs/operations.md, roles)`);
        continue;
      }
      try {
        await chown(socketPath, process.geteuid?.() ?? 0, gid);
        await chmod(socketPath, 0o660);
      } catch (err) {
        this.log.warn({ socket: socketPath, group, err: (err as Error).message }, `the ${role} socket stays owner-only: it cannot be given to group "${group}" (the service user must be a member: SupplementaryGroups=)`);
      }
    }
    // Operators and auditors must be able to reach the sockets through their directory.
    const dir = await stat(dirname(this.o.socketPath));
    if ((gids.operator !== undefined || gids.auditor !== undefined) && (dir.mode & 0o001) === 0) {
      this.log.warn({ dir: dirname(this.o.socketPath), mode: (dir.mode & 0o7777).toString(8) }, 'operators and auditors cannot reach the control sockets: their directory is not searchable by others (put control.socket in /run/pacs-edge, mode 0711)');
    }
  }

  async close(): Promise<void> {
    for (const s of this.servers.values()) await new Promise<void>((resolve) => s.close(() => resolve()));
    // Only the sockets this server made: a refused listen() must not remove another gateway's.
    if (this.listening) for (const role of ROLES) await unlink(this.paths[role]).catch(() => undefined);
  }
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new PacsEdgeError('CONTROL_BAD_REQUEST', 'request body too large'));
      else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined);
      } catch {
        reject(new PacsEdgeError('CONTROL_BAD_REQUEST', 'the request body is not JSON'));
      }
    });
  });
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

/** Whether a gateway answers on any of the control sockets of `control.socket` (for "is it running?"). */
export async function controlAnswers(socketPath: string): Promise<boolean> {
  const p = roleSockets(socketPath);
  for (const role of ROLES) if (await answers(p[role])) return true;
  return false;
}

/** GET on a control socket; undefined when nothing listens there. */
export function controlGet(socketPath: string, path: string, timeoutMs = 3000): Promise<unknown | undefined> {
  return controlRequest(socketPath, 'GET', path, undefined, timeoutMs);
}

/**
 * A request to the running gateway of `control.socket` (`socketPath`), as whoever runs this
 * process: through the first socket of administrator, operator, auditor that it can open, with
 * its uid proven (src/health/peer-proof.ts). Undefined when no gateway listens; a refusal
 * rejects with ROLE_DENIED or CONTROL_PROOF_FAILED.
 */
export async function controlRequest(socketPath: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs = 10_000): Promise<unknown | undefined> {
  const chosen = await openableSocket(socketPath);
  if (!chosen) return undefined;
  const who = (await rawRequest(chosen, 'POST', '/who', undefined, timeoutMs, {})) as { nonce?: string } | undefined;
  if (who === undefined) return undefined;
  let remove: () => void;
  try {
    remove = createWhoFile(roleSockets(socketPath).whoDir, String(who.nonce));
  } catch (err) {
    throw err instanceof PacsEdgeError ? err : new PacsEdgeError('CONTROL_PROOF_FAILED', `cannot prove who you are to the gateway: ${(err as Error).message}`, { cause: err });
  }
  try {
    return await rawRequest(chosen, method, path, body, timeoutMs, { [PROOF_HEADER]: String(who.nonce) });
  } finally {
    remove();
  }
}

/** The first of the role sockets this process may connect to; undefined when none listens. */
async function openableSocket(socketPath: string): Promise<string | undefined> {
  const p = roleSockets(socketPath);
  let refused = false;
  for (const role of ROLES) {
    const r = await new Promise<'ok' | 'denied' | 'absent'>((resolve) => {
      const c = net.connect({ path: p[role] });
      c.setTimeout(3000, () => (c.destroy(), resolve('absent')));
      c.once('connect', () => (c.destroy(), resolve('ok')));
      c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EACCES' || err.code === 'EPERM' ? 'denied' : 'absent'));
    });
    if (r === 'ok') return p[role];
    if (r === 'denied') refused = true;
  }
  if (!refused) return undefined;
  const uid = process.geteuid?.() ?? -1;
  throw new PacsEdgeError('ROLE_DENIED', `uid ${uid} may open none of the gateway's control sockets (${ROLES.map((r) => p[r]).join(', ')}): you have no role; an administrator adds you to the operators or auditors group (security.roles, docs/operations.md)`);
}

function rawRequest(socketPath: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number, headers: Record<string, string>): Promise<unknown | undefined> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath, path, method, timeout: timeoutMs, agent: false, headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          const e = parsed as { error?: string; code?: string };
          if ((res.statusCode ?? 500) < 400) resolve(parsed);
          else if (e.code === Code.ROLE_DENIED || e.code === Code.CONTROL_PROOF_FAILED) reject(new PacsEdgeError(e.code, e.error ?? `HTTP ${res.statusCode}`));
          else reject(new Error(e.error ?? `HTTP ${res.statusCode}`));
        } catch (err) {
          reject(err);
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
