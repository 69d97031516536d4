import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuditEvents } from '../audit/index.js';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { HealthEvent } from './mqtt-health.js';

/** Days left at which a certificate is announced (log warning + MQTT event), once each per certificate and run. */
export const EXPIRY_THRESHOLDS = [30, 7, 1] as const;
const DAY_MS = 86_400_000;
/** How often the files are looked at again (besides at start and at every reload). */
const CHECK_MS = 3_600_000;

/** One certificate the gateway presents: its role (`receive`, `forward`, `mqtt`, `syslog`, `web`), the destination for `forward`. */
export interface CertificateState {
  role: 'receive' | 'forward' | 'mqtt' | 'syslog' | 'web';
  /** The destination's name (forward), else the role. */
  name: string;
  file: string;
  /** `validTo` (ISO), null when the file cannot be read. */
  notAfter: string | null;
  /** Days until `notAfter`, two decimals (negative: expired); null when the file cannot be read. */
  daysLeft: number | null;
  expired: boolean;
  error?: string | undefined;
}

/** The certificates of a configuration (the gateway's own: what it presents to its peers). */
export function gatewayCertificates(config: GatewayConfig): Pick<CertificateState, 'role' | 'name' | 'file'>[] {
  const out: Pick<CertificateState, 'role' | 'name' | 'file'>[] = [];
  if (config.receive.tls) out.push({ role: 'receive', name: 'receive', file: config.receive.tls.cert });
  for (const f of config.forward) if (f.tls?.cert) out.push({ role: 'forward', name: f.name, file: f.tls.cert });
  if (config.health.mqtt?.tls?.cert) out.push({ role: 'mqtt', name: 'mqtt', file: config.health.mqtt.tls.cert });
  if (config.audit.syslog?.cert) out.push({ role: 'syslog', name: 'syslog', file: config.audit.syslog.cert });
  if (config.health.web?.tls) out.push({ role: 'web', name: 'web', file: config.health.web.tls.cert });
  return out;
}

/**
 * Watches the expiry of every certificate the gateway presents (GB/T 22239-2019 §8.1.4.2, PS3.15
 * B.9: a node whose certificate expired is refused by its peers, and that must not come as a
 * surprise). Days left are read from `X509Certificate.validTo` of the first certificate in each
 * file, at start, every hour and after every reload (SIGHUP, `pacs-edge reload`), and shown in
 * `status`, the health report and /metrics. At 30, 7 and 1 days left a warning is logged and an
 * MQTT `certificate-expiring` event raised, each threshold once per certificate (by fingerprint)
 * and run; an expired certificate is logged as an error, raised as `certificate-expired` and
 * audited (Security Alert 110129 Security Configuration). The gateway keeps running with an
 * expired certificate: refusing to start would turn a renewal reminder into an outage.
 */
export class CertificateWatch {
  private states: CertificateState[] = [];
  private readonly announced = new Set<string>();
  private readonly sinks: ((e: HealthEvent) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      config: () => GatewayConfig;
      log: Logger;
      audit: AuditEvents;
      now?: (() => number) | undefined;
    },
  ) {}

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** MQTT events (`certificate-expiring`, `certificate-expired`): subscribe before `start`. */
  onEvent(fn: (e: HealthEvent) => void): void {
    this.sinks.push(fn);
  }

  /** The `certificates` section of the status document. */
  status(): CertificateState[] {
    return this.states;
  }

  /** Read every certificate file again (start, hourly, reload). */
  check(): void {
    const now = this.o.now?.() ?? Date.now();
    this.states = gatewayCertificates(this.o.config()).map((c) => this.read(c, now));
    for (const s of this.states) this.announce(s);
  }

  private read(c: Pick<CertificateState, 'role' | 'name' | 'file'>, now: number): CertificateState & { fingerprint?: string } {
    try {
      const cert = new X509Certificate(readFileSync(c.file));
      const validTo = Date.parse(cert.validTo);
      const daysLeft = Math.floor(((validTo - now) / DAY_MS) * 100) / 100;
      return { ...c, notAfter: new Date(validTo).toISOString(), daysLeft, expired: validTo <= now, fingerprint: cert.fingerprint256 };
    } catch (err) {
      return { ...c, notAfter: null, daysLeft: null, expired: false, error: (err as Error).message };
    }
  }

  private eventFor(s: CertificateState): HealthEvent | undefined {
    if (s.daysLeft === null) return undefined;
    const base = { role: s.role, name: s.name, notAfter: s.notAfter, daysLeft: s.daysLeft };
    if (s.expired) return { type: 'certificate-expired', ...base };
    const threshold = [...EXPIRY_THRESHOLDS].reverse().find((t) => s.daysLeft! <= t);
    return threshold === undefined ? undefined : { type: 'certificate-expiring', ...base, threshold };
  }

  private announce(s: CertificateState & { fingerprint?: string }): void {
    const e = this.eventFor(s);
    if (!e || !s.fingerprint) return;
    // Once per certificate (its fingerprint: a renewed file is a new certificate) and threshold.
    const key = `${s.role}|${s.name}|${s.fingerprint}|${e.type === 'certificate-expired' ? 'expired' : String(e.threshold)}`;
    if (this.announced.has(key)) return;
    this.announced.add(key);
    // A certificate first seen at 5 days left has passed 30 too: that one is not announced later.
    for (const t of EXPIRY_THRESHOLDS) if (s.daysLeft! <= t) this.announced.add(`${s.role}|${s.name}|${s.fingerprint}|${t}`);
    const fields = { role: s.role, name: s.name, file: s.file, notAfter: s.notAfter, daysLeft: s.daysLeft };
    if (e.type === 'certificate-expired') {
      this.o.log.error(fields, `SECURITY ALERT: the ${s.role} certificate${s.role === 'forward' ? ` of ${s.name}` : ''} EXPIRED on ${s.notAfter}: peers will refuse it; the gateway keeps running — renew it and run pacs-edge reload`);
      this.o.audit.securityAlert({ type: 'security-configuration', detail: `the ${s.role} certificate${s.role === 'forward' ? ` of destination ${s.name}` : ''} (${s.file}) expired on ${s.notAfter}` });
    } else {
      this.o.log.warn({ ...fields, threshold: e.threshold }, `the ${s.role} certificate${s.role === 'forward' ? ` of ${s.name}` : ''} expires in ${Math.max(0, Math.floor(s.daysLeft!))} days (${s.notAfter}): renew it and run pacs-edge reload`);
    }
    for (const fn of this.sinks) fn(e);
  }
}
