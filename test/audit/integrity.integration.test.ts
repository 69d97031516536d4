import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, nothingPending, run, runGateway, tempDir, waitFor, writeGatewayConfig, type GatewayProcess } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';
import { openTrail, start } from './helpers.js';

/*
 * Audit trail integrity with the real gateway process (src/audit/anchor.ts, verify.ts,
 * src/cli/audit.ts, src/cli/backup.ts) and the Patient participant of the instance messages
 * (audit.patientId, src/security/patient-pseudonym.ts). Each attack is made, and shown detected.
 */
const missing = missingTools({ storescu: 'apt-get install dcmtk', storescp: 'apt-get install dcmtk', echoscu: 'apt-get install dcmtk' });
const tmp = tempDir('pacs-edge-audit-integrity-');
afterAll(() => tmp.cleanup());
const running: GatewayProcess[] = [];
afterEach(async () => {
  for (const gw of running.splice(0)) await gw.kill();
});
let n = 0;

async function setup(config: Record<string, unknown> = {}) {
  const dir = path.join(tmp.dir, `w${++n}`);
  mkdirSync(dir);
  const { configFile, port, spoolDir } = await writeGatewayConfig({ dir, config });
  const auditDir = path.join(dir, 'audit');
  const start = async () => {
    const gw = await runGateway(configFile, { port, spoolDir });
    running.push(gw);
    return gw;
  };
  const cli = (args: string[], input?: string) => run(process.execPath, [CLI, ...args, '--config', configFile], { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) });
  return { dir, configFile, port, spoolDir, auditDir, start, cli, verify: () => cli(['audit', 'verify', '--json']) };
}

const records = (auditDir: string) =>
  readdirSync(auditDir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .flatMap((f) => readFileSync(path.join(auditDir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { seq: number; xml: string });

/** SHA-256 of every file under the audit directory, by relative path. */
function hashTree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) Object.assign(out, hashTree(dir, r));
    else out[r] = createHash('sha256').update(readFileSync(path.join(dir, r))).digest('hex');
  }
  return out;
}
/** The inbox is where a read-only command leaves its event for the gateway: new files there are expected, nothing else may change. */
const outsideInbox = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith('inbox/')));

const problem = (stdout: string) => (JSON.parse(stdout) as { problem?: { what: string; detail: string } }).problem;

describe.skipIf(skipSuite('the audit integrity tests', missing))('audit trail integrity and the Patient participant, real gateway', () => {
  it.each(['pseudonym', 'clear', 'none'] as const)('audit.patientId %s: the received and forwarded instances name the patient as configured, and the ID is in no log', async (mode) => {
    const pacsDir = path.join(tmp.dir, `pacs${++n}`);
    const studyDir = path.join(tmp.dir, `study${n}`);
    mkdirSync(pacsDir);
    mkdirSync(studyDir);
    const pacs = await startStorescp(pacsDir, 'PACS');
    try {
      const w = await setup({
        audit: { patientId: mode },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
      });
      const study = writeStudy(studyDir, 2, { patientId: 'PID-0042' });
      const gw = await w.start();
      expect((await storescu({ port: w.port, files: study.map((s) => s.file) })).acked).toEqual([1, 2]);
      await waitFor(() => nothingPending(w.spoolDir), { what: 'delivery' });
      expect(await gw.stop()).toBe(0);
      const pseudonym = await w.cli(['audit', 'pseudonym'], 'PID-0042\n');
      expect(pseudonym.code, pseudonym.stderr).toBe(0);
      const expected = { pseudonym: pseudonym.stdout.trim(), clear: 'PID-0042', none: undefined }[mode];
      const instanceMessages = records(w.auditDir).filter((r) => /csd-code="(110104|110102)"/.test(r.xml));
      // Received (C), begin transferring, forwarded (R).
      expect(instanceMessages.length).toBeGreaterThanOrEqual(3);
      for (const r of instanceMessages) {
        const patients = [...r.xml.matchAll(/<ParticipantObjectIdentification ParticipantObjectID="([^"]*)" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">/g)].map((m) => m[1]);
        expect(patients).toEqual(expected === undefined ? [] : [expected]);
      }
      if (mode !== 'clear') expect(JSON.stringify(records(w.auditDir))).not.toContain('PID-0042');
      // Never in the gateway's log, whatever the mode.
      expect(gw.logs.map((l) => JSON.stringify(l)).join('\n')).not.toContain('PID-0042');
      expect((await w.verify()).code).toBe(0);
    } finally {
      await pacs.stop();
    }
  }, 90_000);

  it('head replay: an old head.json copied back with the trail cut to match is found by `audit verify` (exit 3, rolled-back)', async () => {
    const w = await setup();
    expect(await (await w.start()).stop()).toBe(0);
    // The attacker's copy of the head, and the size of the trail it vouches for.
    const head = path.join(w.auditDir, 'head.json');
    copyFileSync(head, path.join(w.dir, 'head.old'));
    const sizes = Object.fromEntries(readdirSync(w.auditDir).filter((f) => f.endsWith('.log')).map((f) => [f, statSync(path.join(w.auditDir, f)).size]));
    const studyDir = path.join(w.dir, 'study');
    mkdirSync(studyDir);
    const gw = await w.start();
    expect((await storescu({ port: w.port, files: writeStudy(studyDir, 1).map((s) => s.file) })).acked).toEqual([1]);
    expect(await gw.stop()).toBe(0);
    // The attack: the records of the second run cut away, the old head put back.
    for (const f of readdirSync(w.auditDir).filter((x) => x.endsWith('.log'))) {
      if (sizes[f] === undefined) rmSync(path.join(w.auditDir, f));
      else truncateSync(path.join(w.auditDir, f), sizes[f]);
    }
    copyFileSync(path.join(w.dir, 'head.old'), head);
    const v = await w.verify();
    expect(v.code, v.stdout + v.stderr).toBe(3);
    expect(problem(v.stdout)).toMatchObject({ what: 'rolled-back', detail: expect.stringMatching(/but the anchor says seq \d+ was written/) });
    // The next start raises a Security Alert and keeps the gap: verify still fails afterwards.
    const after = await w.start();
    await after.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit trail restarts at seq \d+, but the previous run reached seq \d+/.test(l.msg));
    expect(await after.stop()).toBe(0);
    const again = await w.verify();
    expect(again.code).toBe(3);
    expect(problem(again.stdout)?.what).toBe('missing');
  }, 90_000);

  it('an anchor whose MAC fails is a failed verify (exit 3) and a Security Alert at the next start', async () => {
    const w = await setup();
    expect(await (await w.start()).stop()).toBe(0);
    const anchorFile = path.join(w.spoolDir, 'audit.anchor');
    const a = JSON.parse(readFileSync(anchorFile, 'utf8')) as { seq: number };
    writeFileSync(anchorFile, JSON.stringify({ ...a, seq: 1 }));
    const v = await w.verify();
    expect(v.code).toBe(3);
    expect(problem(v.stdout)).toMatchObject({ what: 'anchor-invalid', detail: expect.stringMatching(/fails its MAC/) });
    const gw = await w.start();
    await gw.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit anchor .* is invalid \(fails its MAC/.test(l.msg));
    expect(await gw.stop()).toBe(0);
  }, 60_000);

  it('verify on a stopped gateway repairs nothing: a deleted head stays a finding, a torn line stays, every file is byte-identical', async () => {
    const w = await setup();
    expect(await (await w.start()).stop()).toBe(0);
    rmSync(path.join(w.auditDir, 'head.json'));
    const last = readdirSync(w.auditDir).filter((f) => f.endsWith('.log')).sort().at(-1)!;
    appendFileSync(path.join(w.auditDir, last), '{"seq":');
    const before = hashTree(w.auditDir);
    for (let i = 0; i < 2; i++) {
      const v = await w.verify();
      expect(v.code, v.stdout + v.stderr).toBe(3);
      expect(problem(v.stdout)?.what).toBe('head-missing');
      expect(JSON.parse(v.stdout)).toMatchObject({ recorded: 'queued in the audit inbox: the gateway records it at its next start' });
    }
    const after = hashTree(w.auditDir);
    expect(outsideInbox(after)).toEqual(outsideInbox(before));
    expect(Object.keys(after).filter((k) => k.startsWith('inbox/'))).toHaveLength(2);
    // The readings are recorded by the next start (110101 Audit Log Used, outcome 4).
    const gw = await w.start();
    await waitFor(() => records(w.auditDir).filter((r) => r.xml.includes('csd-code="110101"') && r.xml.includes('EventOutcomeIndicator="4"')).length === 2, { what: 'the readings recorded' });
    expect(await gw.stop()).toBe(0);
  }, 60_000);

  it('backup on a stopped gateway leaves the audit directory byte-identical; its Security Alert is recorded at the next start', async () => {
    const w = await setup();
    expect(await (await w.start()).stop()).toBe(0);
    const pass = path.join(w.dir, 'pass');
    writeFileSync(pass, 'correct horse battery staple', { mode: 0o600 });
    const before = hashTree(w.auditDir);
    const b = await w.cli(['backup', '--out', path.join(w.dir, 'b.peb'), '--passphrase-file', pass]);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.stdout).toContain('audit: queued in the audit inbox');
    expect(outsideInbox(hashTree(w.auditDir))).toEqual(outsideInbox(before));
    const gw = await w.start();
    await waitFor(() => records(w.auditDir).some((r) => r.xml.includes('backup of the configuration and the device key')), { what: 'the backup recorded' });
    expect(await gw.stop()).toBe(0);
    expect((await w.verify()).code).toBe(0);
  }, 60_000);

  it('retention keeps a day past audit.retentionDays that the syslog collector has not confirmed; without syslog the gateway deletes it; verify never does', async () => {
    const oldDay = '20200105';
    const prepare = async (w: Awaited<ReturnType<typeof setup>>) => {
      // A trail begun on two old days, with its anchor, before the gateway's first start (the
      // newest day file is never deleted: it is the one being appended to).
      let now = new Date('2020-01-05T10:00:00Z');
      const t = await openTrail(w.dir, { anchorFile: path.join(w.spoolDir, 'audit.anchor'), now: () => now });
      t.trail.record(start);
      await t.trail.flush();
      now = new Date('2020-01-06T10:00:00Z');
      t.trail.record(start);
      await t.trail.stop();
      expect(existsSync(path.join(w.auditDir, `audit-${oldDay}.log`))).toBe(true);
    };
    const nobody = await freePort(); // nothing listens there: no record is ever confirmed
    const w = await setup({ audit: { retentionDays: 1, syslog: { host: '127.0.0.1', port: nobody } } });
    await prepare(w);
    const gw = await w.start();
    await gw.waitForLog((l) => l.msg === 'audit file past retention kept: not yet delivered to syslog' && l.file === `audit-${oldDay}.log`);
    expect(await gw.stop()).toBe(0);
    expect(existsSync(path.join(w.auditDir, `audit-${oldDay}.log`))).toBe(true);
    expect((await w.verify()).code).toBe(0);
    expect(existsSync(path.join(w.auditDir, `audit-${oldDay}.log`))).toBe(true);

    const plain = await setup({ audit: { retentionDays: 1 } });
    await prepare(plain);
    // Commands never apply retention: the old day is still there after verify.
    expect((await plain.verify()).code).toBe(0);
    expect(existsSync(path.join(plain.auditDir, `audit-${oldDay}.log`))).toBe(true);
    const g2 = await plain.start();
    await g2.waitForLog((l) => l.msg === 'audit file deleted after its retention period');
    expect(await g2.stop()).toBe(0);
    expect(existsSync(path.join(plain.auditDir, `audit-${oldDay}.log`))).toBe(false);
    expect((await plain.verify()).code).toBe(0);
  }, 90_000);
});
