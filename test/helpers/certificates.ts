import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A CA, a server certificate for 127.0.0.1 (IP subjectAltName) and a client certificate
 * (CN = `client`), made with openssl: for the TLS tests of DICOM, MQTT and syslog.
 */
export function makeCertificates(dir: string, client: string): { ca: string; caKey: string; server: { cert: string; key: string }; client: { cert: string; key: string } } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pacs-edge test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, cn, ext] of [['server', '127.0.0.1', true], ['client', client, false]] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-out', f(`${name}.pem`), ...(ext ? ['-extfile', f('san.ext')] : []));
  }
  return { ca: f('ca.pem'), caKey: f('ca.key'), server: { cert: f('server.pem'), key: f('server.key') }, client: { cert: f('client.pem'), key: f('client.key') } };
}


/** openssl's GeneralizedTime (YYYYMMDDHHMMSSZ) for `openssl ca -startdate/-enddate`. */
const generalized = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

/**
 * A certificate signed by `ca` (from {@link makeCertificates}) whose validity ends `daysLeft`
 * days from now (negative: already expired; it began a day before that or yesterday). `openssl
 * ca -startdate/-enddate` sets any dates without faking the clock (`x509 -days` cannot go back).
 * The key is new; an IP subjectAltName of 127.0.0.1 makes it usable as the gateway's server certificate.
 */
export function issueCertificate(o: { dir: string; name: string; ca: string; caKey: string; cn: string; daysLeft: number }): { cert: string; key: string; notAfter: Date } {
  const f = (n: string) => path.join(o.dir, n);
  const ssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  const db = f(`${o.name}-ca-db`);
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'index.txt'), '');
  writeFileSync(path.join(db, 'serial'), `${randomBytes(8).toString('hex').toUpperCase()}\n`);
  writeFileSync(
    path.join(db, 'ca.cnf'),
    ['[ca]', 'default_ca = test', '[test]', `database = ${db}/index.txt`, `new_certs_dir = ${db}`, `serial = ${db}/serial`, 'default_md = sha256', 'policy = any', 'unique_subject = no', '[any]', 'commonName = supplied', ''].join('\n'),
  );
  writeFileSync(path.join(db, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const now = Date.now();
  const notAfter = Math.floor((now + o.daysLeft * 86_400_000) / 1000) * 1000;
  const notBefore = Math.min(now, notAfter) - 86_400_000;
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${o.cn}`, '-keyout', f(`${o.name}.key`), '-out', f(`${o.name}.csr`));
  ssl('ca', '-batch', '-notext', '-config', path.join(db, 'ca.cnf'), '-cert', o.ca, '-keyfile', o.caKey, '-in', f(`${o.name}.csr`), '-out', f(`${o.name}.pem`), '-startdate', generalized(notBefore), '-enddate', generalized(notAfter), '-extfile', path.join(db, 'san.ext'));
  return { cert: f(`${o.name}.pem`), key: f(`${o.name}.key`), notAfter: new Date(notAfter) };
}
