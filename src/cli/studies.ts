import { constants } from 'node:fs';
import pino from 'pino';
import { recordOffline, safeUser } from './audit.js';
import type { GatewayConfig } from '../config/types.js';
import { Code, PacsEdgeError } from '../errors.js';
import { controlRequest } from '../health/control-server.js';
import { createLogger } from '../log.js';
import { accessionHash, accessionKey } from '../security/accession.js';
import { checkDeviceKeyFits } from '../spool/key-check.js';
import { actAsStateOwner } from '../security/state-owner.js';
import { deviceKeyFor } from '../security/spool-key.js';
import { mayReach, openSpool, readSpool } from '../spool/open.js';
import { resendStudy, type OperatorAuditRecord, type ResendRequest } from '../spool/operator.js';
import { answerStudies, studyJson, type StudyQuery } from '../spool/studies.js';
import { EXIT } from './exit-codes.js';

/**
 * Field operations at study level: `pacs-edge studies`, `pacs-edge study UID`, `pacs-edge
 * resend --study UID`. Answered by the running gateway over its control socket; when it is
 * stopped, read from the spool (read-only), or — resend — done on it with the spool's lock, the
 * device key and the gateway's recovery (src/spool/open.ts), audited.
 */

/** "2h", "90m", "3d", "45s" → milliseconds. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd])$/.exec(s.trim());
  if (!m) return undefined;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

type StudyDoc = Record<string, unknown> & {
  studyInstanceUid: string;
  instances: number;
  modalities: string[];
  callingAeTitle: string;
  firstReceived: string;
  lastReceived: string;
  state: string;
  stable: boolean;
  destinations: { name: string; forwarded: number; pending: number; deadLetter: number; lastDelivery?: string | null }[];
};

export async function studiesCommand(config: GatewayConfig, option: (n: string) => string | undefined, has: (f: string) => boolean): Promise<number> {
  const q: StudyQuery = {};
  const since = option('--since');
  if (since !== undefined) {
    const ms = parseDuration(since);
    if (ms === undefined) {
      console.error(`pacs-edge studies: --since takes a duration such as 45m, 2h or 3d, not "${since}"`);
      return EXIT.usage;
    }
    q.sinceMs = ms;
  }
  const state = option('--state');
  if (state !== undefined) {
    if (!['pending', 'delivered', 'incomplete', 'all'].includes(state)) {
      console.error('pacs-edge studies: --state is pending, delivered, incomplete or all');
      return EXIT.usage;
    }
    q.state = state as StudyQuery['state'];
  }
  const accession = option('--accession');
  if (accession !== undefined) q.accession = accession;
  let answer = (await controlRequest(config.control.socket, 'POST', '/studies/query', q)) as { studies: StudyDoc[] } | undefined;
  if (!answer) {
    // Stopped: read the spool (as its owner); an accession number is hashed here, with the device key.
    actAsStateOwner(config);
    const key = accession ? accessionKey(deviceKeyFor(config, { create: false })) : undefined;
    const all = await readSpool(config, (v) => v.studies());
    answer = answerStudies(all, q, { now: Date.now(), stableMs: config.studies.stableSeconds * 1000, hash: (a) => accessionHash(key, a) }) as { studies: StudyDoc[] };
  }
  if (has('--json')) console.log(JSON.stringify(answer, null, 2));
  else if (answer.studies.length === 0) console.log('no study matches');
  else for (const s of answer.studies) console.log(studyLines(s).join('\n'));
  return EXIT.ok;
}

export async function studyCommand(config: GatewayConfig, uid: string | undefined, has: (f: string) => boolean): Promise<number> {
  if (!uid || uid.startsWith('-')) {
    console.error('usage: pacs-edge study UID --config FILE [--json]');
    return EXIT.usage;
  }
  let doc = (await controlRequest(config.control.socket, 'POST', '/study', { uid }).catch((err: Error) => {
    if (/no study/.test(err.message)) return null;
    throw err;
  })) as StudyDoc | null | undefined;
  if (doc === undefined) {
    actAsStateOwner(config);
    const s = (await readSpool(config, (v) => v.studies())).find((x) => x.studyInstanceUid === uid);
    doc = s ? (studyJson(s, Date.now(), config.studies.stableSeconds * 1000, true) as StudyDoc) : null;
  }
  if (!doc) {
    console.error(`pacs-edge study: no study ${uid} in the spool's history (kept studies.keepDays = ${config.studies.keepDays} days)`);
    return EXIT.failed;
  }
  if (has('--json')) console.log(JSON.stringify(doc, null, 2));
  else {
    console.log(studyLines(doc).join('\n'));
    for (const se of doc.series as { seriesInstanceUid: string | null; modality: string | null; instances: number }[]) console.log(`    series ${se.seriesInstanceUid ?? '(none)'}  ${se.modality ?? '-'}  ${se.instances} instance(s)`);
  }
  return EXIT.ok;
}

export async function resendCommand(config: GatewayConfig, option: (n: string) => string | undefined, has: (f: string) => boolean): Promise<number> {
  const study = option('--study');
  const destination = option('--destination');
  if (!study) {
    console.error('usage: pacs-edge resend --study UID --config FILE [--destination NAME] [--json]');
    return EXIT.usage;
  }
  if (destination !== undefined && !config.forward.some((f) => f.name === destination)) {
    console.error(`pacs-edge resend: no destination "${destination}" in the configuration`);
    return EXIT.usage;
  }
  const req: ResendRequest = { study, ...(destination ? { destination } : {}), by: safeUser() };
  let result = (await controlRequest(config.control.socket, 'POST', '/studies/resend', req)) as Awaited<ReturnType<typeof resendStudy>> | undefined;
  let audited = 'recorded by the running gateway';
  if (!result) {
    actAsStateOwner(config);
    const log = createLogger({ level: 'info', deviceId: config.device.id, destination: pino.destination({ dest: 2, sync: true }) });
    // Before the key: an operator is told the stopped gateway's files are root's, not that a key is missing.
    mayReach(config.spool.dir, constants.R_OK | constants.W_OK | constants.X_OK);
    const deviceKey = deviceKeyFor(config, { create: false });
    await checkDeviceKeyFits(config, deviceKey);
    const opened = await openSpool(config, { access: 'admin', log, deviceKey, command: 'pacs-edge resend' });
    const records: OperatorAuditRecord[] = [];
    try {
      result = await resendStudy(opened.spool, req, { log, record: (r) => records.push(r), how: 'gateway stopped', destinations: config.forward.map((f) => f.name) });
    } catch (err) {
      if (err instanceof PacsEdgeError && err.code === Code.STUDY_NOT_FOUND) {
        console.error(`pacs-edge resend: ${err.message}`);
        return EXIT.failed;
      }
      throw err;
    } finally {
      await opened.close();
    }
    audited = await recordOffline(config, deviceKey, records);
  }
  if (has('--json')) console.log(JSON.stringify({ ...result, audit: audited }));
  else {
    console.log(`study ${result.study}: ${result.queued + result.retried} object(s) queued again for ${result.destinations.join(', ') || '(no destination)'}${result.retried ? ` (${result.retried} of them dead letters)` : ''}${result.alreadyQueued ? `; ${result.alreadyQueued} were still queued` : ''}`);
    if (result.gone > 0) console.log(`  ${result.gone} object(s) of the study are no longer in the spool (delivered more than spool.keepForwardedHours = ${config.spool.keepForwardedHours} h ago): have the modality send them again`);
    console.log(`audit: ${audited}`);
  }
  return EXIT.ok;
}

/** Two or more lines per study for a terminal. */
function studyLines(s: StudyDoc): string[] {
  const when = (iso: string | null | undefined) => (iso ? new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '-');
  const lines = [
    `${when(s.lastReceived)}  ${s.state.toUpperCase().padEnd(10)}${s.stable ? '' : ' (arriving)'}  ${(s.modalities.join('/') || '-').padEnd(6)} ${String(s.instances).padStart(5)} img  from ${s.callingAeTitle}  study ${s.studyInstanceUid}`,
  ];
  for (const d of s.destinations) {
    lines.push(`    ${d.name}: ${d.forwarded} forwarded, ${d.pending} pending, ${d.deadLetter} dead letter(s)${d.lastDelivery ? `, last delivery ${when(d.lastDelivery)}` : ''}`);
  }
  return lines;
}
