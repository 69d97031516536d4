import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STALL_MARKER } from '../../src/util/loop-watchdog.js';
import { trailText } from '../helpers/audit-trail.js';
import { type Broker, record, startMosquitto } from '../helpers/mosquitto.js';
import { CLI, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * The watchdogs with the real gateway process: a marker left by the in-process watchdog is
 * audited and raised on MQTT (real Mosquitto) at the next start, then removed; and systemd's
 * notification protocol, READY=1 once, WATCHDOG=1 again and again.
 *
 * systemd is not PID 1 in the test container, so there is no real notification socket: a fake
 * `systemd-notify` first on the PATH records its arguments, and NOTIFY_SOCKET/WATCHDOG_USEC are
 * set as systemd would set them for a unit with Type=notify and WatchdogSec=.
 */
const tmp = tempDir('pacs-edge-watchdog-');
let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto(tmp.dir);
});
afterAll(async () => {
  await broker?.stop();
  tmp.cleanup();
});

describe('watchdog', () => {
  it('a start after a watchdog kill audits it (Security Alert WATCHDOG), raises MQTT watchdog-restart, and removes the marker', async () => {
    const dir = path.join(tmp.dir, 'marker');
    mkdirSync(path.join(dir, 'spool'), { recursive: true });
    const marker = path.join(dir, 'spool', STALL_MARKER);
    writeFileSync(marker, JSON.stringify({ stalledSeconds: 61.2, killedAt: '2026-01-02T03:04:05.000Z', pid: 4242, stallSeconds: 60 }));
    const events = await record(broker.url, 'pacs-edge/edge-watchdog/events');
    const gw = await startGateway({ dir, config: { device: { id: 'edge-watchdog' }, health: { mqtt: { url: broker.url, intervalSeconds: 1 } } } });
    try {
      const e = await waitFor(() => events.messages.map((m) => JSON.parse(m.text) as Record<string, unknown>).find((m) => m.type === 'watchdog-restart'), { what: 'the MQTT watchdog-restart event' });
      expect(e).toMatchObject({ type: 'watchdog-restart', by: 'in-process', stalledSeconds: 61.2, killedAt: '2026-01-02T03:04:05.000Z', stallSeconds: 60, device: 'edge-watchdog' });
      expect(gw.logs.some((l) => l.msg.startsWith('SECURITY ALERT: the previous run was killed by the watchdog'))).toBe(true);
      expect(existsSync(marker)).toBe(false);
    } finally {
      expect(await gw.stop()).toBe(0);
      await events.close();
    }
    const text = trailText(path.join(dir, 'audit'));
    expect(text).toContain('WATCHDOG');
    expect(text).toContain('its event loop had not run for 61.2 s');
    const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', gw.configFile], { timeoutMs: 30_000 });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // Audited once: a second start finds no marker.
    const again = await startGateway({ dir, port: gw.port });
    expect(await again.stop()).toBe(0);
    expect(trailText(path.join(dir, 'audit')).split('its event loop had not run for').length - 1).toBe(1);
  });

  it('a marker left by the unit\'s ExecStopPost= after systemd\'s own watchdog fired is audited and raised too (by: systemd)', async () => {
    const dir = path.join(tmp.dir, 'systemd-marker');
    mkdirSync(path.join(dir, 'spool'), { recursive: true });
    const marker = path.join(dir, 'spool', STALL_MARKER);
    writeFileSync(marker, 'systemd watchdog dumped ABRT 2026-01-02T03:04:05Z\n');
    const events = await record(broker.url, 'pacs-edge/edge-sd-watchdog/events');
    const gw = await startGateway({ dir, config: { device: { id: 'edge-sd-watchdog' }, health: { mqtt: { url: broker.url, intervalSeconds: 1 } } } });
    try {
      const e = await waitFor(() => events.messages.map((m) => JSON.parse(m.text) as Record<string, unknown>).find((m) => m.type === 'watchdog-restart'), { what: 'the MQTT watchdog-restart event' });
      expect(e).toMatchObject({ by: 'systemd', systemd: 'watchdog dumped ABRT', killedAt: '2026-01-02T03:04:05Z' });
      expect(existsSync(marker)).toBe(false);
    } finally {
      expect(await gw.stop()).toBe(0);
      await events.close();
    }
    expect(trailText(path.join(dir, 'audit'))).toContain('killed by systemd&apos;s watchdog (WatchdogSec=) at 2026-01-02T03:04:05Z: watchdog dumped ABRT');
  });

  it('with NOTIFY_SOCKET set, the gateway sends READY=1 once it listens and WATCHDOG=1 every WatchdogSec/3', async () => {
    const dir = path.join(tmp.dir, 'notify');
    const bin = path.join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const calls = path.join(dir, 'calls.txt');
    // The fake: one line per run, its arguments and the socket it was given.
    writeFileSync(path.join(bin, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> '${calls}'\n`);
    chmodSync(path.join(bin, 'systemd-notify'), 0o755);
    const gw = await startGateway({
      dir,
      // WatchdogSec=0.9s: a ping every 300 ms.
      env: { PATH: `${bin}:${process.env.PATH ?? ''}`, NOTIFY_SOCKET: '/run/systemd/notify-test', WATCHDOG_USEC: '900000' },
    });
    try {
      const lines = await waitFor(() => {
        const l = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [];
        return l.filter((x) => x.includes('WATCHDOG=1')).length >= 3 ? l : undefined;
      }, { what: 'three WATCHDOG=1 pings' });
      const ready = lines.filter((l) => l.includes('--ready'));
      expect(ready).toHaveLength(1);
      expect(ready[0]).toContain(`--pid=${gw.proc.pid}`);
      expect(lines[0]).toContain('--ready');
      for (const l of lines) expect(l.startsWith('/run/systemd/notify-test ')).toBe(true);
      expect(gw.logs.some((l) => l.msg === 'systemd notified: ready; watchdog pings started')).toBe(true);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});
