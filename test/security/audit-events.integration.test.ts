import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, nothingPending, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * The audit trail of a real working day, end to end: a modality stores, the gateway forwards,
 * the configuration is edited, the gateway restarts — and every one of those is in the trail as
 * the PS3.15 A.5 message it should be, the chain verifies, and verifying is itself audited.
 */
function trail(auditDir: string): { xml: string }[] {
  return readdirSync(auditDir)
    .filter((n) => n.endsWith('.log'))
    .sort()
    .flatMap((n) => readFileSync(path.join(auditDir, n), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { xml: string });
}
const count = (records: { xml: string }[], re: RegExp) => records.filter((r) => re.test(r.xml)).length;

describe('audit trail of receive, forward, configuration change and restart', () => {
  it('records each event as its DICOM audit message, and the chain verifies', async () => {
    const tmp = tempDir('pacs-edge-audit-events-');
    mkdirSync(path.join(tmp.dir, 'study'));
    mkdirSync(path.join(tmp.dir, 'pacs'));
    const study = writeStudy(path.join(tmp.dir, 'study'), 3, { rows: 32, cols: 32 });
    const pacs = await startStorescp(path.join(tmp.dir, 'pacs'), 'PACS');
    const port = await freePort();
    const config = { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 } };
    try {
      let gw = await startGateway({ dir: tmp.dir, port, config });
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toEqual([1, 2, 3]);
      await waitFor(() => nothingPending(gw.spoolDir), { what: 'delivery' });
      expect(await gw.stop()).toBe(0);
      // An operator edits the configuration (a security setting: the caller allowlist), then starts
      // again (the helper rewrites the same configuration file).
      const again = await startGateway({ dir: tmp.dir, port, config, receive: { callers: [{ aeTitle: 'STORESCU' }] } });
      expect(again.configFile).toBe(gw.configFile);
      await again.waitForLog((l) => l.msg === 'configuration changed since the last start (audited)' && l.security === true);
      expect(await again.stop()).toBe(0);
      gw = again;

      const auditDir = path.join(tmp.dir, 'audit');
      const records = trail(auditDir);
      const start = /<EventID csd-code="110100"[^>]*\/>[\s\S]*<EventTypeCode csd-code="110120"/;
      const stop = /<EventID csd-code="110100"[^>]*\/>[\s\S]*<EventTypeCode csd-code="110121"/;
      expect(count(records, start)).toBe(2);
      expect(count(records, stop)).toBe(2);
      // Received (action C) and forwarded (action R): one message each for the study's 3 instances.
      const received = records.filter((r) => /csd-code="110104"/.test(r.xml) && /EventActionCode="C"/.test(r.xml));
      const forwarded = records.filter((r) => /csd-code="110104"/.test(r.xml) && /EventActionCode="R"/.test(r.xml));
      expect(received.length).toBeGreaterThanOrEqual(1);
      expect(forwarded.length).toBeGreaterThanOrEqual(1);
      expect(received.some((r) => r.xml.includes('STORESCU'))).toBe(true);
      expect(forwarded.some((r) => r.xml.includes('PACS'))).toBe(true);
      expect(count(records, /csd-code="110102"/)).toBeGreaterThanOrEqual(1);
      expect(count(records, /csd-code="110113"[\s\S]*csd-code="110129"/)).toBe(1); // security configuration changed
      // The chain verifies, and reading it is audited (110101): verify only reads, so the stopped
      // gateway records the reading from its inbox at its next start.
      const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', gw.configFile]);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect(count(trail(auditDir), /csd-code="110101"/)).toBe(0);
      const next = await startGateway({ dir: tmp.dir, port, config, receive: { callers: [{ aeTitle: 'STORESCU' }] } });
      expect(await next.stop()).toBe(0);
      expect(count(trail(auditDir), /csd-code="110101"/)).toBe(1);
    } finally {
      await pacs.stop();
      tmp.cleanup();
    }
  }, 90_000);
});

describe('audit trail deleted while the gateway was stopped', () => {
  it('the next start says so in a Security Alert of the new chain (the spool keeps an anchor)', async () => {
    const tmp = tempDir('pacs-edge-audit-anchor-');
    const { rmSync } = await import('node:fs');
    try {
      const port = await freePort();
      const first = await startGateway({ dir: tmp.dir, port });
      expect(await first.stop()).toBe(0);
      rmSync(path.join(tmp.dir, 'audit'), { recursive: true });
      const again = await startGateway({ dir: tmp.dir, port });
      await again.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit trail restarts at seq \d+, but the previous run reached seq \d+/.test(l.msg));
      expect(await again.stop()).toBe(0);
      const records = trail(path.join(tmp.dir, 'audit'));
      expect(count(records, /AUDIT-CHAIN/)).toBe(1);
    } finally {
      tmp.cleanup();
    }
  }, 60_000);
});
