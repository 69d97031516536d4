import type { GatewayConfig } from '../config/types.js';
import { Code, PacsEdgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { accessionHash } from '../security/accession.js';
import type { LevelSpool } from './level-spool.js';
import { type OperatorAuditRecord, operatorRequest, purgeDeadLetters, resendRequest, resendStudy, retryDeadLetters } from './operator.js';
import { answerStudies, parseStudyQuery, studyJson } from './studies.js';

/**
 * What the running gateway's spool answers on the control socket: its dead letters (list,
 * retry, purge) and its studies (query, one study, resend). The same operations a stopped
 * gateway's commands run on the spool directly (src/cli), so both give the same answer; each
 * change is logged and audited through `record`.
 */
export function spoolControlRoutes(o: {
  spool: LevelSpool;
  log: Logger;
  /** Audit an operator's change (requeued or purged dead letters, a resent study). */
  record: (r: OperatorAuditRecord) => void;
  /** Hashes accession numbers for `studies --accession` (never stored or shown in clear). */
  accessionKey: Buffer | undefined;
  /** The configuration in force (a reload replaces it). */
  config: () => GatewayConfig;
}): Record<string, (body: unknown) => unknown> {
  const { spool, log, record } = o;
  const how = 'through the running gateway';
  const stableMs = () => o.config().studies.stableSeconds * 1000;
  return {
    'GET /dead-letters': () => spool.listDeadLetters(),
    'POST /dead-letters/retry': (body) => retryDeadLetters(spool, operatorRequest(body), { log, record, how }),
    'POST /dead-letters/purge': (body) => purgeDeadLetters(spool, operatorRequest(body), { log, record, how }),
    'POST /studies/query': (body) => answerStudies(spool.studies.all(), parseStudyQuery(body), { now: Date.now(), stableMs: stableMs(), hash: (a) => accessionHash(o.accessionKey, a) }),
    'POST /study': (body) => {
      const uid = (body as { uid?: unknown } | undefined)?.uid;
      const s = typeof uid === 'string' ? spool.studies.get(uid) : undefined;
      if (!s) throw new PacsEdgeError(Code.STUDY_NOT_FOUND, `no study ${String(uid)} in the spool's history`);
      return studyJson(s, Date.now(), stableMs(), true);
    },
    'POST /studies/resend': (body) => resendStudy(spool, resendRequest(body), { log, record, how, destinations: o.config().forward.map((x) => x.name) }),
  };
}
