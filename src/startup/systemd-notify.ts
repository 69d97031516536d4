import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

/**
 * systemd's service notification (sd_notify(3)) for `Type=notify` and `WatchdogSec=`: `READY=1`
 * once the gateway listens, then `WATCHDOG=1` every WatchdogSec/3 from a timer of the main event
 * loop, so a loop that stops turning stops the pings and systemd kills and restarts the service.
 *
 * Node.js cannot send Unix datagrams, so each message is one run of `systemd-notify` (Debian 12:
 * systemd 252). It waits until systemd has processed the message (no `--no-block`), and the unit
 * has `NotifyAccess=all`, so a message from this child of the service is accepted. `--pid` names
 * the gateway as the service's main process. Nothing happens without `$NOTIFY_SOCKET` (started
 * by hand, by a test, or under another supervisor).
 *
 * @see sd_notify(3), systemd-notify(1), systemd.service(5) WatchdogSec=, NotifyAccess=
 */
export function startSystemdNotify(o: { log: Logger; env?: NodeJS.ProcessEnv | undefined }): { stop: () => void } | undefined {
  const env = o.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return undefined;
  const send = (args: string[], what: string, done?: () => void) => {
    const p = spawn('systemd-notify', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', (e) => {
      o.log.warn({ err: e.message }, `systemd-notify could not run (${what})`);
      done?.();
    });
    p.on('close', (code) => {
      if (code !== 0) o.log.warn({ code, err: err.trim().slice(0, 300) }, `systemd-notify failed (${what})`);
      done?.();
    });
  };
  send(['--ready', `--pid=${process.pid}`, '--status=listening'], 'READY=1');
  // $WATCHDOG_USEC is set by systemd when the unit has WatchdogSec=.
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) {
    o.log.info('systemd notified: ready (no watchdog: WatchdogSec= is not set for this process)');
    return { stop: () => {} };
  }
  const everyMs = Math.max(100, Math.floor(usec / 1000 / 3));
  let busy = false;
  const timer = setInterval(() => {
    // One ping at a time: a slow systemd must not pile up processes.
    if (busy) return;
    busy = true;
    send(['WATCHDOG=1'], 'WATCHDOG=1', () => (busy = false));
  }, everyMs);
  timer.unref();
  o.log.info({ everyMs, watchdogSeconds: usec / 1e6 }, 'systemd notified: ready; watchdog pings started');
  return { stop: () => clearInterval(timer) };
}
