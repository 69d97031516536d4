import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';

/**
 * Issue 12: a missing or wrong device key must never cost an acknowledged object. With 5 CT
 * queued, the key file is taken away, then replaced by another key: the gateway refuses to start
 * with a message naming the key file and a documented exit code, commands that would change the
 * spool refuse too, and nothing on disk changes (object files, index-visible state, audit day
 * files). With the right key back, all 5 arrive byte-identical.
 */
type Profile = 'aes-256-gcm' | 'gm' | 'chacha20-poly1305' | 'none';

/** Every file under a directory with its SHA-256, for "nothing changed" (LevelDB's own log/lock files excepted). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      if (statSync(full).isDirectory()) walk(full);
      else out[path.relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

const objectsAndAudit = (base: string) => ({ objects: snapshot(path.join(base, 'spool', 'objects')), audit: snapshot(path.join(base, 'audit')) });

describe.each<Profile>(['aes-256-gcm', 'gm', 'chacha20-poly1305', 'none'])('device key missing or wrong, spool.encryption.profile %s', (profile) => {
  it('the gateway refuses to start naming the key file, nothing is moved or deleted, and with the right key back all 5 arrive', { timeout: 90_000 }, async () => {
    const t = tempDir();
    const pacsDir = path.join(t.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      spool: { encryption: { profile } },
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
    });
    const keyFile = path.join(t.dir, 'keys', 'device.key');
    let gw = await runGateway(configFile, { port, spoolDir });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 20_000 });
    try {
      const study = writeStudy(t.dir, 5);
      expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(5);
      expect(await gw.stop()).toBe(0);
      const before = objectsAndAudit(t.dir);
      expect(Object.keys(before.objects)).toHaveLength(5);
      const rightKey = readFileSync(keyFile);

      const refusals: string[] = [];
      for (const fault of ['missing', 'wrong'] as const) {
        if (fault === 'missing') renameSync(keyFile, `${keyFile}.aside`);
        else writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
        const t0 = Date.now();
        const start = await cli('run', '--config', configFile);
        expect(start.code, `${fault} key: the start is refused with the key's exit code\n${start.stdout}${start.stderr}`).toBe(EXIT.spoolKey);
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(start.stdout + start.stderr, `${fault} key: the message names the key file`).toContain(keyFile);
        refusals.push(((start.stdout + start.stderr).match(/gateway failed to start: ([^"]*)/)?.[1] ?? '').slice(0, 200));
        // No key was made over the data, and no command that changes the spool gets past the key.
        expect(existsSync(keyFile), `${fault} key: no new key is made`).toBe(fault === 'wrong');
        const retry = await cli('dead-letter', 'retry', '--config', configFile, '--destination', 'pacs');
        expect(retry.code, `${fault} key: dead-letter retry refused\n${retry.stderr}`).toBe(EXIT.spoolKey);
        expect(retry.stderr).toContain(keyFile);
        // Reading still works, and shows the queue as it is.
        const s = await cli('status', '--config', configFile, '--json');
        expect(JSON.parse(s.stdout)).toMatchObject({ running: false, spool: { objects: 5 }, destinations: [{ name: 'pacs', pending: 5, deadLetter: 0 }] });
        // audit verify cannot vouch for the trail with this key, and appends nothing to it.
        const verify = await cli('audit', 'verify', '--config', configFile);
        expect(verify.code).not.toBe(0);
        expect(objectsAndAudit(t.dir), `${fault} key: not a byte changed in the spool's objects or the audit trail`).toEqual(before);
        expect(existsSync(path.join(spoolDir, 'lost'))).toBe(false);
      }

      // The right key back: every acknowledged object is delivered.
      writeFileSync(keyFile, rightKey, { mode: 0o600 });
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      gw = await runGateway(configFile, { port, spoolDir });
      await waitFor(async () => {
        const s = JSON.parse((await cli('status', '--config', configFile, '--json')).stdout) as { destinations: { pending: number }[] };
        return (s.destinations[0]!.pending === 0 && readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 5) || undefined;
      }, { what: '5 objects at the PACS', timeoutMs: 30_000 });
      const atPacs = new Map(readdirSync(pacsDir).map((n) => [readPart10Header(readFileSync(path.join(pacsDir, n)))!.sopInstanceUid, readFileSync(path.join(pacsDir, n))] as const));
      const lost = study.filter((s) => !atPacs.get(s.uid) || !datasetBytes(atPacs.get(s.uid)!).equals(datasetBytes(s.file))).length;
      recordFault({
        key: `12-device-key-${profile}`,
        fault: `device key file missing, then replaced by another key (spool.encryption.profile ${profile})`,
        test: 'test/security/device-key-mismatch.integration.test.ts',
        injected: 2,
        acknowledged: 5,
        lost,
        duplicated: 0,
        recoverySeconds: null,
        notes: `start refused with exit ${EXIT.spoolKey} naming the key file ("${refusals[1]?.slice(0, 80)}…"); dead-letter retry refused; objects and audit day files byte-identical before and after; right key back: 5 of 5 delivered`,
      });
      expect(lost).toBe(0);
    } finally {
      await gw.stop();
      await pacs?.stop();
      t.cleanup();
    }
  });
});
