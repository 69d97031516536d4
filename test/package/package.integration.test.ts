import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, ROOT, run, tempDir, waitFor, watchGateway } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';
import { missingRoot, missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * Issue 13: the gateway as a Debian package, with real dpkg and apt on this machine (root; CI
 * runs as root). `make package` builds both architectures twice from this commit: the .deb files
 * must be byte-identical. Then version A goes in from a signed flat apt repository (apt-get
 * install), a field engineer's `pacs-edge init` edits the conffile, objects are queued while the
 * PACS is down, B replaces A (dpkg -i), the PACS comes up: every object arrives byte-identical; a
 * downgrade to A works the same; an upgrade killed mid-unpack leaves a box that still receives;
 * `dpkg -r` keeps the state; `dpkg --purge` keeps it while anything is unsent and says so, and
 * removes it once nothing is.
 *
 * The test installs into this machine's root file system. It refuses to run where pacs-edge is
 * already installed (it would replace a real installation).
 */
const A = '0.0.1~pkgtest';
const B = '0.0.2~pkgtest';
const PKG = path.join(ROOT, 'build/pkg');
const WORK = tempDir('pacs-edge-pkgtest-');
const debs = path.join(WORK.dir, 'debs');
const deb = (v: string, arch = 'amd64') => path.join(debs, `pacs-edge_${v}_${arch}.deb`);

function sh(cmd: string, args: string[], opts: { env?: Record<string, string>; ok?: boolean } = {}): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', ...opts.env }, timeout: 300_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (opts.ok !== false && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${out.slice(-4000)}`);
  return { code: r.status, out };
}

function makePackage(version: string, arches: string, extra: Record<string, string> = {}): void {
  // The script of `make package`, without the target's `make build`: other test files run the
  // gateway from dist/ meanwhile, and a rebuild under them would start gateways from half-written
  // files (the script compiles src/ into a directory of its own). Level 1 keeps the test quick;
  // the default (6) changes only the size.
  sh('bash', [path.join(ROOT, 'scripts/package.sh')], { env: { VERSION: version, ARCHES: arches, DEB_XZ_LEVEL: '1', REPO_KEY: '', ...extra } });
}

const installed = () => sh('dpkg-query', ['-W', '-f=${Status} ${Version}', 'pacs-edge'], { ok: false }).out;

/** The gateway from the package, started by root (it becomes the service user, the owner of /var/lib/pacs-edge). */
async function startInstalled(): Promise<{ proc: ChildProcess; stop: () => Promise<number | null>; logs: () => string }> {
  const proc = spawn('/usr/bin/pacs-edge', ['run', '--config', '/etc/pacs-edge/gateway.yaml'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
  const w = watchGateway(proc);
  await w.waitForLog((l) => l.msg === 'gateway listening', 30_000);
  return { proc, logs: w.output, stop: async () => (proc.exitCode === null ? (proc.kill('SIGTERM'), w.exited) : proc.exitCode) };
}

async function statusJson(): Promise<{ running: boolean; spool: { objects: number }; destinations: { pending: number; deadLetter: number }[] }> {
  const r = await run('/usr/bin/pacs-edge', ['status', '--config', '/etc/pacs-edge/gateway.yaml', '--json']);
  if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as never;
}

const missing =
  missingRoot('dpkg, apt, a service user') ??
  missingTools({ dpkg: 'a Debian system', 'apt-get': 'a Debian system', 'dpkg-scanpackages': 'apt-get install dpkg-dev; make deps installs it', gpg: 'apt-get install gnupg; make deps installs it', 'systemd-analyze': 'apt-get install systemd' });

describe.skipIf(skipSuite('the package test', missing))('the Debian package (make package, dpkg, apt)', () => {
  let gnupg: string;
  let keyId: string;
  beforeAll(() => {
    if (!installed().includes('not-installed') && installed().includes('installed') && !process.env.PACS_EDGE_PACKAGE_TEST_REPLACE) {
      throw new Error(`pacs-edge is installed on this machine (${installed()}): the package test would replace it (set PACS_EDGE_PACKAGE_TEST_REPLACE=1 to allow)`);
    }
    mkdirSync(debs, { recursive: true });
    // A throwaway signing key for the flat repository.
    gnupg = path.join(WORK.dir, 'gnupg');
    mkdirSync(gnupg, { mode: 0o700 });
    sh('gpg', ['--batch', '--homedir', gnupg, '--passphrase', '', '--quick-gen-key', 'pacs-edge test repository <repo@localhost>', 'ed25519', 'sign', 'never']);
    keyId = /^fpr:+([0-9A-F]+):/m.exec(sh('gpg', ['--batch', '--homedir', gnupg, '--with-colons', '--list-keys']).out)![1]!;
  }, 120_000);
  afterAll(() => {
    // gpg started an agent for the throwaway key: it goes with it.
    if (gnupg) sh('gpgconf', ['--homedir', gnupg, '--kill', 'gpg-agent'], { ok: false });
    if (installed().includes('install ok')) sh('dpkg', ['--purge', 'pacs-edge'], { ok: false });
    rmSync('/var/lib/pacs-edge', { recursive: true, force: true });
    rmSync('/etc/pacs-edge', { recursive: true, force: true });
    WORK.cleanup();
  });

  it('two builds of this commit give byte-identical packages for both architectures, each with its own Node 24 and its own LevelDB binding', { timeout: 600_000 }, () => {
    makePackage(A, 'amd64 arm64', { REPO_KEY: keyId, GNUPGHOME: gnupg });
    for (const a of ['amd64', 'arm64']) copyFileSync(path.join(PKG, `pacs-edge_${A}_${a}.deb`), deb(A, a));
    const repo = path.join(WORK.dir, 'repo');
    sh('cp', ['-r', path.join(PKG, 'repo'), repo]);
    makePackage(A, 'amd64 arm64');
    for (const a of ['amd64', 'arm64']) {
      expect(readFileSync(path.join(PKG, `pacs-edge_${A}_${a}.deb`)).equals(readFileSync(deb(A, a))), `${a}: the second build is byte-identical`).toBe(true);
      const contents = sh('dpkg-deb', ['-c', deb(A, a)]).out;
      const info = sh('dpkg-deb', ['-I', deb(A, a)]).out;
      expect(info).toMatch(new RegExp(`Architecture: ${a}`));
      expect(info).toMatch(/Depends: libc6 \(>= 2\.28\), libgcc-s1 \(>= 3\.4\), libstdc\+\+6 \(>= 5\.2\), adduser, passwd/);
      expect(contents).toContain('./usr/lib/pacs-edge/node/bin/node');
      expect(contents).toContain('./usr/lib/pacs-edge/dist/MANIFEST.sha256');
      expect(contents).toContain('./etc/pacs-edge/gateway.yaml');
      expect(contents).toContain('./lib/systemd/system/pacs-edge.service');
      expect(contents).toContain('./usr/share/doc/pacs-edge/copyright');
      expect(contents).toContain('./usr/share/doc/pacs-edge/THIRD-PARTY-NOTICES.gz');
      expect(contents).toContain('./usr/share/pacs-edge/profiles/arm64-4c-2g.yaml');
      // Production dependencies only, and only this architecture's native binding.
      for (const dev of ['typescript', 'vitest', 'ajv-formats', '@types/node', 'dcmjs', 'dcmjs-dimse', 'dicom-parser']) expect(contents, `${dev} is not shipped`).not.toContain(`/node_modules/${dev}/package.json`);
      const natives = contents.split('\n').filter((l) => l.endsWith('.node')).map((l) => l.split(' ').pop());
      expect(natives).toEqual([`./usr/lib/pacs-edge/node_modules/classic-level/prebuilds/linux-${a === 'amd64' ? 'x64' : 'arm64'}/classic-level${a === 'amd64' ? '' : '.armv8'}.node`]);
      expect(contents.split('\n').every((l) => !l || / root\/root /.test(l)), 'every file root:root').toBe(true);
    }
    // The licence and the notices of every bundled package and of Node.
    const x = path.join(WORK.dir, 'x');
    sh('dpkg-deb', ['-x', deb(A), x]);
    expect(readFileSync(path.join(x, 'usr/share/doc/pacs-edge/copyright'), 'utf8')).toContain('Apache License');
    const notices = sh('sh', ['-c', `zcat ${path.join(x, 'usr/share/doc/pacs-edge/THIRD-PARTY-NOTICES.gz')}`]).out;
    for (const p of ['level ', 'mqtt ', 'pino ', 'classic-level ', 'Node.js 24.']) expect(notices).toContain(p);
    expect(readdirSync(repo).sort()).toEqual(['InRelease', 'Packages', 'Packages.gz', 'Release', 'Release.gpg', 'pacs-edge-archive-keyring.gpg', `pacs-edge_${A}_amd64.deb`, `pacs-edge_${A}_arm64.deb`].sort());
    makePackage(B, 'amd64');
    copyFileSync(path.join(PKG, `pacs-edge_${B}_amd64.deb`), deb(B));
  });

  it('installs from a signed apt repository, upgrades and downgrades with queued objects, survives an upgrade cut short, and removes nothing unsent', { timeout: 600_000 }, async () => {
    expect(existsSync(deb(B)), 'the packages of the previous test').toBe(true);
    const repo = path.join(WORK.dir, 'repo');
    const aptDir = path.join(WORK.dir, 'apt');
    mkdirSync(path.join(aptDir, 'lists/partial'), { recursive: true });
    // The repository must be readable by apt's own user.
    sh('chmod', ['-R', 'a+rX', WORK.dir]);
    writeFileSync(path.join(aptDir, 'sources.list'), `deb [signed-by=${repo}/pacs-edge-archive-keyring.gpg] file:${repo} ./\n`);
    const apt = ['-o', `Dir::Etc::SourceList=${aptDir}/sources.list`, '-o', 'Dir::Etc::SourceParts=/dev/null', '-o', `Dir::State::Lists=${aptDir}/lists`, '-o', 'APT::Get::List-Cleanup=0'];
    sh('apt-get', [...apt, 'update']);
    const aptInstall = sh('apt-get', [...apt, 'install', '-y', '--no-install-recommends', `pacs-edge=${A}`]);
    expect(installed()).toBe(`install ok installed ${A}`);
    expect(aptInstall.out).toContain('pacs-edge: installed');
    // The command runs the package's own Node, whatever is (not) on the PATH.
    expect(sh('env', ['-i', '/usr/bin/pacs-edge', '--version']).out.trim()).toBe(`pacs-edge ${A} (node 24.22.3)`);
    expect(sh('/usr/bin/pacs-edge', ['manifest', '--check', '--root', '/usr/lib/pacs-edge']).out).toContain('installation intact');
    expect(sh('getent', ['passwd', 'pacs-edge']).out).toMatch(/^pacs-edge:x:\d+:\d+:.*:\/var\/lib\/pacs-edge:\/usr\/sbin\/nologin/);
    const v = sh('systemd-analyze', ['verify', '--man=no', '/lib/systemd/system/pacs-edge.service'], { ok: false });
    expect(v.out.split('\n').filter((l) => l.includes('pacs-edge.service')), v.out).toEqual([]);

    // A field engineer sets the box up (loopback here); the conffile is now edited.
    const gwPort = await freePort();
    const pacsPort = await freePort();
    const init = sh('/usr/bin/pacs-edge', ['init', '--profile', 'arm64-4c-2g', '--device-id', 'edge-pkg', '--ae-title', 'EDGE_PKG', '--host', '127.0.0.1', '--port', String(gwPort), '--modality-ae', 'STORESCU', '--modality-host', '127.0.0.1', '--pacs-ae', 'PACS', '--pacs-host', '127.0.0.1', '--pacs-port', String(pacsPort), '--compression', 'none']);
    expect(init.out).toContain('/etc/pacs-edge/gateway.yaml: valid');
    const edited = readFileSync('/etc/pacs-edge/gateway.yaml');
    const pacsDir = path.join(WORK.dir, 'pacs');
    mkdirSync(pacsDir);
    const sent = new Map<string, string>();
    const send = async (n: number, tag: string) => {
      const dir = path.join(WORK.dir, tag);
      mkdirSync(dir);
      const study = writeStudy(dir, n);
      const r = await storescu({ port: gwPort, files: study.map((s) => s.file), calledAe: 'EDGE_PKG' });
      expect(r.acked, r.stdout + r.stderr).toHaveLength(n);
      for (const s of study) sent.set(s.uid, s.file);
    };
    const delivered = async (n: number) => {
      await waitFor(async () => (await statusJson()).destinations[0]!.pending === 0 || undefined, { what: 'nothing pending', timeoutMs: 60_000 });
      const at = new Map(readdirSync(pacsDir).map((f) => [readPart10Header(readFileSync(path.join(pacsDir, f)))!.sopInstanceUid, readFileSync(path.join(pacsDir, f))] as const));
      const missing = [...sent].filter(([uid, file]) => !at.get(uid) || !datasetBytes(at.get(uid)!).equals(datasetBytes(file)));
      expect(missing.map(([u]) => u), 'every acknowledged object at the PACS, byte-identical').toEqual([]);
      expect(at.size).toBe(n);
      return missing.length;
    };
    let lost = 0;

    // Version A queues 8 objects while the PACS is down.
    let gw = await startInstalled();
    await send(8, 'q1');
    expect((await statusJson()).destinations[0]!.pending).toBe(8);
    expect(await gw.stop()).toBe(0);

    // Upgrade to B: the edited conffile is kept, the queue too; the PACS comes up: all 8 arrive.
    const up = sh('dpkg', ['-i', deb(B)]);
    expect(installed()).toBe(`install ok installed ${B}`);
    expect(up.out).not.toMatch(/conffile|gateway\.yaml/i);
    expect(readFileSync('/etc/pacs-edge/gateway.yaml').equals(edited), 'the edited gateway.yaml is kept').toBe(true);
    let pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
    gw = await startInstalled();
    expect(sh('/usr/bin/pacs-edge', ['--version']).out).toContain(B);
    lost += await delivered(8);

    // Downgrade to A (same format): 4 queued while the PACS is down go after it.
    await pacs.stop();
    await send(4, 'q2');
    expect(await gw.stop()).toBe(0);
    sh('dpkg', ['-i', deb(A)]);
    expect(installed()).toBe(`install ok installed ${A}`);
    expect(readFileSync('/etc/pacs-edge/gateway.yaml').equals(edited)).toBe(true);
    gw = await startInstalled();
    expect((await statusJson()).destinations[0]!.pending).toBe(4);
    pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
    // Forwarding backs off while the PACS is down: a restart tries at once.
    expect(await gw.stop()).toBe(0);
    gw = await startInstalled();
    lost += await delivered(12);
    expect(await gw.stop()).toBe(0);

    // An upgrade cut short: dpkg SIGKILLed while it unpacks B. Every old file is still in place
    // (dpkg renames the new ones in only once all are unpacked), so A starts and receives.
    const dpkg = spawn('dpkg', ['-i', deb(B)], { stdio: 'ignore' });
    await waitFor(() => sh('sh', ['-c', 'find /usr/lib/pacs-edge -name "*.dpkg-new" | head -n 1']).out.trim() || undefined, { what: 'dpkg unpacking', timeoutMs: 60_000, intervalMs: 10 });
    dpkg.kill('SIGKILL');
    await new Promise((r) => dpkg.once('exit', r));
    const dpkgNew = Number(sh('sh', ['-c', 'find /usr/lib/pacs-edge -name "*.dpkg-new" | wc -l']).out.trim());
    gw = await startInstalled();
    expect(gw.logs()).toContain('installation integrity verified');
    await send(2, 'q3');
    lost += await delivered(14);
    expect(await gw.stop()).toBe(0);
    // …and finishing dpkg's interrupted work, then installing B again, completes the upgrade.
    sh('dpkg', ['--configure', '-a'], { ok: false });
    sh('dpkg', ['-i', deb(B)]);
    expect(installed()).toBe(`install ok installed ${B}`);
    expect(sh('/usr/bin/pacs-edge', ['manifest', '--check', '--root', '/usr/lib/pacs-edge']).out).toContain('installation intact');

    // dpkg -r keeps the state (queued images are never removed by a package removal).
    await pacs.stop();
    gw = await startInstalled();
    await send(3, 'q4');
    expect(await gw.stop()).toBe(0);
    const removed = sh('dpkg', ['-r', 'pacs-edge']);
    expect(removed.code).toBe(0);
    expect(existsSync('/usr/lib/pacs-edge/dist')).toBe(false);
    for (const f of ['/var/lib/pacs-edge/keys/device.key', '/var/lib/pacs-edge/spool/index/CURRENT', '/etc/pacs-edge/gateway.yaml']) expect(existsSync(f), `${f} kept by dpkg -r`).toBe(true);
    // dpkg --purge with 3 objects unsent: says so, keeps them.
    const refusedPurge = sh('dpkg', ['--purge', 'pacs-edge']);
    expect(refusedPurge.out).toMatch(/\/var\/lib\/pacs-edge NOT removed: 3 object\(s\) not yet delivered/);
    // The 3 unsent, and the delivered ones kept for resend (spool.keepForwardedHours, 48 h): all still there.
    expect(readdirSync('/var/lib/pacs-edge/spool/objects').filter((f) => f.endsWith('.dcm')).length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(sh('sh', ['-c', 'cat /var/lib/pacs-edge/.unsent-at-removal']).out)).toBe(3);
    // Reinstalled, the 3 go out; then a purge removes everything.
    sh('dpkg', ['-i', deb(B)]);
    const init2 = sh('/usr/bin/pacs-edge', ['init', '--profile', 'arm64-4c-2g', '--device-id', 'edge-pkg', '--ae-title', 'EDGE_PKG', '--host', '127.0.0.1', '--port', String(gwPort), '--modality-ae', 'STORESCU', '--modality-host', '127.0.0.1', '--pacs-ae', 'PACS', '--pacs-host', '127.0.0.1', '--pacs-port', String(pacsPort), '--compression', 'none']);
    expect(init2.code).toBe(0);
    pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
    gw = await startInstalled();
    lost += await delivered(17);
    expect(await gw.stop()).toBe(0);
    await pacs.stop();
    const purged = sh('dpkg', ['--purge', 'pacs-edge']);
    expect(purged.out).toContain('purged: /var/lib/pacs-edge removed (nothing was left to send)');
    expect(existsSync('/var/lib/pacs-edge')).toBe(false);
    expect(existsSync('/etc/pacs-edge')).toBe(false);
    recordFault({
      key: '13-package-upgrade-downgrade',
      fault: 'package lifecycle with queued objects: apt install A, upgrade to B, downgrade to A, dpkg killed mid-unpack, remove, purge',
      test: 'test/package/package.integration.test.ts',
      injected: 6,
      acknowledged: sent.size,
      lost,
      duplicated: 0,
      recoverySeconds: null,
      notes: `edited conffile kept across upgrade and downgrade; after the killed upgrade (${dpkgNew} .dpkg-new files left) the old release started (integrity intact) and received; purge refused while 3 were unsent; every object byte-identical at storescp`,
    });
  });
});
