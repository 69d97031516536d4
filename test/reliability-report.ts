import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import type { FaultResult } from './helpers/reliability.js';
import { RELIABILITY_DIR } from './helpers/reliability.js';

/**
 * Vitest global setup: clears the fault rows before the run and, when
 * PACS_EDGE_RELIABILITY_OUT names a file (`make test`, `make chaos`), writes the rows the
 * fault tests recorded into it as the reliability report (docs/reliability.md).
 */
export function setup(): void {
  rmSync(RELIABILITY_DIR, { recursive: true, force: true });
}

export function teardown(): void {
  const out = process.env.PACS_EDGE_RELIABILITY_OUT;
  if (!out || !existsSync(RELIABILITY_DIR)) return;
  const rows = readdirSync(RELIABILITY_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(`${RELIABILITY_DIR}/${f}`, 'utf8')) as FaultResult);
  if (rows.length === 0) return;
  const lost = rows.reduce((n, r) => n + r.lost, 0);
  const lines = [
    '# Reliability under faults',
    '',
    `Produced by the test suite itself (\`${process.env.PACS_EDGE_CHAOS ? 'make chaos' : 'make test'}\`) on ${new Date().toISOString()},`,
    `Node ${process.version}, ${os.arch()}, ${os.cpus().length} cores. Each row is one fault test; its figures are counted by the`,
    'test (acknowledged = Success answers the modality saw; lost = acknowledged objects missing or different at the PACS or in the',
    'spool; duplicated = objects the PACS received more than once, allowed after a crash). Recovery is the longest time from the',
    'end of a fault to normal service again.',
    '',
    `**Lost in this run: ${lost}.**`,
    '',
    '| Fault | Injected | Acknowledged | Lost | Duplicated | Recovery (s) | Also checked | Test |',
    '|---|---:|---:|---:|---:|---:|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.injected} | ${r.acknowledged} | ${r.lost} | ${r.duplicated} | ${r.recoverySeconds === null ? '–' : r.recoverySeconds.toFixed(1)} | ${r.notes} | \`${r.test}\` |`,
    ),
    '',
  ];
  writeFileSync(out, lines.join('\n'));
}
