import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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

