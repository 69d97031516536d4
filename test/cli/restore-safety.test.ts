import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { openBackup, sealBackup } from '../../src/cli/backup.js';
import { DeviceKey } from '../../src/security/device-key.js';
import { writeDurableSync } from '../../src/util/durable-write.js';
import { CLI, run, tempDir } from '../helpers/processes.js';

/**
 * `pacs-edge restore` against crafted backups: whoever holds (or guessed) the passphrase can make
 * a backup say anything, and restore runs as root. A backup is made of a real device with the
 * real command, opened with the real format (src/cli/backup.ts), changed, and sealed again.
 * Restore must write only inside the directories the backup's configuration owns, never through
 * a symbolic link planted in the target, refuse the whole backup before writing anything, and
 * record in the audit trail who restored what (or that a restore was refused).
 */
const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });
const PASS = 'correct horse battery staple';

type Payload = { config: string; files: { path: string; role: string; mode: number; sha256: string; data: string }[] };

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('pacs-edge restore of a crafted backup', () => {
  const tmp = tempDir('pacs-edge-restore-');
  const device = path.join(tmp.dir, 'device');
  const etc = path.join(device, 'etc');
  const state = path.join(device, 'state');
  const configFile = path.join(etc, 'gateway.yaml');
  const passFile = path.join(tmp.dir, 'pass.txt');
  const real = path.join(tmp.dir, 'real.peb');
  let payload: Payload;

  /** The real backup with `change` applied to its payload, sealed again under the passphrase. */
  const crafted = (name: string, change: (p: Payload) => void): string => {
    const p = JSON.parse(JSON.stringify(payload)) as Payload;
    change(p);
    const file = path.join(tmp.dir, `${name}.peb`);
    writeFileSync(file, sealBackup(Buffer.from(JSON.stringify(p)), PASS));
    return file;
  };
  const entry = (file: string, data: string, role = 'tls-ca') => ({ path: file, role, mode: 0o640, sha256: createHash('sha256').update(data).digest('hex'), data: Buffer.from(data).toString('base64') });

  beforeAll(async () => {
    mkdirSync(etc, { recursive: true });
    writeFileSync(path.join(etc, 'ca.pem'), 'not really a certificate\n');
    writeFileSync(configFile, stringify({ device: { id: 'edge-restore' }, receive: { aeTitle: 'EDGE', callers: [{ aeTitle: 'CT' }] }, spool: { dir: '../state/spool' }, forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: 11112 }] }));
    DeviceKey.loadOrCreate(path.join(state, 'keys/device.key'));
    mkdirSync(path.join(state, 'audit'), { recursive: true });
    writeFileSync(passFile, `${PASS}\n`);
    const r = await cli('backup', '--config', configFile, '--out', real, '--passphrase-file', passFile);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    payload = JSON.parse(openBackup(readFileSync(real), PASS).toString('utf8')) as Payload;
    expect(payload.files.map((f) => f.role).sort()).toEqual(['config', 'device-key']);
  });

  afterAll(() => tmp.cleanup());

  it('refuses a backup that names a path outside the directories its configuration owns; nothing is written', async () => {
    const outside = path.join(tmp.dir, 'cron.d', 'evil');
    const cases = {
      outside: crafted('outside', (p) => p.files.push(entry(outside, '* * * * * root sh -c id\n'))),
      traversal: crafted('traversal', (p) => p.files.push(entry(`${etc}/../../cron.d/evil`, 'x\n'))),
      relative: crafted('relative', (p) => p.files.push(entry('cron.d/evil', 'x\n'))),
      // The device key where the configuration does not put it (over another file of the box).
      keyElsewhere: crafted('key-elsewhere', (p) => {
        p.files.find((f) => f.role === 'device-key')!.path = path.join(etc, 'ca.pem');
      }),
    };
    for (const [name, file] of Object.entries(cases)) {
      const root = path.join(tmp.dir, `root-${name}`);
      const r = await cli('restore', '--in', file, '--passphrase-file', passFile, '--root', root);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr, name).toMatch(/outside the directories its configuration owns|unusable path|not at the spool.encryption.keyFile/);
      expect(r.stderr, name).toContain('Nothing was restored');
      expect(listFiles(root), name).toEqual([]);
    }
    expect(existsSync(outside)).toBe(false);
  });

  it('never writes through a symbolic link planted in the target: a linked directory or file is refused, its target untouched', async () => {
    const victimDir = path.join(tmp.dir, 'victim');
    mkdirSync(victimDir);
    writeFileSync(path.join(victimDir, 'shadow'), 'root:x:0:0\n');
    // A directory of the owned tree replaced by a link (the key directory → elsewhere).
    const rootA = path.join(tmp.dir, 'root-linked-dir');
    mkdirSync(path.join(rootA, state), { recursive: true });
    symlinkSync(victimDir, path.join(rootA, state, 'keys'));
    const a = await cli('restore', '--in', real, '--passphrase-file', passFile, '--root', rootA);
    expect(a.code, a.stdout + a.stderr).toBe(1);
    expect(a.stderr).toMatch(/is a symbolic link: restore does not write through links/);
    expect(readdirSync(victimDir)).toEqual(['shadow']);
    // The configuration file itself a link to a file elsewhere, restored with --force.
    const rootB = path.join(tmp.dir, 'root-linked-file');
    mkdirSync(path.join(rootB, etc), { recursive: true });
    symlinkSync(path.join(victimDir, 'shadow'), path.join(rootB, configFile));
    const b = await cli('restore', '--in', real, '--passphrase-file', passFile, '--root', rootB, '--force');
    expect(b.code, b.stdout + b.stderr).toBe(1);
    expect(b.stderr).toMatch(/is a symbolic link/);
    expect(readFileSync(path.join(victimDir, 'shadow'), 'utf8')).toBe('root:x:0:0\n');
    expect(listFiles(path.join(rootB, state))).toEqual([]);
  });

  it('a restore in place is audited: who, which backup, how many files; a refused one too (outcome failure)', async () => {
    const ok = await cli('restore', '--in', real, '--passphrase-file', passFile, '--root', '/', '--force');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^audit: seq \d+$/m);
    const bad = crafted('outside-in-place', (p) => p.files.push(entry(path.join(tmp.dir, 'cron.d', 'evil2'), 'x\n')));
    const refused = await cli('restore', '--in', bad, '--passphrase-file', passFile, '--root', '/', '--force');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^audit: seq \d+$/m);
    const trail = readdirSync(path.join(state, 'audit'))
      .filter((n) => n.startsWith('audit-'))
      .map((n) => readFileSync(path.join(state, 'audit', n), 'utf8'))
      .join('');
    expect(trail).toContain(`${real} by `);
    expect(trail).toContain('restored 2 file(s) from the backup of');
    expect(trail).toContain(`${bad} by `);
    expect(trail).toMatch(/restore refused: the backup names [^ ]*evil2, outside the directories/);
    // The refusal is a Security Alert with outcome 4 (failure); the restore itself 0.
    const line = (needle: string) => trail.split('\n').find((l) => l.includes(needle)) ?? '';
    expect(line('restore refused')).toMatch(/EventOutcomeIndicator=\\"4\\"/);
    expect(line('restored 2 file(s)')).toMatch(/EventOutcomeIndicator=\\"0\\"/);
    const verify = await cli('audit', 'verify', '--config', configFile);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});

describe('durable writes with noFollow (restore)', () => {
  it('a symbolic link planted at the temporary file name is removed, not followed', () => {
    const t = tempDir('pacs-edge-nofollow-');
    try {
      const victim = path.join(t.dir, 'victim');
      writeFileSync(victim, 'keep me');
      const file = path.join(t.dir, 'target');
      symlinkSync(victim, `${file}.tmp`);
      writeDurableSync(file, 'new bytes', { tmp: `${file}.tmp`, noFollow: true });
      expect(readFileSync(victim, 'utf8')).toBe('keep me');
      expect(readFileSync(file, 'utf8')).toBe('new bytes');
    } finally {
      t.cleanup();
    }
  });
});
