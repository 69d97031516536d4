import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, type GatewayProcess, ROOT, run, type RunResult, runGateway, tempDir, waitFor, watchGateway, writeGatewayConfig } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';

/**
 * The operator-safety suite (issue 12): every command of the CLI's own table
 * (src/cli/commands.ts) is run against a **stopped** gateway holding queued objects and dead
 * letters, then against a **running** one, in one encryption profile; afterwards the PACS comes
 * up and every acknowledged object must arrive byte-identical — except exactly the dead letters
 * purged, whose purge must be in the audit trail. A command added to the table without a case
 * here fails the suite.
 *
 * The world: 4 CT acknowledged while the PACS refused every association (DCMTK `storescp
 * --refuse`: a permanent A-ASSOCIATE-RJ, so they are dead-lettered), then 6 CT acknowledged while
 * the PACS was down (queued). Each retry and each purge takes its own dead letter.
 */
export type Profile = 'aes-256-gcm' | 'gm' | 'chacha20-poly1305' | 'none';
type Phase = 'stopped' | 'running';

interface World {
  dir: string;
  configFile: string;
  port: number;
  spoolDir: string;
  pacsPort: number;
  gw: GatewayProcess | undefined;
  /** Every acknowledged object: SOP Instance UID → the file the modality sent. */
  sent: Map<string, string>;
  /** The study whose objects were dead-lettered, and the one queued while the PACS was down. */
  deadStudy: string;
  queuedStudy: string;
  /** Dead letters not used by a case yet (spool ids and their UIDs). */
  dead: { id: string; sopInstanceUid: string }[];
  purged: Set<string>;
  retried: number;
  passFile: string;
  /** What each command printed, for the failure messages. */
  transcript: string[];
}

interface StatusJson {
  running: boolean;
  spool: { objects: number; unreadable?: number };
  destinations: { name: string; pending: number; deadLetter: number }[];
}

const cli = async (w: World, args: string[], timeoutMs = 30_000, input?: string): Promise<RunResult> => {
  const r = await run(process.execPath, [CLI, ...args], { timeoutMs, ...(input === undefined ? {} : { input }) });
  w.transcript.push(`$ pacs-edge ${args.join(' ')}\n→ ${r.code}\n${r.stdout.slice(-800)}${r.stderr.slice(-800)}`);
  return r;
};

async function status(w: World): Promise<StatusJson> {
  const r = await cli(w, ['status', '--config', w.configFile, '--json']);
  expect(r.code, `status --json: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

/** What the spool must hold at every point: every acknowledged object not purged, queued or dead-lettered, none unreadable, nothing moved aside. */
async function expectIntact(w: World, label: string): Promise<void> {
  const s = await status(w);
  const owed = w.sent.size - w.purged.size;
  const d = s.destinations.find((x) => x.name === 'pacs')!;
  expect({ objects: s.spool.objects, owed: d.pending + d.deadLetter, unreadable: s.spool.unreadable ?? 0 }, `${label}: the spool still owes every acknowledged object`).toEqual({ objects: owed, owed, unreadable: 0 });
  expect(existsSync(path.join(w.spoolDir, 'lost')), `${label}: nothing moved aside`).toBe(false);
  // A purged object's file goes once its index deletion is durable (within a second).
  const files = () => readdirSync(path.join(w.spoolDir, 'objects')).filter((n) => n.endsWith('.dcm'));
  await waitFor(() => files().length === owed || undefined, { what: `${label}: ${owed} object files`, timeoutMs: 5000 }).catch(() => undefined);
  expect(files(), `${label}: every object file is in place`).toHaveLength(owed);
}

const ok = (r: RunResult, what: string) => expect(r.code, `${what}\n${r.stdout}\n${r.stderr}`).toBe(0);

function notRunning(r: RunResult): void {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.stderr).toContain('the gateway is not running');
}

async function statusFull(w: World): Promise<{ destinations: { name: string; paused?: boolean }[] }> {
  const r = await cli(w, ['status', '--config', w.configFile, '--json']);
  return JSON.parse(r.stdout) as never;
}

/** One case per command: what it must do, stopped and running. */
export const CASES: Record<string, (w: World, phase: Phase) => Promise<void>> = {
  run: async (w, phase) => {
    if (phase === 'stopped') {
      // Starting a stopped gateway is the command's purpose: start it and stop it again.
      const gw = await runGateway(w.configFile, { port: w.port, spoolDir: w.spoolDir });
      expect(await gw.stop(), 'a clean stop').toBe(0);
      return;
    }
    // A second gateway on the same configuration stops at once, and the first one keeps serving.
    const t0 = Date.now();
    const second = spawn(process.execPath, [CLI, 'run', '--config', w.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const watched = watchGateway(second);
    const code = await Promise.race([watched.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
    if (code === 'hung') second.kill('SIGKILL');
    expect(code, `a second gateway on a running one exits non-zero within 10 s:\n${watched.output().slice(-1500)}`).not.toBe('hung');
    expect(code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(watched.output()).toMatch(/already running/);
    expect((await status(w)).running, 'the first gateway still answers').toBe(true);
  },
  'check-config': async (w) => ok(await cli(w, ['check-config', '--config', w.configFile]), 'check-config'),
  init: async (w, phase) => {
    // A new configuration for this spool, written beside the one in use (never over it here).
    const out = path.join(w.dir, `init-${phase}.yaml`);
    const r = await cli(w, ['init', '--config', out, '--profile', path.join(ROOT, 'firmware-config/profiles/arm64-4c-2g.yaml'), '--device-id', 'edge-init', '--ae-title', 'EDGE_INIT', '--host', '127.0.0.1', '--port', String(w.port), '--modality-ae', 'STORESCU', '--modality-host', '127.0.0.1', '--pacs-ae', 'PACS', '--pacs-host', '127.0.0.1', '--pacs-port', String(w.pacsPort), '--spool', w.spoolDir]);
    ok(r, 'init');
    expect(r.stdout).toContain(`${out}: valid`);
  },
  status: async (w, phase) => {
    const text = await cli(w, ['status', '--config', w.configFile]);
    ok(text, 'status');
    expect(text.stdout).toContain(phase === 'running' ? 'running (pid' : 'NOT RUNNING');
    expect((await status(w)).running).toBe(phase === 'running');
    // --watch: a live view that holds nothing between its readings.
    const p = spawn(process.execPath, [CLI, 'status', '--config', w.configFile, '--watch', '0.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const redraws = () => out.split('\x1b[2J\x1b[H').length - 1;
    await waitFor(() => redraws() >= 2 || undefined, { what: 'two redraws of status --watch', timeoutMs: 15_000 }).catch(() => undefined);
    p.kill('SIGINT');
    await new Promise((r) => p.once('exit', r));
    expect(redraws(), 'status --watch redraws').toBeGreaterThanOrEqual(2);
    expect(out).toContain('pacs');
  },
  'dead-letter list': async (w) => {
    const r = await cli(w, ['dead-letter', 'list', '--config', w.configFile, '--json']);
    ok(r, 'dead-letter list');
    const list = JSON.parse(r.stdout) as { id: string }[];
    for (const d of w.dead) expect(list.map((x) => x.id)).toContain(d.id);
  },
  'dead-letter show': async (w) => {
    // Reads one dead letter (here refused by association, so no Error Comment): nothing changes.
    const d = w.dead[0]!;
    const r = await cli(w, ['dead-letter', 'show', '--config', w.configFile, '--destination', 'pacs', '--id', d.id]);
    ok(r, 'dead-letter show');
    expect(r.stdout).toContain(`id            ${d.id}`);
  },
  'dead-letter retry': async (w) => {
    const d = w.dead.shift()!;
    const r = await cli(w, ['dead-letter', 'retry', '--config', w.configFile, '--destination', 'pacs', '--id', d.id]);
    ok(r, 'dead-letter retry');
    expect(r.stdout).toContain('1 object(s) queued again for pacs');
    expect(r.stdout).toMatch(/audit: (seq \d+|recorded by the running gateway)/);
    w.retried++;
  },
  'dead-letter purge': async (w) => {
    const d = w.dead.shift()!;
    const refused = await cli(w, ['dead-letter', 'purge', '--config', w.configFile, '--destination', 'pacs', '--id', d.id]);
    expect(refused.code, 'purge without --yes is refused').toBe(2);
    const r = await cli(w, ['dead-letter', 'purge', '--config', w.configFile, '--destination', 'pacs', '--id', d.id, '--yes']);
    ok(r, 'dead-letter purge');
    expect(r.stdout).toContain('1 dead letter(s) purged for pacs');
    expect(r.stdout).toMatch(/audit: (seq \d+|recorded by the running gateway)/);
    w.purged.add(d.sopInstanceUid);
  },
  studies: async (w) => {
    const r = await cli(w, ['studies', '--config', w.configFile, '--json']);
    ok(r, 'studies');
    const list = (JSON.parse(r.stdout) as { studies: { studyInstanceUid: string; instances: number }[] }).studies;
    expect(list.map((x) => x.studyInstanceUid).sort()).toEqual([w.deadStudy, w.queuedStudy].sort());
    expect(list.find((x) => x.studyInstanceUid === w.queuedStudy)?.instances).toBe(6);
  },
  study: async (w) => {
    const r = await cli(w, ['study', w.queuedStudy, '--config', w.configFile, '--json']);
    ok(r, 'study');
    expect(JSON.parse(r.stdout)).toMatchObject({ studyInstanceUid: w.queuedStudy, instances: 6 });
  },
  resend: async (w) => {
    // The queued study is queued already: nothing changes, and it says so.
    const r = await cli(w, ['resend', '--study', w.queuedStudy, '--config', w.configFile]);
    ok(r, 'resend');
    expect(r.stdout).toMatch(/0 object\(s\) queued again for pacs; 6 were still queued/);
  },
  // Acting on the running process: with the gateway stopped they say so and change nothing.
  'destination pause': async (w, phase) => {
    const r = await cli(w, ['destination', 'pause', 'pacs', '--config', w.configFile]);
    if (phase === 'stopped') return notRunning(r);
    ok(r, 'destination pause');
    expect(r.stdout).toContain('pacs: paused');
    expect((await statusFull(w)).destinations[0]).toMatchObject({ paused: true });
  },
  'destination resume': async (w, phase) => {
    const r = await cli(w, ['destination', 'resume', 'pacs', '--config', w.configFile]);
    if (phase === 'stopped') return notRunning(r);
    ok(r, 'destination resume');
    expect((await statusFull(w)).destinations[0]).toMatchObject({ paused: false });
  },
  'destination echo': async (w, phase) => {
    const r = await cli(w, ['destination', 'echo', 'pacs', '--config', w.configFile]);
    if (phase === 'stopped') return notRunning(r);
    // The PACS is down in this phase: a real C-ECHO fails, and says why.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pacs-edge destination echo: .*(ECONNREFUSED|connect)/i);
  },
  'log-level': async (w, phase) => {
    const r = await cli(w, ['log-level', 'info', '--config', w.configFile]);
    if (phase === 'stopped') return notRunning(r);
    ok(r, 'log-level');
  },
  reload: async (w, phase) => {
    const r = await cli(w, ['reload', '--config', w.configFile]);
    if (phase === 'stopped') return notRunning(r);
    ok(r, 'reload');
    expect(r.stdout).toContain('reloaded: no setting changed');
  },
  'audit verify': async (w) => {
    const r = await cli(w, ['audit', 'verify', '--config', w.configFile]);
    ok(r, 'audit verify');
    expect(r.stdout).toMatch(/reading recorded: (queued in the audit inbox|recorded by the running gateway \(110101, by root \(uid 0, administrator\)\))/);
  },
  'audit pseudonym': async (w) => {
    const r = await cli(w, ['audit', 'pseudonym', '--config', w.configFile], 30_000, 'PID-SAFETY\n');
    ok(r, 'audit pseudonym');
    expect(r.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
  },
  backup: async (w, phase) => {
    const out = path.join(w.dir, `backup-${phase}.peb`);
    ok(await cli(w, ['backup', '--config', w.configFile, '--out', out, '--passphrase-file', w.passFile]), 'backup');
    expect(existsSync(out)).toBe(true);
  },
  restore: async (w, phase) => {
    const keyFile = path.join(w.dir, 'keys', 'device.key');
    const keyBefore = readFileSync(keyFile);
    const r = await cli(w, ['restore', '--in', path.join(w.dir, `backup-${phase}.peb`), '--passphrase-file', w.passFile, '--root', '/', '--force']);
    if (phase === 'running') {
      expect(r.code, `restore under a running gateway is refused\n${r.stdout}${r.stderr}`).toBe(6);
      expect(r.stderr).toMatch(/is running .*stop it first/);
    } else {
      ok(r, 'restore on a stopped gateway (this box\'s own backup)');
    }
    expect(readFileSync(keyFile).equals(keyBefore), 'the device key is the one the spool was sealed with').toBe(true);
  },
  manifest: async (w) => ok(await cli(w, ['manifest', '--check']), 'manifest --check'),
  version: async (w) => {
    const r = await cli(w, ['--version']);
    ok(r, '--version');
    expect(r.stdout).toMatch(/^pacs-edge \S+ \(node \d+\.\d+\.\d+\)/);
  },
  help: async (w) => {
    const r = await cli(w, ['help']);
    ok(r, 'help');
    for (const c of COMMANDS) expect(r.stdout).toContain(`pacs-edge ${c.name}`);
  },
};

/** Wait until something accepts TCP connections on the port (a storescp that refuses every association still listens). */
async function listening(port: number): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port }, () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      }),
    { what: `a listener on ${port}`, timeoutMs: 10_000 },
  );
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
}

/** The whole scenario in one encryption profile; registered by test/cli/operator-safety-<profile>.integration.test.ts. */
export function operatorSafetySuite(profile: Profile): void {
  describe(`operator safety, spool.encryption.profile ${profile}: every CLI command against a stopped and a running gateway`, () => {
    it('has a case for every command in the CLI table (a new command needs one)', () => {
      expect(COMMANDS.map((c) => c.name).filter((n) => !(n in CASES))).toEqual([]);
    });

    it('leaves every acknowledged object deliverable: all arrive byte-identical but exactly the purged dead letters, whose purges are audited', { timeout: 240_000 }, async () => {
      const t = tempDir();
      const pacsDir = path.join(t.dir, 'pacs');
      mkdirSync(pacsDir);
      const pacsPort = await freePort();
      const passFile = path.join(t.dir, 'passphrase');
      writeFileSync(passFile, 'correct horse battery staple\n', { mode: 0o600 });
      const { configFile, port, spoolDir } = await writeGatewayConfig({
        dir: t.dir,
        spool: { encryption: { profile } },
        config: {
          forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }],
          forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 },
          log: { level: 'info' },
        },
      });
      const w: World = { dir: t.dir, configFile, port, spoolDir, pacsPort, gw: undefined, sent: new Map(), deadStudy: '', queuedStudy: '', dead: [], purged: new Set(), retried: 0, passFile, transcript: [] };
      let refuser: ChildProcess | undefined;
      let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
      try {
        // 1. Dead letters: a PACS that refuses every association, permanently.
        refuser = spawn('storescp', ['--refuse', '-aet', 'PACS', String(pacsPort)], { stdio: 'ignore' });
        await listening(pacsPort);
        w.gw = await runGateway(configFile, { port, spoolDir });
        const deadStudy = writeStudy(path.join(t.dir), 4);
        mkdirSync(path.join(t.dir, 'queued'));
        const queuedStudy = writeStudy(path.join(t.dir, 'queued'), 6);
        w.deadStudy = deadStudy[0]!.studyUid;
        w.queuedStudy = queuedStudy[0]!.studyUid;
        expect((await storescu({ port, files: deadStudy.map((s) => s.file) })).acked).toHaveLength(4);
        for (const s of deadStudy) w.sent.set(s.uid, s.file);
        await waitFor(async () => (await status(w)).destinations[0]!.deadLetter === 4 || undefined, { what: '4 dead letters', timeoutMs: 30_000 });
        await stopProcess(refuser);
        // 2. Queued objects: the PACS is down now.
        expect((await storescu({ port, files: queuedStudy.map((s) => s.file) })).acked).toHaveLength(6);
        for (const s of queuedStudy) w.sent.set(s.uid, s.file);
        const list = JSON.parse((await cli(w, ['dead-letter', 'list', '--config', configFile, '--json'])).stdout) as { id: string; sopInstanceUid: string }[];
        w.dead = list.map((d) => ({ id: d.id, sopInstanceUid: d.sopInstanceUid }));
        expect(w.dead).toHaveLength(4);
        await expectIntact(w, 'before any command');
        expect(await w.gw.stop()).toBe(0);
        w.gw = undefined;

        // 3. Every command on the stopped gateway, then on the running one.
        for (const phase of ['stopped', 'running'] as const) {
          if (phase === 'running') w.gw = await runGateway(configFile, { port, spoolDir });
          for (const c of COMMANDS) {
            await CASES[c.name]!(w, phase);
            await expectIntact(w, `after "${c.name}" on the ${phase} gateway`);
          }
          if (phase === 'running') {
            expect(await w.gw!.stop()).toBe(0);
            w.gw = undefined;
          }
        }
        expect(w.purged.size).toBe(2);
        expect(w.retried).toBe(2);

        // 4. The PACS comes up (accepting now): everything owed arrives; the purged ones do not.
        pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort, fork: true });
        w.gw = await runGateway(configFile, { port, spoolDir });
        const owed = w.sent.size - w.purged.size;
        await waitFor(async () => {
          const d = (await status(w)).destinations[0]!;
          return (d.pending === 0 && d.deadLetter === 0 && readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length >= owed) || undefined;
        }, { what: `${owed} objects at the PACS`, timeoutMs: 60_000 });
        const atPacs = new Map<string, Buffer>();
        for (const n of readdirSync(pacsDir).filter((x) => x.endsWith('.dcm'))) {
          const b = readFileSync(path.join(pacsDir, n));
          atPacs.set(readPart10Header(b)!.sopInstanceUid, b);
        }
        const lost: string[] = [];
        for (const [uid, file] of w.sent) {
          if (w.purged.has(uid)) continue;
          const got = atPacs.get(uid);
          if (!got || !datasetBytes(got).equals(datasetBytes(file))) lost.push(uid);
        }
        const purgedArrived = [...w.purged].filter((u) => atPacs.has(u));
        // 5. The purges (and retries) are in the audit trail, with the operator, and the chain is intact.
        expect(await w.gw.stop()).toBe(0);
        w.gw = undefined;
        const records = readdirSync(path.join(t.dir, 'audit'))
          .filter((n) => /^audit-\d{8}\.log$/.test(n))
          .flatMap((n) => readFileSync(path.join(t.dir, 'audit', n), 'utf8').split('\n').filter(Boolean))
          .map((l) => (JSON.parse(l) as { xml: string }).xml);
        const purges = records.filter((x) => x.includes('csd-code="110105"') && x.includes('purged by an operator'));
        const requeues = records.filter((x) => x.includes('csd-code="110103"'));
        const verify = await cli(w, ['audit', 'verify', '--config', configFile]);
        recordFault({
          key: `12-operator-safety-${profile}`,
          fault: `every CLI command (${COMMANDS.length}) on a stopped, then a running gateway, spool.encryption.profile ${profile}`,
          test: `test/cli/operator-safety-${profile}.integration.test.ts`,
          injected: COMMANDS.length * 2,
          acknowledged: w.sent.size,
          lost: lost.length + purgedArrived.length,
          duplicated: 0,
          recoverySeconds: null,
          notes: `${w.sent.size - w.purged.size} delivered byte-identical to storescp after the commands; exactly the 2 purged dead letters missing (${purges.length} purge and ${requeues.length} requeue audit records); audit chain intact`,
        });
        expect(lost, `acknowledged objects missing or different at the PACS\n${w.transcript.join('\n')}`).toEqual([]);
        expect(purgedArrived, 'purged dead letters never reach the PACS').toEqual([]);
        expect(purges.length, 'each purge is audited (110105)').toBe(2);
        expect(purges.every((x) => x.includes('UserIsRequestor="true"') && x.includes('UserTypeCode="1"')), 'the operator is the requestor').toBe(true);
        expect(requeues.length, 'each retry is audited (110103)').toBe(2);
        ok(verify, 'audit verify after the run');
      } finally {
        await w.gw?.stop();
        if (refuser) await stopProcess(refuser);
        await pacs?.stop();
        t.cleanup();
      }
    });
  });
}
