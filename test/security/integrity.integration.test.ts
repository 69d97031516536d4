import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { integrityFailures, MANIFEST_PATH, verifyInstallation, writeManifest } from '../../src/security/integrity.js';
import { freePort, ROOT, run, tempDir, type LogLine, watchGateway } from '../helpers/processes.js';

/**
 * Installation integrity (可信验证): a copy of the built gateway (dist/, package*.json, and the
 * project's node_modules through a symbolic link) gets its own manifest; then one byte of its
 * code changes, and the copied gateway is started with `security.integrity` enforce and warn.
 */

function startCopy(root: string, dir: string, mode: 'enforce' | 'warn', port: number) {
  const config = {
    device: { id: 'edge-integrity' },
    receive: { aeTitle: 'PACS_EDGE', host: '127.0.0.1', port, callers: [{ aeTitle: '*' }] },
    spool: { dir: path.join(dir, 'spool'), minFreeBytes: '64MiB' },
    forward: [],
    security: { integrity: mode },
  };
  const configFile = path.join(dir, `gateway-${mode}.yaml`);
  writeFileSync(configFile, stringify(config));
  const proc = spawn(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { logs, output, exited, waitForLog } = watchGateway(proc);
  /** Resolves when the gateway listens ('listening') or exits ('exited'), whichever comes first; at most 30 s. */
  const settled = waitForLog((l) => l.msg === 'gateway listening', 30_000).then(
    () => 'listening' as const,
    (err: unknown) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return 'exited' as const;
      throw err;
    },
  );
  return {
    logs,
    exited,
    settled,
    output,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

const alerts = (logs: LogLine[]) => logs.filter((l) => l.msg.startsWith('SECURITY ALERT: installation integrity check failed'));

describe('installation integrity (copied gateway)', () => {
  const tmp = tempDir('pacs-edge-integrity-');
  const root = path.join(tmp.dir, 'opt');
  const target = 'dist/src/gateway.js';
  let original: Buffer;

  beforeAll(async () => {
    mkdirSync(root);
    cpSync(path.join(ROOT, 'dist'), path.join(root, 'dist'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(path.join(ROOT, f), path.join(root, f));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
    const r = await run(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'manifest'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    original = readFileSync(path.join(root, target));
  });

  afterAll(() => tmp.cleanup());

  it('the manifest of the copy covers dist/, package*.json and the production node_modules', () => {
    const listed = readFileSync(path.join(root, MANIFEST_PATH), 'utf8').split('\n').filter(Boolean).map((l) => l.slice(66));
    expect(listed).toContain(target);
    expect(listed).toContain('package.json');
    expect(listed).toContain('package-lock.json');
    expect(listed).toContain('node_modules/pino/package.json');
    expect(listed).not.toContain(MANIFEST_PATH);
    expect(listed.some((f) => f.startsWith('node_modules/typescript/')), 'dev dependencies are not listed').toBe(false);
  });

  it('unchanged: the gateway starts with enforce and raises no alert', async () => {
    const dir = path.join(tmp.dir, 'run-intact');
    mkdirSync(dir);
    const gw = startCopy(root, dir, 'enforce', await freePort());
    try {
      expect(await gw.settled, gw.output().slice(-2000)).toBe('listening');
      expect(alerts(gw.logs)).toEqual([]);
      expect(gw.logs.some((l) => l.msg === 'installation integrity verified')).toBe(true);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });

  describe('one byte of dist/src/gateway.js changed', () => {
    beforeAll(() => {
      // A letter inside the first doc comment: still valid JavaScript, so only the check can tell.
      const changed = Buffer.from(original);
      const at = changed.indexOf('/**') + 4;
      changed[at] = changed[at] === 0x58 ? 0x59 : 0x58; // 'X' or 'Y'
      writeFileSync(path.join(root, target), changed);
    });
    afterAll(() => writeFileSync(path.join(root, target), original));

    it('enforce: refuses to start with the Security Alert and exit code 4, before touching the spool', async () => {
      const dir = path.join(tmp.dir, 'run-enforce');
      mkdirSync(dir);
      const gw = startCopy(root, dir, 'enforce', await freePort());
      expect(await gw.settled, gw.output().slice(-2000)).toBe('exited');
      expect(await gw.exited).toBe(4);
      expect(alerts(gw.logs).map((l) => l.msg)).toEqual([`SECURITY ALERT: installation integrity check failed: ${target} changed`]);
      expect(gw.logs.some((l) => l.level === 'fatal' && /refused to start/.test(l.msg))).toBe(true);
      expect(existsSync(path.join(dir, 'spool')), 'the spool was never opened').toBe(false);
      // …and the refusal is in the audit trail (a Security Alert, 110113).
      const auditDir = path.join(dir, 'audit');
      const trail = readdirSync(auditDir)
        .filter((n) => n.endsWith('.log'))
        .map((n) => readFileSync(path.join(auditDir, n), 'utf8'))
        .join('');
      expect(trail).toContain('110113');
      expect(trail).toContain(`installation integrity check failed: ${target} changed; start refused`);
    });

    it('warn: logs the same Security Alert and starts', async () => {
      const dir = path.join(tmp.dir, 'run-warn');
      mkdirSync(dir);
      const gw = startCopy(root, dir, 'warn', await freePort());
      try {
        expect(await gw.settled, gw.output().slice(-2000)).toBe('listening');
        const a = alerts(gw.logs);
        expect(a.map((l) => l.msg)).toEqual([`SECURITY ALERT: installation integrity check failed: ${target} changed`]);
        expect(a[0]!.level).toBe('warn');
      } finally {
        expect(await gw.stop()).toBe(0);
      }
    });

    it('`manifest --check` reports it too (exit 4)', async () => {
      const r = await run(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'manifest', '--check'], { timeoutMs: 60_000 });
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`${target} changed`);
    });
  });
});

describe('verifyInstallation', () => {
  const tmp = tempDir('pacs-edge-integrity-unit-');
  afterAll(() => tmp.cleanup());
  const root = tmp.dir;
  mkdirSync(path.join(root, 'dist/src'), { recursive: true });
  writeFileSync(path.join(root, 'dist/src/a.js'), 'export const a = 1;\n');
  writeFileSync(path.join(root, 'package.json'), '{"name":"x"}\n');
  writeFileSync(path.join(root, 'package-lock.json'), '{"packages":{}}\n');

  it('reports a missing manifest, then nothing once it is written', () => {
    expect(integrityFailures(verifyInstallation(root))).toEqual([`${MANIFEST_PATH} missing`]);
    expect(writeManifest(root).files).toBe(3);
    const r = verifyInstallation(root);
    expect(r.ok).toBe(true);
    expect(r.checked).toBe(3);
    expect(integrityFailures(r)).toEqual([]);
  });

  it('reports added, missing and changed files', () => {
    writeManifest(root);
    writeFileSync(path.join(root, 'dist/src/dropped.js'), 'evil()\n');
    unlinkSync(path.join(root, 'package.json'));
    writeFileSync(path.join(root, 'dist/src/a.js'), 'export const a = 2;\n');
    expect(integrityFailures(verifyInstallation(root))).toEqual(['dist/src/a.js changed', 'package.json missing', 'dist/src/dropped.js added']);
  });
});
