import { badRequest } from './bad-request.js';
import { TLS_MIN_VERSION, TLS12_CIPHERS } from '../security/tls.js';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { MqttConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { Code, PacsEdgeError } from '../errors.js';
import { MQTT_COMMAND_ROLES, MQTT_ROLES, type Role } from './roles.js';

const refused = (m: string) => new PacsEdgeError('ROLE_DENIED', m);

/**
 * Device health over MQTT for field engineers: `<prefix>/<device>/status` (retained; the last
 * will says offline), `health` (retained, every interval and on important change) and `events`
 * (QoS 1, not retained). See docs/mqtt.md for every field and docs/schemas/ for the schemas.
 *
 * The broker is never in the way of the DICOM work: publishing never awaits the broker, the
 * client reconnects on its own with a growing delay, and while offline only the latest health
 * is kept (QoS 0, not queued) and at most {@link MAX_QUEUED_EVENTS} events wait for the link.
 * No payload ever carries patient data: only counts, states, UIDs-free figures, AE titles and
 * addresses.
 */
const MAX_QUEUED_EVENTS = 100;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 60_000;

export interface HealthEvent {
  type: 'destination-down' | 'destination-up' | 'disk-low' | 'disk-ok' | 'dead-letter' | 'association-rejected' | 'recovery' | 'object-corrupt' | 'address-blocked' | 'spool-unreadable' | 'study-received' | 'study-delivered' | 'study-incomplete' | 'audit-failure' | 'audit-recovered' | 'certificate-expiring' | 'certificate-expired' | 'watchdog-restart';
  [key: string]: unknown;
}

export class MqttHealth {
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly queued: string[] = [];
  private protocolVersion: 4 | 5;
  private reconnectMs = RECONNECT_MIN_MS;
  private stopped = false;
  private readonly topic: (leaf: string) => string;

  constructor(
    private readonly cfg: MqttConfig,
    private readonly deps: {
      deviceId: string;
      version: string;
      startedAt: Date;
      /** The health document (the same `destinations` objects as `pacs-edge status --json`). */
      health: () => Promise<Record<string, unknown>>;
      log: Logger;
      /** Command handlers, subscribed only with `health.mqtt.commands: true`; `by` is who sent it (broker account and role). */
      commands?: Record<string, (args: Record<string, unknown>, by: string) => Promise<unknown>> | undefined;
      /** Every command, done or refused, with its role and broker account (110113 / 110132). */
      audit?: ((e: { detail: string; failure: boolean; by: string }) => void) | undefined;
    },
  ) {
    this.protocolVersion = cfg.protocolVersion;
    this.topic = (leaf) => `${cfg.topicPrefix}/${deps.deviceId}/${leaf}`;
  }

  start(): void {
    this.connect();
    this.timer = setInterval(() => this.publishHealth(), this.cfg.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** A clean stop: `offline` is published (retained) before the link is closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const c = this.client;
    if (!c) return;
    if (c.connected) {
      await new Promise<void>((resolve) => c.publish(this.topic('status'), this.statusPayload('offline'), { qos: 1, retain: true }, () => resolve()));
    }
    await new Promise<void>((resolve) => c.end(false, {}, () => resolve()));
  }

  /** Publish an event now (or when the link returns), and the health that goes with it. */
  event(e: HealthEvent): void {
    const payload = JSON.stringify({ ...e, device: this.deps.deviceId, at: new Date().toISOString() });
    if (this.client?.connected) this.client.publish(this.topic('events'), payload, { qos: 1 });
    else {
      this.queued.push(payload);
      if (this.queued.length > MAX_QUEUED_EVENTS) this.queued.shift();
    }
    this.publishHealth();
  }

  /** Publish the current health (skipped while offline: the next connect sends the latest). */
  publishHealth(): void {
    const c = this.client;
    if (!c?.connected) return;
    this.deps
      .health()
      .then((h) => {
        if (c.connected) c.publish(this.topic('health'), JSON.stringify(h), { qos: 0, retain: true });
      })
      .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'could not build the MQTT health message'));
  }

  /**
   * `cmd/<role>/<username>/<name>` → `cmd-result/<role>/<username>/<name>`. The broker's ACL
   * (`pattern write <prefix>/+/cmd/operator/%u/#`, docs/mqtt.md) lets an account publish only
   * under its own name and only to the roles it grants, so the topic carries an identity the
   * broker enforced. Administrator commands are never taken over MQTT; a command outside its
   * role is refused; both, and every command done, are audited with role and account. The
   * payload is a JSON object (its `id`, if any, is echoed back); the result is
   * `{ id, ok: true, result }` or `{ id, ok: false, error }`, never silence.
   */
  private async command(client: MqttClient, topic: string, payload: Buffer): Promise<void> {
    const prefix = this.topic('cmd/');
    if (!topic.startsWith(prefix)) return;
    const parts = topic.slice(prefix.length).split('/');
    if (parts.length !== 3) return;
    const [role, username, name] = parts as [Role, string, string];
    const by = `mqtt:${username} (${role})`;
    let id: unknown = null;
    let reply: Record<string, unknown>;
    try {
      const text = payload.toString('utf8').trim();
      const args = (text ? JSON.parse(text) : {}) as unknown;
      if (typeof args !== 'object' || args === null || Array.isArray(args)) throw badRequest('the payload must be a JSON object');
      id = (args as { id?: unknown }).id ?? null;
      const handler = this.deps.commands?.[name];
      if (!handler) throw badRequest(`unknown command "${name}"; known: ${Object.keys(this.deps.commands ?? {}).join(', ')}`);
      if (!MQTT_ROLES.includes(role)) throw refused(`the ${role} role takes no commands over MQTT (administrator actions are local only: pacs-edge on the device)`);
      if (!(MQTT_COMMAND_ROLES[name] ?? []).includes(role)) throw refused(`${username} (${role}) may not ${name}: it is for the ${(MQTT_COMMAND_ROLES[name] ?? []).join(' or ') || 'administrator'} role`);
      reply = { id, ok: true, result: await handler(args as Record<string, unknown>, by) };
      this.deps.audit?.({ detail: `MQTT command ${name} by ${by}`, failure: false, by });
    } catch (err) {
      reply = { id, ok: false, error: (err as Error).message };
      this.deps.audit?.({ detail: `MQTT command ${name} by ${by} ${(err as { code?: string }).code === Code.ROLE_DENIED ? 'refused: outside the role' : `failed: ${(err as Error).message}`}`, failure: true, by });
    }
    this.deps.log.info({ command: name, role, username, ok: reply.ok }, 'MQTT command');
    client.publish(this.topic(`cmd-result/${role}/${username}/${name}`), JSON.stringify({ ...reply, device: this.deps.deviceId, at: new Date().toISOString() }), { qos: 1 });
  }

  private statusPayload(state: 'online' | 'offline'): string {
    return JSON.stringify({ state, version: this.deps.version, startedAt: this.deps.startedAt.toISOString() });
  }

  private options(): IClientOptions {
    const o: IClientOptions = {
      clientId: this.cfg.clientId,
      protocolVersion: this.protocolVersion,
      clean: true,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 0, // reconnection is ours, with a growing delay
      queueQoSZero: false, // an old health message is worth nothing: never queued while offline
      will: { topic: this.topic('status'), payload: Buffer.from(this.statusPayload('offline')), qos: 1, retain: true },
    };
    if (this.cfg.username) o.username = this.cfg.username;
    if (this.cfg.passwordFile) o.password = readFileSync(this.cfg.passwordFile, 'utf8').trim();
    if (this.cfg.url.startsWith('mqtts:')) {
      // The same BCP 195 profile as DICOM TLS (src/security/tls.ts): TLS 1.2+, ECDHE + AEAD only.
      // mqtt.js hands its options to tls.connect as they are; its types do not list these two.
      Object.assign(o, { minVersion: TLS_MIN_VERSION, ciphers: TLS12_CIPHERS });
    }
    if (this.cfg.tls?.ca) o.ca = readFileSync(this.cfg.tls.ca);
    if (this.cfg.tls?.cert) o.cert = readFileSync(this.cfg.tls.cert);
    if (this.cfg.tls?.key) o.key = readFileSync(this.cfg.tls.key);
    return o;
  }

  private connect(): void {
    if (this.stopped) return;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.cfg.url, this.options());
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'MQTT client could not start; will retry');
      this.retryLater();
      return;
    }
    this.client = client;
    client.on('connect', () => {
      this.reconnectMs = RECONNECT_MIN_MS;
      this.deps.log.info({ url: this.cfg.url, protocolVersion: this.protocolVersion }, 'MQTT connected');
      client.publish(this.topic('status'), this.statusPayload('online'), { qos: 1, retain: true });
      for (const p of this.queued.splice(0)) client.publish(this.topic('events'), p, { qos: 1 });
      this.publishHealth();
      if (this.cfg.commands && this.deps.commands) client.subscribe(this.topic('cmd/+/+/+'), { qos: 1 });
    });
    client.on('message', (topic, payload) => void this.command(client, topic, payload));
    client.on('error', (err: Error & { code?: number | string }) => {
      // A 3.1.1 broker refuses an MQTT 5 CONNECT ("unacceptable protocol version", code 1 / 0x84).
      if (this.protocolVersion === 5 && (err.code === 1 || err.code === 132 || /protocol version/i.test(err.message))) {
        this.deps.log.info('MQTT broker refuses protocol 5; using 3.1.1');
        this.protocolVersion = 4;
        this.reconnectMs = 0;
      } else this.deps.log.warn({ err: err.message }, 'MQTT error');
    });
    client.on('close', () => {
      if (this.client !== client) return;
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      this.client = undefined;
      this.retryLater();
    });
  }

  private retryLater(): void {
    if (this.stopped) return;
    const wait = this.reconnectMs;
    this.reconnectMs = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, this.reconnectMs * 2));
    setTimeout(() => this.connect(), wait).unref();
  }
}
