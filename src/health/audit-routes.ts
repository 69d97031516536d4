import { type AuditEvents, describeVerify, verifyTrail } from '../audit/index.js';
import type { ControlRoute } from './control-server.js';

/**
 * What an auditor (or the administrator) asks the running gateway about its audit trail:
 * `POST /audit/verify` checks the HMAC chain with the device key the auditor never sees, and
 * records the reading (110101 Audit Log Used, PS3.15 A.5.3.2) with the proven account. The
 * gateway reads, never changes, the trail for this route.
 */
export function auditControlRoutes(deps: {
  dir: string;
  chainKey: Buffer;
  /** The spool's authenticated anchor (src/audit/anchor.ts): a head replayed with a matching truncation is found only against it. */
  anchor: { file: string; key: Buffer };
  audit: AuditEvents;
}): Record<string, ControlRoute> {
  return {
    'POST /audit/verify': async (_body, caller) => {
      const report = await verifyTrail(deps.dir, deps.chainKey, { anchor: deps.anchor });
      const text = describeVerify(report);
      deps.audit.auditLogRead({ by: caller.label, ...(report.ok ? {} : { outcome: text }) });
      return { ...report, text, recorded: `recorded by the running gateway (110101, by ${caller.label})` };
    },
  };
}
