import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, waitFor } from './processes.js';

/**
 * A real Mosquitto broker (Debian's `mosquitto`, installed by `make test`) on a loopback port of
 * its own, anonymous, no persistence: the MQTT peer of the health tests.
 */
export interface Broker {
  port: number;
  url: string;
  stop: () => Promise<void>;
  /** Start it again on the same port (after `stop`). */
  restart: () => Promise<void>;
}

/**
 * `auth`: accounts (a password file made with mosquitto_passwd) and ACL lines (`user NAME`,
 * `topic …`, `pattern … %u …`); anonymous clients are then refused.
 */
export interface BrokerAuth {
  users: Record<string, string>;
  acl: string[];
}

export async function startMosquitto(dir: string, port?: number, tls?: { ca: string; cert: string; key: string }, auth?: BrokerAuth): Promise<Broker> {
  const p = port ?? (await freePort());
  const conf = path.join(dir, `mosquitto-${p}.conf`);
  // Started as root, Mosquitto drops to user "mosquitto", who cannot read certificates in a
  // 0700 temp dir: stay root then (a test broker on loopback). As another user it keeps its user.
  const userLine = process.getuid?.() === 0 ? ['user root'] : [];
  const tlsLines = tls ? [`cafile ${tls.ca}`, `certfile ${tls.cert}`, `keyfile ${tls.key}`, 'require_certificate true', 'use_identity_as_username true', 'tls_version tlsv1.2'] : [];
  const authLines: string[] = [];
  if (auth) {
    const passwords = path.join(dir, `mosquitto-${p}.passwd`);
    writeFileSync(passwords, '');
    for (const [user, password] of Object.entries(auth.users)) {
      const r = spawnSync('mosquitto_passwd', ['-b', passwords, user, password], { encoding: 'utf8', timeout: 10_000 });
      if (r.status !== 0) throw new Error(`mosquitto_passwd ${user}: ${r.stderr}`);
    }
    const acl = path.join(dir, `mosquitto-${p}.acl`);
    writeFileSync(acl, auth.acl.join('\n') + '\n');
    authLines.push(`password_file ${passwords}`, `acl_file ${acl}`);
  }
  writeFileSync(conf, [...userLine, `listener ${p} 127.0.0.1`, ...tlsLines, ...authLines, `allow_anonymous ${auth ? 'false' : 'true'}`, 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning'].join('\n') + '\n');
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitFor(async () => {
      if (tls || auth) return (await canConnect(p)) || undefined;
      const c = await connect(`mqtt://127.0.0.1:${p}`, 500).catch(() => undefined);
      if (!c) return undefined;
      await c.endAsync();
      return true;
    }, { what: 'mosquitto listening', timeoutMs: 10_000 });
  };
  await launch();
  const stop = async () => {
    const pr = proc;
    if (!pr || pr.exitCode !== null) return;
    pr.kill('SIGTERM');
    await new Promise((r) => pr.once('exit', r));
  };
  return { port: p, url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${p}`, stop, restart: launch };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export { makeCertificates } from './certificates.js';

/** A connected test client (fails after `timeoutMs`). */
export function connect(url: string, timeoutMs = 5000, login?: { username: string; password: string }): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs, ...login });
    const t = setTimeout(() => {
      c.end(true);
      reject(new Error('MQTT connect timed out'));
    }, timeoutMs);
    c.once('connect', () => {
      clearTimeout(t);
      resolve(c);
    });
    c.once('error', (e) => {
      clearTimeout(t);
      c.end(true);
      reject(e);
    });
  });
}

/** Every message on `filter`, as it arrives (payloads as text). */
export async function record(url: string, filter: string, login?: { username: string; password: string }): Promise<{ messages: { topic: string; text: string; retain: boolean }[]; close: () => Promise<void> }> {
  const c = await connect(url, 5000, login);
  const messages: { topic: string; text: string; retain: boolean }[] = [];
  c.on('message', (topic, payload, packet) => messages.push({ topic, text: payload.toString('utf8'), retain: packet.retain }));
  await c.subscribeAsync(filter, { qos: 1 });
  return { messages, close: () => c.endAsync() };
}

/**
 * A stand-in for an MQTT 3.1.1-only broker in front of a real Mosquitto: a CONNECT for
 * protocol level 5 gets the 3.1.1 answer "unacceptable protocol version" (CONNACK return code
 * 1) and the connection is closed; any other connection is passed through to Mosquitto. Only
 * this fault is faked: Mosquitto 2 always accepts MQTT 5.
 * @see MQTT 3.1.1 §3.1.2.2 (protocol level), §3.2.2.3 (CONNACK return codes)
 */
export async function mqtt311OnlyProxy(targetPort: number): Promise<{ port: number; refused: () => number; close: () => Promise<void> }> {
  let refused = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once('data', (first) => {
      let i = 1;
      while (first[i]! & 0x80) i++; // remaining length (variable byte integer)
      const nameLength = first.readUInt16BE(i + 1);
      const level = first[i + 3 + nameLength];
      if (level === 5) {
        refused++;
        client.end(Buffer.from([0x20, 0x02, 0x00, 0x01]));
        return;
      }
      const upstream = net.connect(targetPort, '127.0.0.1', () => {
        upstream.write(first);
        client.pipe(upstream).pipe(client);
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    refused: () => refused,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
