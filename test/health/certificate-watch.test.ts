import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditEvents } from '../../src/audit/index.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { CertificateWatch, gatewayCertificates } from '../../src/health/certificate-watch.js';
import type { HealthEvent } from '../../src/health/mqtt-health.js';
import { memoryLogger } from '../audit/helpers.js';
import { issueCertificate, makeCertificates } from '../helpers/certificates.js';
import { tempDir } from '../helpers/processes.js';

/**
 * The thresholds of src/health/certificate-watch.ts over a certificate's last 40 days, with the
 * clock passed in: 30, 7 and 1 days each announced once, then expired (audited once).
 */
const tmp = tempDir('pacs-edge-certwatch-');
afterAll(() => tmp.cleanup());
const DAY = 86_400_000;

describe('CertificateWatch', () => {
  const dir = path.join(tmp.dir, 'certs');
  mkdirSync(dir);
  const ca = makeCertificates(dir, 'client');
  const c = issueCertificate({ dir, name: 'receive', ca: ca.ca, caKey: ca.caKey, cn: '127.0.0.1', daysLeft: 40 });
  const config = {
    receive: { tls: { port: 1, cert: c.cert, key: c.key, requireClientCert: false } },
    forward: [{ name: 'pacs', tls: { cert: ca.client.cert, key: ca.client.key } }, { name: 'plain' }],
    health: {},
    audit: {},
  } as unknown as GatewayConfig;

  it('lists the certificates the gateway presents, by role (destinations without a client certificate have none)', () => {
    expect(gatewayCertificates(config).map((x) => [x.role, x.name])).toEqual([
      ['receive', 'receive'],
      ['forward', 'pacs'],
    ]);
  });

  it('announces 30, 7 and 1 days left once each, then the expiry once, with an audit record; repeated checks add nothing', () => {
    let now = Date.now();
    const events: HealthEvent[] = [];
    const alerts: { type: string; detail: string }[] = [];
    const { log, lines } = memoryLogger();
    const audit = { securityAlert: (e: { type: string; detail: string }) => alerts.push(e) } as unknown as AuditEvents;
    const w = new CertificateWatch({ config: () => config, log, audit, now: () => now });
    w.onEvent((e) => events.push(e));
    const receiveEvents = () => events.filter((e) => e.role === 'receive');
    w.check();
    expect(receiveEvents()).toEqual([]);
    expect(w.status().find((s) => s.role === 'receive')!.daysLeft).toBeCloseTo(40, 1);
    for (const [left, threshold] of [[29.5, 30], [20, undefined], [6.9, 7], [0.5, 1]] as const) {
      now = c.notAfter.getTime() - left * DAY;
      w.check();
      w.check();
      const last = receiveEvents().at(-1);
      if (threshold !== undefined) expect(last).toMatchObject({ type: 'certificate-expiring', threshold, role: 'receive', name: 'receive' });
    }
    expect(receiveEvents().map((e) => e.threshold)).toEqual([30, 7, 1]);
    expect(lines.filter((l) => /^the receive certificate expires in/.test(String(l.msg)))).toHaveLength(3);
    now = c.notAfter.getTime() + DAY;
    w.check();
    w.check();
    expect(receiveEvents().at(-1)).toMatchObject({ type: 'certificate-expired', role: 'receive' });
    expect(receiveEvents()).toHaveLength(4);
    expect(w.status().find((s) => s.role === 'receive')).toMatchObject({ expired: true });
    expect(alerts.filter((a) => a.detail.includes('receive certificate'))).toHaveLength(1);
    expect(alerts[0]!.type).toBe('security-configuration');
  });

  it('a certificate first seen with 5 days left is announced once, at 7 (30 is not announced afterwards)', () => {
    const events: HealthEvent[] = [];
    const now = c.notAfter.getTime() - 5 * DAY;
    const w = new CertificateWatch({ config: () => config, log: memoryLogger().log, audit: { securityAlert: () => {} } as unknown as AuditEvents, now: () => now });
    w.onEvent((e) => events.push(e));
    w.check();
    w.check();
    expect(events.filter((e) => e.role === 'receive').map((e) => e.threshold)).toEqual([7]);
  });
});
