import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCursor, SyslogForwarder, frame, syslogMessage } from '../../src/audit/syslog.js';
import { freePort, tempDir, waitFor } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';
import { memoryLogger, openTrail, received } from './helpers.js';

/**
 * The syslog forwarder against a real rsyslog (Debian rsyslog + rsyslog-gnutls, `make deps`):
 * imtcp with the gtls stream driver, TLS only (StreamDriver.Mode 1), client certificates
 * checked against a CA made here with openssl (AuthMode x509/certvalid), on 127.0.0.1.
 */
const gtls = spawnSync('sh', ['-c', 'ls /usr/lib/*/rsyslog/lmnsd_gtls.so /usr/lib/rsyslog/lmnsd_gtls.so']).stdout.toString().includes('lmnsd_gtls');
const missing =
  missingTools({ rsyslogd: 'apt-get install rsyslog; make deps installs it', openssl: 'apt-get install openssl' }) ??
  (gtls ? undefined : "rsyslog's gtls stream driver lmnsd_gtls.so is missing (apt-get install rsyslog-gnutls; make deps installs it)");

const tmp = tempDir('pacs-edge-audit-syslog-');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  tmp.cleanup();
});

function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=pacs-edge test CA');
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'edge-test'}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2', '-extfile', `${who}.ext`);
  }
}

function rsyslogConf(dir: string, port: number, out: string): string {
  const conf = path.join(dir, 'rsyslog.conf');
  writeFileSync(
    conf,
    `global(workDirectory="${dir}" maxMessageSize="64k"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="${dir}/ca.pem"
  DefaultNetstreamDriverCertFile="${dir}/server.pem"
  DefaultNetstreamDriverKeyFile="${dir}/server.key")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" port="${port}" address="127.0.0.1")
template(name="audit" type="string" string="%msgid% %structured-data% %msg%\\n")
action(type="omfile" file="${out}" template="audit")
`,
  );
  return conf;
}

async function startRsyslog(dir: string, conf: string, port: number): Promise<ChildProcess> {
  const p = spawn('rsyslogd', ['-n', '-f', conf, '-i', path.join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        if (p.exitCode !== null) throw new Error(`rsyslogd exited: ${err}`);
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { timeoutMs: 15_000, what: 'rsyslogd listening' },
  );
  return p;
}

async function killHard(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

/** The seqs the server wrote, in the order it wrote them. */
function received_(out: string): number[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(/seq="(\d+)"/.exec(l)?.[1]));
}

describe('syslog message format', () => {
  it('RFC 5424 header, structured data with seq and hmac, BOM + XML, octet-counting frame', () => {
    const rec = { seq: 7, at: '2025-01-02T03:04:05.678Z', prev: '0'.repeat(64), hmac: 'ab'.repeat(32), xml: '<AuditMessage><EventIdentification EventActionCode="E" EventDateTime="x" EventOutcomeIndicator="4"/></AuditMessage>' };
    const msg = syslogMessage(rec, 'edge 01', 99);
    expect(msg.toString('utf8')).toBe(`<84>1 2025-01-02T03:04:05.678Z edge_01 pacs-edge 99 IHE+RFC-3881 [pacsEdgeAudit@32473 seq="7" hmac="${'ab'.repeat(32)}"] \ufeff${rec.xml}`);
    const f = frame(msg);
    expect(f.toString('utf8', 0, f.indexOf(32))).toBe(String(msg.length));
    expect(syslogMessage({ ...rec, xml: rec.xml.replace('="4"', '="0"') }, 'e').toString()).toMatch(/^<85>1 /);
  });
});

describe.skipIf(skipSuite('the rsyslog forwarding test', missing))('syslog forwarding to rsyslog over TLS (RFC 5425)', () => {
  it('an rsyslog outage in the middle of a stream loses nothing: every record arrives, in order, at least once', async () => {
    const dir = tmp.dir;
    makeCerts(dir);
    const port = await freePort();
    const out = path.join(dir, 'received.log');
    const conf = rsyslogConf(dir, port, out);
    let server = await startRsyslog(dir, conf, port);

    const { trail, dir: auditDir } = await openTrail(path.join(dir, 'gw'), { flushDelayMs: 20 });
    const { log, lines: logs } = memoryLogger();
    const opts = {
      host: '127.0.0.1',
      port,
      ca: path.join(dir, 'ca.pem'),
      cert: path.join(dir, 'client.pem'),
      key: path.join(dir, 'client.key'),
      dir: auditDir,
      hostname: 'edge-test',
      log,
      durableSeq: () => trail.durableSeq,
      confirmMs: 1000,
      retryBaseMs: 200,
      retryMaxMs: 1000,
    };
    let fwd = await SyslogForwarder.start(opts);
    trail.onDurable(() => fwd.notify());

    let n = 0;
    const produce = async (count: number, gapMs: number) => {
      for (let i = 0; i < count; i++) {
        trail.record(received(++n));
        await new Promise((r) => setTimeout(r, gapMs));
      }
    };
    await produce(40, 10);
    await waitFor(() => received_(out).includes(40), { timeoutMs: 15_000, what: 'the first 40 records at rsyslog' });
    // Outage while records keep coming: rsyslog killed outright mid-stream.
    const during = produce(120, 10);
    await new Promise((r) => setTimeout(r, 300));
    await killHard(server);
    await new Promise((r) => setTimeout(r, 1500));
    expect(fwd.connected).toBe(false);
    server = await startRsyslog(dir, conf, port);
    await during;
    await produce(40, 5);
    const total = n;
    await waitFor(() => new Set(received_(out)).size === total, { timeoutMs: 30_000, what: `all ${total} records at rsyslog` });
    await trail.stop();
    // A restart of the forwarder after everything was confirmed sends nothing again.
    await new Promise((r) => setTimeout(r, 1500));
    await fwd.stop();
    expect(await readCursor(auditDir)).toBe(total);
    fwd = await SyslogForwarder.start(opts);
    await new Promise((r) => setTimeout(r, 1500));
    await fwd.stop();

    const seqs = received_(out);
    const unique = new Set(seqs);
    expect([...unique].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // In order: every step is +1, except a rewind after a reconnect, which resends a contiguous block.
    let rewinds = 0;
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] !== seqs[i - 1]! + 1) {
        expect(seqs[i]!).toBeLessThanOrEqual(seqs[i - 1]!);
        rewinds++;
      }
    }
    const duplicates = seqs.length - unique.size;
    expect(rewinds).toBeLessThanOrEqual(1);
    expect(logs.some((l) => l.msg === 'audit syslog unavailable; records stay in the local log')).toBe(true);
    // The messages are the local records, byte for byte.
    const text = readFileSync(out, 'utf8');
    expect(text).toContain('IHE+RFC-3881 [pacsEdgeAudit@32473 seq="1" hmac="');
    expect(text).toContain('<AuditMessage><EventIdentification EventActionCode="C"');
    console.log(`syslog outage test: ${total} records, ${seqs.length} delivered, ${duplicates} duplicate(s), ${rewinds} rewind(s)`);
    await killHard(server);
  }, 90_000);
});
