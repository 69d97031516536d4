import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trailText } from '../helpers/audit-trail.js';
import { startStorescp } from '../helpers/dcmtk.js';
import { connect, record, startMosquitto } from '../helpers/mosquitto.js';
import { CLI, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { missingRoot, missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * Role separation (MLPS 2.0 三员分立) against the real gateway process: people are real
 * accounts (made here with useradd, removed after), the CLI runs as them (runuser), the kernel
 * decides which control socket each may open, and the gateway proves each caller's uid. MQTT:
 * a real Mosquitto with a password file and an ACL that uses %u.
 */
const OPS = 'pe-roles-ops';
const AUDS = 'pe-roles-auds';
const OP = 'pe-roles-op';
const AU = 'pe-roles-au';
const NOBODY = 'pe-roles-none';

const skip = skipSuite('role separation', missingRoot('creates accounts and groups, runs the CLI as them') ?? missingTools({ useradd: 'passwd package', runuser: 'util-linux', mosquitto_passwd: 'mosquitto' }));

function sh(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
}
function removeAccounts(): void {
  for (const u of [OP, AU, NOBODY]) sh('userdel', [u]);
  for (const g of [OPS, AUDS]) sh('groupdel', [g]);
}
const uidOf = (u: string) => Number(spawnSync('id', ['-u', u], { encoding: 'utf8' }).stdout.trim());

describe.skipIf(skip)('roles: administrator, operator, auditor', () => {
  const t = tempDir();
  beforeAll(() => {
    removeAccounts();
    sh('groupadd', [OPS]);
    sh('groupadd', [AUDS]);
    sh('useradd', ['-M', '-N', '-G', OPS, '-s', '/bin/sh', OP]);
    sh('useradd', ['-M', '-N', '-G', AUDS, '-s', '/bin/sh', AU]);
    sh('useradd', ['-M', '-N', '-s', '/bin/sh', NOBODY]);
    // The people must reach the configuration and the run directory (as /etc/pacs-edge and /run/pacs-edge).
    chmodSync(t.dir, 0o755);
  });
  afterAll(() => {
    removeAccounts();
    t.cleanup();
  });

  async function gateway(name: string, extra: Record<string, unknown> = {}) {
    const dir = path.join(t.dir, name);
    mkdirSync(path.join(dir, 'run'), { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    const pacs = await startStorescp(mkdirSync(path.join(dir, 'pacs'), { recursive: true })!, 'PACS');
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir,
      config: {
        log: { level: 'info' },
        control: { socket: path.join(dir, 'run', 'control.socket') },
        security: { roles: { operatorsGroup: OPS, auditorsGroup: AUDS } },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, compression: 'none' }],
        ...extra,
      },
    });
    chmodSync(configFile, 0o644);
    const gw = await runGateway(configFile, { port, spoolDir });
    const as = (user: string | undefined, ...args: string[]) =>
      user ? run('runuser', ['-u', user, '--', process.execPath, CLI, ...args, '--config', configFile], { timeoutMs: 30_000 }) : run(process.execPath, [CLI, ...args, '--config', configFile], { timeoutMs: 30_000 });
    const paused = async () => (JSON.parse((await as(undefined, 'status', '--json')).stdout) as { destinations: { paused?: boolean }[] }).destinations[0]!.paused === true;
    return { dir, gw, pacs, as, paused, stop: async () => (await gw.stop(), await pacs.stop()) };
  }

  it('an operator runs status and pause but not purge, restore or audit verify; an auditor verifies but cannot pause; someone with no role gets nothing; a stopped gateway\'s files are root\'s; the trail names each proven account', { timeout: 120_000 }, async () => {
    const g = await gateway('control');
    try {
      const opUid = uidOf(OP);
      const auUid = uidOf(AU);
      const status = await g.as(OP, 'status', '--json');
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ destinations: [{ name: 'pacs' }] });
      const pause = await g.as(OP, 'destination', 'pause', 'pacs');
      expect(pause.code, pause.stderr).toBe(0);
      expect(await g.paused()).toBe(true);

      const purge = await g.as(OP, 'dead-letter', 'purge', '--destination', 'pacs', '--yes');
      expect(purge.code).toBe(8);
      expect(purge.stderr).toMatch(new RegExp(`${OP} \\(operator\\) may not POST /dead-letters/purge: it is for the administrator role`));
      const restore = await g.as(OP, 'restore', '--in', path.join(g.dir, 'x.peb'), '--passphrase-file', '/dev/null', '--root', g.dir);
      expect(restore.code).toBe(8);
      expect(restore.stderr).toMatch(/administrator only/);
      const opVerify = await g.as(OP, 'audit', 'verify');
      expect(opVerify.code).toBe(8);
      expect(opVerify.stderr).toMatch(/may not POST \/audit\/verify/);

      const auVerify = await g.as(AU, 'audit', 'verify');
      expect(auVerify.code, auVerify.stderr).toBe(0);
      expect(auVerify.stdout).toMatch(/^audit trail intact/);
      const auPause = await g.as(AU, 'destination', 'resume', 'pacs');
      expect(auPause.code).toBe(8);
      expect(await g.paused(), 'the auditor changed nothing').toBe(true);

      const none = await g.as(NOBODY, 'status');
      expect(none.code).toBe(8);
      expect(none.stderr).toMatch(/may open none of the gateway's control sockets/);

      // Root is the administrator: it may do what the operator may not.
      const resume = await g.as(undefined, 'destination', 'resume', 'pacs');
      expect(resume.code, resume.stderr).toBe(0);
      expect(await g.paused()).toBe(false);

      expect(await g.gw.stop()).toBe(0);
      // Stopped: its files are root's; an operator is told so, never shown an empty spool.
      const stoppedStatus = await g.as(OP, 'status');
      expect(stoppedStatus.code).toBe(8);
      expect(stoppedStatus.stderr).toMatch(/of a stopped gateway is for root \(sudo\) and its owner only/);
      const stoppedPurge = await g.as(OP, 'dead-letter', 'purge', '--destination', 'pacs', '--yes');
      expect(stoppedPurge.code).toBe(8);
      const stoppedVerify = await g.as(AU, 'audit', 'verify');
      expect(stoppedVerify.code).toBe(8);
      expect(stoppedVerify.stderr).toMatch(/checking its files directly is for root or the state owner/);
      const trail = trailText(path.join(g.dir, 'audit'));
      expect(trail).toContain(`destination pacs paused by ${OP} (uid ${opUid}, operator)`);
      expect(trail).toContain(`control POST /dead-letters/purge refused to ${OP} (uid ${opUid}, operator): outside the role`);
      expect(trail).toContain(`control POST /audit/verify refused to ${OP} (uid ${opUid}, operator)`);
      expect(trail).toContain(`control POST /destinations/resume refused to ${AU} (uid ${auUid}, auditor)`);
      expect(trail).toMatch(new RegExp(`110101.*${AU} \\(uid ${auUid}, auditor\\)`));
      expect(trail).toContain('destination pacs resumed by root (uid 0, administrator)');
    } finally {
      await g.stop();
    }
  });

  it('a forged identity is refused: a link to another’s file, a replayed or made-up nonce, no proof; a claimed "by" is ignored', { timeout: 120_000 }, async () => {
    const g = await gateway('forged');
    const script = path.join(g.dir, 'forge.mjs');
    writeFileSync(
      script,
      `import http from 'node:http'; import fs from 'node:fs'; import path from 'node:path';
const [sock, who] = process.argv.slice(2);
const req = (p, body, headers = {}) => new Promise((resolve, reject) => {
  const b = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const r = http.request({ socketPath: sock, path: p, method: 'POST', agent: false, headers: { ...headers, ...(b ? { 'content-type': 'application/json', 'content-length': b.length } : {}) } }, (x) => {
    let d = ''; x.on('data', (c) => (d += c)); x.on('end', () => resolve({ status: x.statusCode, body: JSON.parse(d) }));
  });
  r.on('error', reject); r.end(b);
});
const nonce = async () => (await req('/who')).body.nonce;
const resume = (n) => req('/destinations/resume', { name: 'pacs', by: 'root' }, n ? { 'x-pacs-edge-proof': n } : {});
const out = {};
let n = await nonce(); fs.symlinkSync('/etc/passwd', path.join(who, n)); out.symlink = (await resume(n)).status;
n = await nonce(); const own = path.join(who, 'own-' + n); fs.writeFileSync(own, ''); fs.linkSync(own, path.join(who, n)); out.hardlink = (await resume(n)).status; fs.unlinkSync(own);
out.unissued = (await resume('ab'.repeat(32))).status;
out.none = (await resume(undefined)).status;
n = await nonce(); fs.writeFileSync(path.join(who, n), '', { flag: 'wx' });
const claimed = await req('/destinations/pause', { name: 'pacs', by: 'root' }, { 'x-pacs-edge-proof': n }); out.claimed = claimed.status;
fs.writeFileSync(path.join(who, n), '', { flag: 'wx' }); out.replayed = (await resume(n)).status;
console.log(JSON.stringify(out));
`,
    );
    chmodSync(script, 0o644);
    try {
      const r = await run('runuser', ['-u', OP, '--', process.execPath, script, path.join(g.dir, 'run', 'operator.socket'), path.join(g.dir, 'run', 'who')], { timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ symlink: 401, hardlink: 401, unissued: 401, none: 401, claimed: 200, replayed: 401 });
      expect(await g.paused(), 'only the proven pause acted').toBe(true);
      await waitFor(() => g.gw.logs.some((l) => l.msg === 'control request: the "by" it claimed is ignored' && l.claimed === 'root') || undefined, { what: 'the claim logged' });
      expect(await g.gw.stop()).toBe(0);
      const trail = trailText(path.join(g.dir, 'audit'));
      expect(trail).toContain(`destination pacs paused by ${OP} (uid ${uidOf(OP)}, operator)`);
      expect(trail).not.toContain('paused by root');
      expect(trail).toContain('not a regular file (a link is no proof)');
      expect(trail).toContain('more than one link');
      expect(trail).toContain('was not issued on this socket, was used already, or expired');
    } finally {
      await g.stop();
    }
  });

  it('MQTT: op1 pauses through its own topic; as op2 the broker drops it; an administrator command is refused by the gateway; the trail names op1', { timeout: 120_000 }, async () => {
    const bdir = path.join(t.dir, 'broker');
    mkdirSync(bdir);
    const users = { gw: 'gw-secret', op1: 'op1-secret', op2: 'op2-secret' };
    const broker = await startMosquitto(bdir, undefined, undefined, {
      users,
      acl: ['user gw', 'topic readwrite pacs-edge/#', '', 'pattern write pacs-edge/+/cmd/operator/%u/#', 'pattern read pacs-edge/+/cmd-result/operator/%u/#'],
    });
    const passwordFile = path.join(bdir, 'gw.pass');
    writeFileSync(passwordFile, users.gw);
    const g = await gateway('mqtt', { device: { id: 'edge-roles' }, health: { mqtt: { url: broker.url, username: 'gw', passwordFile, intervalSeconds: 1, commands: true } } });
    const results = await record(broker.url, 'pacs-edge/edge-roles/cmd-result/#', { username: 'gw', password: users.gw });
    const send = async (login: 'op1' | 'gw', topic: string, payload: string) => {
      const c = await connect(broker.url, 5000, { username: login, password: users[login] });
      await c.publishAsync(`pacs-edge/edge-roles/cmd/${topic}`, payload, { qos: 1 });
      await c.endAsync();
    };
    const result = (id: string) => waitFor(() => results.messages.find((m) => m.text.includes(`"id":"${id}"`)), { what: `result ${id}` });
    try {
      await waitFor(() => g.gw.logs.some((l) => l.msg === 'MQTT connected') || undefined, { what: 'MQTT connected' });
      await new Promise((r) => setTimeout(r, 500)); // the subscription follows the connection
      await send('op1', 'operator/op1/pause-forward', '{"id":"a","destination":"pacs"}');
      const a = await result('a');
      expect(a.topic).toBe('pacs-edge/edge-roles/cmd-result/operator/op1/pause-forward');
      expect(JSON.parse(a.text)).toMatchObject({ ok: true, result: { paused: ['pacs'] } });
      expect(await g.paused()).toBe(true);

      // op1 writing as op2, and as an administrator: the broker's ACL drops both.
      await send('op1', 'operator/op2/resume-forward', '{"id":"b"}');
      await send('op1', 'administrator/op1/resume-forward', '{"id":"c"}');
      // An account the ACL lets write anywhere still cannot use MQTT as an administrator.
      await send('gw', 'administrator/gw/resume-forward', '{"id":"d"}');
      expect(JSON.parse((await result('d')).text)).toMatchObject({ ok: false, error: expect.stringMatching(/administrator role takes no commands over MQTT/) });
      // Results come in order: d answered, so b and c would have been answered before it.
      expect(results.messages.some((m) => /"id":"[bc]"/.test(m.text))).toBe(false);
      expect(await g.paused(), 'nothing resumed').toBe(true);

      expect(await g.gw.stop()).toBe(0);
      const trail = trailText(path.join(g.dir, 'audit'));
      expect(trail).toContain('MQTT command pause-forward by mqtt:op1 (operator)');
      expect(trail).toContain('MQTT command resume-forward by mqtt:gw (administrator) refused: outside the role');
      expect(trail).not.toContain('op2');
    } finally {
      await results.close();
      await g.stop();
      await broker.stop();
    }
  });
});
