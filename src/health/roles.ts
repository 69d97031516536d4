import { execFile } from 'node:child_process';
import path from 'node:path';

/**
 * Role separation (MLPS 2.0 / GB/T 22239-2019 §8.1.4.2 三员分立: system administrator, security
 * operator, security auditor). A role is not claimed in a request: it is the control socket the
 * caller could open, and the kernel decides that from the socket file's owner, group and mode.
 *
 * - administrator: `control.socket`, mode 0600, owned by the state owner (root can always
 *   connect). Everything, in particular purging, reload, and the commands on a stopped
 *   gateway's files (restore, backup = key export), which file permissions keep to root.
 * - operator: `operator.socket`, 0660, group `security.roles.operatorsGroup`. Day-to-day
 *   running: status, studies, dead-letter list and retry, resend, destination pause/resume/echo,
 *   and the log level (diagnostics; the log carries no patient data, the level falls back at the
 *   next start or reload, and every change is audited).
 * - auditor: `auditor.socket`, 0660, group `security.roles.auditorsGroup`. Status and reading
 *   (verifying) the audit trail; nothing that changes the gateway.
 */
export type Role = 'administrator' | 'operator' | 'auditor';
export const ROLES: readonly Role[] = ['administrator', 'operator', 'auditor'];

const ALL: readonly Role[] = ROLES;
const RUNNING: readonly Role[] = ['administrator', 'operator'];
const AUDIT: readonly Role[] = ['administrator', 'auditor'];

/** Control routes ("METHOD /path") and who may call them; a route not listed is administrator-only. */
export const ROUTE_ROLES: Readonly<Record<string, readonly Role[]>> = {
  'GET /status': ALL,
  'GET /dead-letters': RUNNING,
  'POST /dead-letters/retry': RUNNING,
  'POST /dead-letters/purge': ['administrator'],
  'POST /studies/query': RUNNING,
  'POST /study': RUNNING,
  'POST /studies/resend': RUNNING,
  'POST /destinations/pause': RUNNING,
  'POST /destinations/resume': RUNNING,
  'POST /destinations/echo': RUNNING,
  'POST /log-level': RUNNING,
  'POST /reload': ['administrator'],
  'POST /audit/verify': AUDIT,
};

/** Routes whose handler writes its own audit record naming the caller; the others get one from the control server. */
export const SELF_AUDITED: ReadonlySet<string> = new Set(['POST /destinations/pause', 'POST /destinations/resume', 'POST /destinations/echo', 'POST /log-level', 'POST /reload', 'POST /audit/verify']);

/** Routes read so often (`status --watch`, the preflight) that they are logged, not audited. */
export const NOT_AUDITED: ReadonlySet<string> = new Set(['GET /status']);

export function mayCall(role: Role, route: string): boolean {
  return (ROUTE_ROLES[route] ?? ['administrator']).includes(role);
}

/**
 * MQTT commands and the roles that may send them. The role is the topic level
 * `<prefix>/<device>/cmd/<role>/<username>/<command>` the broker's ACL lets the account publish
 * to; administrator commands are never accepted over MQTT (no administrator topic exists).
 */
export const MQTT_COMMAND_ROLES: Readonly<Record<string, readonly Role[]>> = {
  ping: ['operator', 'auditor'],
  'echo-destination': ['operator'],
  'retry-dead-letter': ['operator'],
  'pause-forward': ['operator'],
  'resume-forward': ['operator'],
};
export const MQTT_ROLES: readonly Role[] = ['operator', 'auditor'];

/** The three sockets and the who-directory of the challenge, all in the directory of `control.socket`. */
export function roleSockets(controlSocket: string): Record<Role, string> & { whoDir: string } {
  const dir = path.dirname(controlSocket);
  return { administrator: controlSocket, operator: path.join(dir, 'operator.socket'), auditor: path.join(dir, 'auditor.socket'), whoDir: path.join(dir, 'who') };
}

/**
 * One entry of the system's account databases (`getent`, so NSS sources count too), or
 * undefined. Asynchronous: a slow name service must not hold the gateway's event loop.
 */
function getent(db: 'group' | 'passwd', key: string): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    execFile('getent', [db, key], { encoding: 'utf8', timeout: 3000 }, (err, stdout) => {
      const line = err ? undefined : stdout.split('\n')[0];
      resolve(line ? line.split(':') : undefined);
    });
  });
}

/** The gid of a group name, or undefined when the group does not exist. */
export async function groupId(name: string): Promise<number | undefined> {
  const f = await getent('group', name);
  const gid = f ? Number(f[2]) : NaN;
  return Number.isInteger(gid) ? gid : undefined;
}

/** The account name of a uid (from /etc/passwd via getent; never cached: accounts change), or `uid N` when it has none. */
export async function userName(uid: number): Promise<string> {
  return (await getent('passwd', String(uid)))?.[0] || `uid ${uid}`;
}
