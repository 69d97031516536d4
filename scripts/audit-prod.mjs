#!/usr/bin/env node
// CI supply-chain gate (docs/hardening.md, "CI supply chain"): `npm audit --omit=dev
// --audit-level=high` on the production dependencies. Fails (exit 1) when the advisory database
// lists a high or critical vulnerability in them. When the registry's audit endpoint cannot be
// reached (this build network answers its POST with 405), it says so loudly and passes, unless
// PACS_EDGE_AUDIT_REQUIRED=1: an unreachable database is not a finding, and the level is never
// lowered.
import { spawnSync } from 'node:child_process';

const r = spawnSync('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
let report;
try {
  report = JSON.parse(r.stdout);
} catch {
  report = undefined;
}
const counts = report?.metadata?.vulnerabilities;
if (!counts) {
  const why = report?.message ?? report?.error?.summary ?? (r.stderr.trim().split('\n').pop() || `exit ${r.status}`);
  console.log(`npm audit: NOT RUN: the advisory database could not be queried (${why})`);
  if (process.env.PACS_EDGE_AUDIT_REQUIRED === '1') process.exit(1);
  process.exit(0);
}
const high = (counts.high ?? 0) + (counts.critical ?? 0);
console.log(`npm audit (production dependencies): ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
for (const [name, v] of Object.entries(report.vulnerabilities ?? {})) {
  if (v.severity === 'high' || v.severity === 'critical') {
    const via = (v.via ?? []).map((x) => (typeof x === 'string' ? x : `${x.title} ${x.url ?? ''}`.trim())).join('; ');
    console.log(`  ${v.severity.toUpperCase()} ${name} ${v.range ?? ''}: ${via}${v.fixAvailable ? ' (fix available)' : ''}`);
  }
}
process.exit(high > 0 ? 1 : 0);
