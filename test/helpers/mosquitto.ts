import { type ChildProcess, spawn } from 'node:child_process';
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

export async function startMosquitto(dir: string, port?: number): Promise<Broker> {
  const p = port ?? (await freePort());
  const conf = path.join(dir, `mosquitto-${p}.conf`);
  writeFileSync(conf, [`listener ${p} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning'].join('\n') + '\n');
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitFor(async () => {
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
  return { port: p, url: `mqtt://127.0.0.1:${p}`, stop, restart: launch };
}

/** A connected test client (fails after `timeoutMs`). */
export function connect(url: string, timeoutMs = 5000): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs });
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
export async function record(url: string, filter: string): Promise<{ messages: { topic: string; text: string; retain: boolean }[]; close: () => Promise<void> }> {
  const c = await connect(url);
  const messages: { topic: string; text: string; retain: boolean }[] = [];
  c.on('message', (topic, payload, packet) => messages.push({ topic, text: payload.toString('utf8'), retain: packet.retain }));
  await c.subscribeAsync(filter, { qos: 1 });
  return { messages, close: () => c.endAsync() };
}
