import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { RecoveryReport } from './spool.js';

/**
 * The spool's recovery, said once at start: info when everything was vouched for, a warning
 * when partial receptions were discarded, an error when anything could not be read.
 */
export function logRecovery(log: Logger, recovery: RecoveryReport, config: GatewayConfig): void {
  const level = recovery.lost.length > 0 || recovery.unreadable.length > 0 ? 'error' : recovery.discardedPartials > 0 || recovery.danglingQueueEntries > 0 ? 'warn' : 'info';
  log[level](
    {
      recovered: recovery.recovered,
      recoveredBytes: recovery.recoveredBytes,
      discardedPartials: recovery.discardedPartials,
      discardedBytes: recovery.discardedBytes,
      lost: recovery.lost.length,
      unreadable: recovery.unreadable.length,
      danglingQueueEntries: recovery.danglingQueueEntries,
    },
    'spool recovered',
  );
  if (recovery.unreadable.length > 0) {
    log.error(
      { unreadable: recovery.unreadable.length, keyFile: config.spool.encryption.keyFile, first: recovery.unreadable[0]?.reason },
      'some spooled objects cannot be opened with this device key: they stay in the spool, unsent, until a start with the key they were sealed with',
    );
  }
}
