import { constants } from 'node:fs';
import pino from 'pino';
import { recordOffline, safeUser } from './audit.js';
import type { GatewayConfig } from '../config/types.js';
import { controlRequest } from '../health/control-server.js';
import { createLogger } from '../log.js';
import { checkDeviceKeyFits } from '../spool/key-check.js';
import { commentKey, deviceKeyFor } from '../security/spool-key.js';
import { profileOfHead } from '../security/sealed-file.js';
import { openComment } from '../spool/dead-letters.js';
import { mayReach, openSpool, readSpool } from '../spool/open.js';
import { purgeDeadLetters, retryDeadLetters, type OperatorAuditRecord, type OperatorRequest } from '../spool/operator.js';
import type { DeadLetter } from '../spool/spool.js';
import { EXIT } from './exit-codes.js';
import { actAsStateOwner } from '../security/state-owner.js';

/**
 * `pacs-edge dead-letter list|show|retry|purge`. While the gateway runs, through its control socket
 * (it owns the spool). When it is stopped: `list` reads the index read-only; `retry` and
 * `purge` open the spool for `admin` access — its lock, the device key and the gateway's own
 * recovery — so they can do nothing the gateway would not (src/spool/open.ts). Retry and purge
 * are logged and audited either way, with the operator's account; purge needs `--yes`.
 */
export async function deadLetterCommand(config: GatewayConfig, action: 'list' | 'show' | 'retry' | 'purge', args: string[], option: (name: string) => string | undefined): Promise<number> {
  // Through the running gateway as whoever runs it (root stays root in the audit trail); only
  // the stopped gateway's files are opened as the service user (state-owner.ts), even under sudo.
  const destination = option('--destination');
  const ids = args.flatMap((a, i) => (args[i - 1] === '--id' ? [a] : []));
  const json = args.includes('--json');
  if (destination !== undefined && !config.forward.some((f) => f.name === destination)) {
    console.error(`pacs-edge dead-letter: no destination "${destination}" in the configuration`);
    return EXIT.usage;
  }
  if (action === 'show') return showDeadLetter(config, destination, ids[0]);
  if (action !== 'list' && !destination) {
    console.error(`pacs-edge dead-letter ${action}: --destination NAME is required`);
    return EXIT.usage;
  }
  if (action === 'purge' && !args.includes('--yes')) {
    console.error('pacs-edge dead-letter purge: the destination will never receive these objects; repeat with --yes to confirm');
    return EXIT.usage;
  }

  if (action === 'list') {
    let list = (await controlRequest(config.control.socket, 'GET', '/dead-letters', undefined)) as DeadLetter[] | undefined;
    if (!list) {
      actAsStateOwner(config);
      list = await readSpool(config, (view) => view.listDeadLetters());
    }
    if (destination) list = list.filter((d) => d.destination === destination);
    if (json) console.log(JSON.stringify(list, null, 2));
    else if (list.length === 0) console.log('no dead letters');
    else {
      for (const d of list) {
        const status = d.status === undefined ? '-' : `0x${d.status.toString(16).toUpperCase().padStart(4, '0')}`;
        const comment = d.comment ? `  (Error Comment: ${d.comment.length} bytes${d.comment.sealed ? ', sealed: dead-letter show' : ', not kept'})` : '';
        console.log(`${d.destination.padEnd(14)} ${d.id}  ${new Date(d.at).toISOString()}  ${status}  study ${d.studyInstanceUid ?? '-'}  ${d.sopInstanceUid}  ${d.reason}${comment}`);
      }
    }
    return EXIT.ok;
  }

  // --study UID: that study's dead letters of the destination.
  const study = option('--study');
  if (study !== undefined) {
    let list = (await controlRequest(config.control.socket, 'GET', '/dead-letters', undefined)) as DeadLetter[] | undefined;
    if (!list) {
      actAsStateOwner(config);
      list = await readSpool(config, (view) => view.listDeadLetters(destination));
    }
    const of = list.filter((d) => d.destination === destination && d.studyInstanceUid === study).map((d) => d.id);
    if (of.length === 0) {
      console.log(`no dead letters of study ${study} for ${destination}`);
      return EXIT.ok;
    }
    ids.push(...of);
  }
  const req: OperatorRequest = { destination: destination!, ...(ids.length ? { ids } : {}), by: safeUser() };
  const path = action === 'retry' ? '/dead-letters/retry' : '/dead-letters/purge';
  let result = (await controlRequest(config.control.socket, 'POST', path, req)) as { retried?: number; purged?: number } | undefined;
  let audited = 'recorded by the running gateway';
  if (!result) {
    const offline = await changeStopped(config, action, req);
    if (typeof offline === 'number') return offline;
    ({ result, audited } = offline);
  }
  if (json) console.log(JSON.stringify({ ...result, audit: audited }));
  else {
    console.log(action === 'retry' ? `${result.retried ?? 0} object(s) queued again for ${destination}` : `${result.purged ?? 0} dead letter(s) purged for ${destination}`);
    console.log(`audit: ${audited}`);
  }
  return EXIT.ok;
}

/** Retry or purge on a stopped gateway's spool: the lock, the key and the full recovery, then the audit records. */
async function changeStopped(config: GatewayConfig, action: 'retry' | 'purge', req: OperatorRequest): Promise<{ result: { retried?: number; purged?: number }; audited: string } | number> {
  actAsStateOwner(config);
  // Log lines go to stderr: stdout is the command's answer (--json).
  const log = createLogger({ level: 'info', deviceId: config.device.id, destination: pino.destination({ dest: 2, sync: true }) });
  // Before the key: an operator is told the stopped gateway's files are root's, not that a key is missing.
  mayReach(config.spool.dir, constants.R_OK | constants.W_OK | constants.X_OK);
  const deviceKey = deviceKeyFor(config, { create: false });
  await checkDeviceKeyFits(config, deviceKey);
  const opened = await openSpool(config, { access: 'admin', log, deviceKey, command: `pacs-edge dead-letter ${action}` });
  const records: OperatorAuditRecord[] = [];
  const deps = { log, record: (r: OperatorAuditRecord) => records.push(r), how: 'gateway stopped' };
  let result: { retried?: number; purged?: number };
  try {
    result = action === 'retry' ? await retryDeadLetters(opened.spool, req, deps) : await purgeDeadLetters(opened.spool, req, deps);
  } finally {
    await opened.close();
  }
  const audited = await recordOffline(config, deviceKey, records);
  return { result, audited };
}

/**
 * `dead-letter show`: one dead letter, with the destination's Error Comment opened with the
 * device key (it may name a patient, so the spool keeps it sealed, and only an administrator who
 * can read the key sees it). Printed to the terminal only, never logged. Opening a sealed comment
 * is audited before it is printed (110113 Security Alert, 110132 Use of Restricted Function,
 * naming the dead letter and the operator, never the comment) the way retry and purge are: into
 * the trail when the gateway is stopped, through its audit inbox while it runs.
 */
async function showDeadLetter(config: GatewayConfig, destination: string | undefined, id: string | undefined): Promise<number> {
  if (!destination || !id) {
    console.error('pacs-edge dead-letter show: --destination NAME and --id ID are required');
    return EXIT.usage;
  }
  // Before acting as the service user: the record names the operator's own account.
  const by = safeUser();
  let list = (await controlRequest(config.control.socket, 'GET', '/dead-letters', undefined)) as DeadLetter[] | undefined;
  if (!list) {
    // Stopped: the spool's files are opened as the service user, even under sudo (state-owner.ts).
    actAsStateOwner(config);
    list = await readSpool(config, (view) => view.listDeadLetters(destination));
  }
  const d = list.find((x) => x.destination === destination && x.id === id);
  if (!d) {
    console.error(`pacs-edge dead-letter show: no dead letter ${id} for ${destination}`);
    return EXIT.usage;
  }
  let comment: string | undefined;
  if (d.comment?.sealed) {
    const device = deviceKeyFor(config, { create: false });
    const head = Buffer.from(d.comment.sealed, 'base64');
    comment = openComment(commentKey(device, profileOfHead(head) ?? 'aes-256-gcm'), d.comment);
    const detail = `the sealed Error Comment of dead letter ${d.id} (destination ${d.destination}) was opened by ${by} (pacs-edge dead-letter show)`;
    // stderr: stdout is the dead letter itself.
    console.error(`audit: ${await recordOffline(config, device, { kind: 'security-alert', type: 'use-of-restricted-function', detail, failure: false })}`);
  }
  const status = d.status === undefined ? '-' : `0x${d.status.toString(16).toUpperCase().padStart(4, '0')}`;
  console.log(`destination   ${d.destination}\nid            ${d.id}\nat            ${new Date(d.at).toISOString()}\nstatus        ${status}\nstudy         ${d.studyInstanceUid ?? '-'}\nSOP instance  ${d.sopInstanceUid}\nreason        ${d.reason}`);
  if (d.comment) console.log(`Error Comment ${comment ?? `(${d.comment.length} bytes, not kept: spool.encryption.profile none)`}`);
  return EXIT.ok;
}
