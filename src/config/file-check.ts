import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from './types.js';

/**
 * What `check-config` checks beyond the configuration's own rules: every file it names exists,
 * can be read by the service user, parses (a certificate, a private key, a password), and every
 * certificate is within its validity, with the days left. A certificate that expired, or a key
 * the service cannot read, stops a gateway at 3 a.m.; here it is found at installation.
 */
export interface FileCheck {
  /** The configuration key, e.g. `receive.tls.cert`. */
  key: string;
  file: string;
  ok: boolean;
  /** What was found ("certificate CN=edge, expires 2027-05-01 (148 days left)") or what is wrong. */
  detail: string;
  /** A certificate's days left (negative: expired). */
  daysLeft?: number | undefined;
  /** Not an error, but worth saying (expires within 30 days; the device key not made yet). */
  warning?: boolean | undefined;
}

type Kind = 'certificate' | 'key' | 'password' | 'device-key';

/** The files a configuration names, with what each must hold. */
export function namedFiles(config: GatewayConfig): { key: string; file: string; kind: Kind }[] {
  const out: { key: string; file: string; kind: Kind }[] = [];
  const tls = (t: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined, where: string) => {
    if (!t) return;
    if (t.cert) out.push({ key: `${where}.cert`, file: t.cert, kind: 'certificate' });
    if (t.key) out.push({ key: `${where}.key`, file: t.key, kind: 'key' });
    if (t.ca) out.push({ key: `${where}.ca`, file: t.ca, kind: 'certificate' });
  };
  tls(config.receive.tls, 'receive.tls');
  config.forward.forEach((f, i) => tls(f.tls, `forward[${i}].tls`));
  tls(config.health.mqtt?.tls, 'health.mqtt.tls');
  if (config.health.mqtt?.passwordFile) out.push({ key: 'health.mqtt.passwordFile', file: config.health.mqtt.passwordFile, kind: 'password' });
  tls(config.audit.syslog, 'audit.syslog');
  tls(config.health.web?.tls, 'health.web.tls');
  if (config.health.web?.passwordFile) out.push({ key: 'health.web.passwordFile', file: config.health.web.passwordFile, kind: 'password' });
  // From a systemd credential, there is no key file to check (and none should lie there).
  if (!config.spool.encryption.keyCredential) out.push({ key: 'spool.encryption.keyFile', file: config.spool.encryption.keyFile, kind: 'device-key' });
  return out;
}

/** The service user's uid and groups, from the owner of the state (`spool.dir`, else its parent) and /etc/group. */
export function serviceUser(config: GatewayConfig): { uid: number; gids: number[]; name: string } | undefined {
  let st: { uid: number; gid: number } | undefined;
  for (const dir of [config.spool.dir, path.dirname(config.spool.dir)]) {
    try {
      st = statSync(dir);
      break;
    } catch {
      /* try the parent */
    }
  }
  if (!st) return undefined;
  const passwd = safeRead('/etc/passwd');
  const name = passwd.split('\n').find((l) => l.split(':')[2] === String(st!.uid))?.split(':')[0] ?? `uid ${st.uid}`;
  const groups = safeRead('/etc/group')
    .split('\n')
    .filter((l) => (l.split(':')[3] ?? '').split(',').includes(name))
    .map((l) => Number(l.split(':')[2]));
  return { uid: st.uid, gids: [st.gid, ...groups], name };
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

/** Whether a user may read the file, from its owner, group and mode (root reads everything). */
function readableBy(file: string, user: { uid: number; gids: number[] }): boolean {
  const st = statSync(file);
  if (user.uid === 0) return true;
  if (st.uid === user.uid) return (st.mode & 0o400) !== 0;
  if (user.gids.includes(st.gid)) return (st.mode & 0o040) !== 0;
  return (st.mode & 0o004) !== 0;
}

const DAY = 86_400_000;

/** Check every file the configuration names. `now` for tests. */
export function checkNamedFiles(config: GatewayConfig, now = Date.now()): FileCheck[] {
  const user = serviceUser(config);
  return namedFiles(config).map(({ key, file, kind }) => {
    const result = (ok: boolean, detail: string, extra: Partial<FileCheck> = {}): FileCheck => ({ key, file, ok, detail, ...extra });
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (kind === 'device-key' && code === 'ENOENT') return result(true, 'not made yet: the gateway makes it at its first start (back it up then: pacs-edge backup)', { warning: true });
      return result(false, code === 'ENOENT' ? 'missing' : `cannot be read: ${(err as Error).message}`);
    }
    if (user && !readableBy(file, user)) return result(false, `the service user (${user.name}) cannot read it (owner uid ${statSync(file).uid}, mode ${(statSync(file).mode & 0o777).toString(8)})`);
    try {
      if (kind === 'certificate') {
        const certs = splitPem(data.toString('utf8'));
        if (certs.length === 0) return result(false, 'holds no PEM certificate');
        let soonest: { cert: X509Certificate; days: number } | undefined;
        for (const pem of certs) {
          const cert = new X509Certificate(pem);
          const days = Math.floor((Date.parse(cert.validTo) - now) / DAY);
          if (Date.parse(cert.validFrom) > now) return result(false, `certificate ${subject(cert)} is not valid before ${iso(cert.validFrom)}`);
          if (!soonest || days < soonest.days) soonest = { cert, days };
        }
        const { cert, days } = soonest!;
        const what = `${certs.length > 1 ? `${certs.length} certificates, the first to expire ` : 'certificate '}${subject(cert)}`;
        if (days < 0) return result(false, `${what} EXPIRED on ${iso(cert.validTo)} (${-days} days ago)`, { daysLeft: days });
        return result(true, `${what}, expires ${iso(cert.validTo)} (${days} days left)`, { daysLeft: days, warning: days < 30 });
      }
      if (kind === 'key') {
        const k = createPrivateKey(data);
        return result(true, `private key (${k.asymmetricKeyType ?? 'unknown type'})`);
      }
      if (kind === 'password') {
        return data.toString('utf8').trim().length > 0 ? result(true, 'password file (not empty)') : result(false, 'password file is empty');
      }
      return data.length === 32 ? result(true, 'device key (32 bytes)') : result(false, `device key holds ${data.length} bytes, not 32`);
    } catch (err) {
      return result(false, `does not parse as a ${kind}: ${(err as Error).message}`);
    }
  });
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function subject(c: X509Certificate): string {
  const cn = /CN=([^\n,]+)/.exec(c.subject)?.[1];
  return cn ? `CN=${cn}` : c.subject.split('\n')[0] ?? '(no subject)';
}

function iso(d: string): string {
  return new Date(d).toISOString().slice(0, 10);
}
