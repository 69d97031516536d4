import pino from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { controlRequest } from '../health/control-server.js';
import { createLogger } from '../log.js';
import { LevelSpool } from '../spool/level-spool.js';
import type { DeadLetter } from '../spool/spool.js';
import { HashPool } from '../util/hash-pool.js';

/**
 * `pacs-edge dead-letter list|retry|purge`: through the running gateway's control socket, or
 * on the spool directly when the gateway is stopped. Purge is irreversible for that
 * destination, so it needs `--yes`, and it is logged either way.
 */
export async function deadLetterCommand(config: GatewayConfig, args: string[], option: (name: string) => string | undefined): Promise<number> {
  const [action] = args;
  const destination = option('--destination');
  const ids = args.flatMap((a, i) => (args[i - 1] === '--id' ? [a] : []));
  const json = args.includes('--json');
  if (action !== 'list' && action !== 'retry' && action !== 'purge') {
    console.error('usage: pacs-edge dead-letter list|retry|purge --config FILE [--destination NAME] [--id ID ...] [--yes] [--json]');
    return 2;
  }
  if (destination !== undefined && !config.forward.some((f) => f.name === destination)) {
    console.error(`pacs-edge dead-letter: no destination "${destination}" in the configuration`);
    return 2;
  }
  if (action !== 'list' && !destination) {
    console.error(`pacs-edge dead-letter ${action}: --destination NAME is required`);
    return 2;
  }
  if (action === 'purge' && !args.includes('--yes')) {
    console.error('pacs-edge dead-letter purge: the destination will never receive these objects; repeat with --yes to confirm');
    return 2;
  }
  const body = ids.length ? { destination, ids } : { destination };

  if (action === 'list') {
    let list = (await controlRequest(config.control.socket, 'GET', '/dead-letters', undefined).catch(() => undefined)) as DeadLetter[] | undefined;
    list ??= await offline(config, (spool) => spool.listDeadLetters());
    if (destination) list = list.filter((d) => d.destination === destination);
    if (json) console.log(JSON.stringify(list, null, 2));
    else if (list.length === 0) console.log('no dead letters');
    else {
      for (const d of list) {
        const status = d.status === undefined ? '-' : `0x${d.status.toString(16).toUpperCase().padStart(4, '0')}`;
        console.log(`${d.destination.padEnd(14)} ${d.id}  ${new Date(d.at).toISOString()}  ${status}  ${d.sopInstanceUid}  ${d.reason}`);
      }
    }
    return 0;
  }

  const path = action === 'retry' ? '/dead-letters/retry' : '/dead-letters/purge';
  let result = (await controlRequest(config.control.socket, 'POST', path, body)) as { retried?: number; purged?: number } | undefined;
  if (!result) {
    const log = createLogger({ level: config.log.level, deviceId: config.device.id, destination: pino.destination({ dest: 1, sync: true }) });
    result = await offline(config, async (spool) => {
      if (action === 'retry') {
        const retried = await spool.retryDeadLetters(destination!, ids.length ? ids : undefined);
        log.info({ destination, retried, ids }, 'dead letters put back in the queue (operator request, gateway stopped)');
        return { retried };
      }
      const purged = await spool.purgeDeadLetters(destination!, ids.length ? ids : undefined);
      log.warn({ destination, purged, ids }, 'dead letters purged: the destination will never get them (operator request, gateway stopped)');
      return { purged };
    });
  }
  if (json) console.log(JSON.stringify(result));
  else console.log(action === 'retry' ? `${result.retried ?? 0} object(s) queued again for ${destination}` : `${result.purged ?? 0} dead letter(s) purged for ${destination}`);
  return 0;
}

/** Open the spool of a stopped gateway for one operation. */
async function offline<T>(config: GatewayConfig, fn: (spool: LevelSpool) => Promise<T>): Promise<T> {
  const hashPool = new HashPool(1);
  const spool = new LevelSpool({
    dir: config.spool.dir,
    destinations: config.forward.map((f) => f.name),
    minFreeBytes: 0,
    maxBytes: 0,
    verifyOnStart: 'size',
    keepForwardedMs: config.spool.keepForwardedHours * 3_600_000,
    hashPool,
    log: pino({ level: 'silent' }),
  });
  await spool.open();
  try {
    return await fn(spool);
  } finally {
    await spool.close();
    await hashPool.close();
  }
}
