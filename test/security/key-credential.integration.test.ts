import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { isSealed } from '../../src/security/sealed-file.js';
import { datasetBytes, startStorescp, storescu, wholeFilesAt } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, nothingPending, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * The device key from a systemd credential (spool.encryption.keyCredential): what the unit's
 * `LoadCredentialEncrypted=` gives the service, a file in $CREDENTIALS_DIRECTORY (here a
 * temporary directory, as systemd's ramfs would be). The real gateway seals with it, never
 * writes a key file, restarts with it, and refuses to start when the credential is configured
 * but not there (exit 5, DEVICE_KEY_CREDENTIAL_MISSING), making no key over the data.
 */
const NAME = 'pacs-edge-device-key';

/** Every file under `dir` (but `skip`) whose bytes hold `needle`. */
function filesHolding(dir: string, needle: Buffer, skip: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const f = path.join(e.parentPath, e.name);
    if (e.isFile() && !f.startsWith(skip) && statSync(f).size < 64 * 1024 * 1024 && readFileSync(f).includes(needle)) out.push(f);
  }
  return out;
}

describe('the device key from a systemd credential', () => {
  it('seals and delivers with it, writes no key file, restarts with it; missing, the start is refused and no key is made', { timeout: 90_000 }, async () => {
    const t = tempDir('pacs-edge-cred-');
    const creds = path.join(t.dir, 'credentials');
    mkdirSync(creds, { mode: 0o700 });
    const key = randomBytes(32);
    writeFileSync(path.join(creds, NAME), key, { mode: 0o400 });
    chmodSync(path.join(creds, NAME), 0o400);
    const env = { CREDENTIALS_DIRECTORY: creds };
    const pacsDir = path.join(t.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      spool: { compressAtRest: false, encryption: { profile: 'aes-256-gcm', keyCredential: NAME } },
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
    });
    const keyFile = path.join(t.dir, 'keys', 'device.key');
    let gw: Awaited<ReturnType<typeof runGateway>> | undefined;
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      // The PACS is down: the objects stay in the spool, sealed.
      gw = await runGateway(configFile, { port, spoolDir, env });
      mkdirSync(path.join(t.dir, 'study'));
      const study = writeStudy(path.join(t.dir, 'study'), 3);
      expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(3);
      expect(await gw.stop()).toBe(0);
      const objects = path.join(spoolDir, 'objects');
      const files = readdirSync(objects).map((n) => path.join(objects, n));
      expect(files).toHaveLength(3);
      for (const f of files) {
        expect(isSealed(readFileSync(f))).toBe(true);
        // Sealed under the credential's key (it opens them).
        expect(study.some((s) => datasetBytes(readSpoolFile(f, path.join(creds, NAME))).equals(datasetBytes(s.file)))).toBe(true);
      }
      // No key file, and the key's bytes nowhere on the data partition.
      expect(existsSync(keyFile)).toBe(false);
      expect(filesHolding(t.dir, key, creds)).toEqual([]);

      // Configured, but the credential is not there: refused, exit 5, nothing made.
      for (const env2 of [{ CREDENTIALS_DIRECTORY: path.join(t.dir, 'empty-credentials') }, { CREDENTIALS_DIRECTORY: '' }]) {
        mkdirSync(path.join(t.dir, 'empty-credentials'), { recursive: true });
        const r = await run(process.execPath, [CLI, 'run', '--config', configFile], { env: env2, timeoutMs: 30_000 });
        expect(r.code, r.stdout + r.stderr).toBe(EXIT.spoolKey);
        expect(r.stdout + r.stderr).toMatch(/keyCredential is pacs-edge-device-key, but (there is no credential|CREDENTIALS_DIRECTORY is not set)/);
        expect(r.stdout + r.stderr).toContain('No key was made');
        expect(existsSync(keyFile)).toBe(false);
        expect(readdirSync(objects)).toHaveLength(3);
      }

      // With the credential again: a restart delivers everything, and a new object too.
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      gw = await runGateway(configFile, { port, spoolDir, env });
      await waitFor(() => nothingPending(spoolDir), { what: 'the three delivered' });
      mkdirSync(path.join(t.dir, 'after'));
      const [next] = writeStudy(path.join(t.dir, 'after'), 1);
      expect((await storescu({ port, files: [next!.file] })).acked).toHaveLength(1);
      const got = (await wholeFilesAt(pacsDir, 4, { what: 'four whole files at the PACS' })).map((f) => datasetBytes(f));
      for (const f of [...study, next!]) expect(got.some((b) => b.equals(datasetBytes(f.file)))).toBe(true);
      expect(await gw.stop()).toBe(0);
      expect(existsSync(keyFile)).toBe(false);
      expect(filesHolding(t.dir, key, creds)).toEqual([]);
    } finally {
      await gw?.stop();
      await pacs?.stop();
      t.cleanup();
    }
  });
});
