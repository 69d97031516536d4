import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { profileOfHead } from '../../src/security/sealed-file.js';
import { trailText } from '../helpers/audit-trail.js';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { startRefusingScp } from '../helpers/refusing-scp.js';

/**
 * A destination refuses an object for good (0xA900) with an Error Comment (0000,0902) that names
 * a patient, as some PACS do. The comment must not lie in clear anywhere on the card (the spool
 * index, the logs): under an encryption profile the dead letter keeps it sealed with a key derived
 * from the device key, and `pacs-edge dead-letter show` opens it for an administrator; under
 * profile none only its length is kept. Each opening of a sealed comment is audited (110132 Use of
 * Restricted Function, naming the dead letter and the operator, never the comment), whether the
 * gateway runs (through its audit inbox) or is stopped (into the trail directly).
 */
const CANARY = 'DOE^JANE 19700101 CANARY-7c1e';

/** Every file under `dir` whose bytes hold `needle`. */
function filesHolding(dir: string, needle: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const f = path.join(e.parentPath, e.name);
    if (e.isFile() && statSync(f).size < 64 * 1024 * 1024 && readFileSync(f).includes(Buffer.from(needle))) out.push(f);
  }
  return out;
}

async function refuseOne(profile: 'aes-256-gcm' | 'gm' | 'chacha20-poly1305' | 'none') {
  const t = tempDir(`pacs-edge-comment-${profile}-`);
  const scp = await startRefusingScp({ status: 0xa900, errorComment: CANARY });
  const { configFile, port, spoolDir } = await writeGatewayConfig({
    dir: t.dir,
    spool: { compressAtRest: false, encryption: { profile } },
    config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: scp.port, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
  });
  const gw = await runGateway(configFile, { port, spoolDir });
  const study = writeStudy(t.dir, 1);
  expect((await storescu({ port, files: [study[0]!.file] })).acked).toHaveLength(1);
  await gw.waitForLog((l) => l.msg === 'object dead-lettered: the destination refused it permanently');
  const list = await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', configFile, '--json']);
  const letters = JSON.parse(list.stdout) as { id: string; status: number; reason: string; comment?: { length: number; sealed?: string } }[];
  const showArgs = [CLI, 'dead-letter', 'show', '--config', configFile, '--destination', 'pacs', '--id', letters[0]!.id];
  const show = await run(process.execPath, showArgs);
  expect(await gw.stop()).toBe(0);
  // The same command on the stopped gateway (it reads the spool itself).
  const showStopped = await run(process.execPath, showArgs);
  return { t, scp, gw, spoolDir, configFile, letters, show, showStopped, list };
}

describe("a destination's Error Comment in the dead letters", () => {
  it.each(['aes-256-gcm', 'gm', 'chacha20-poly1305'] as const)('%s: sealed in the dead letter, in clear nowhere on the card nor in the log; dead-letter show opens it', { timeout: 60_000 }, async (profile) => {
    const r = await refuseOne(profile);
    try {
      expect(r.scp.refused()).toBeGreaterThanOrEqual(1);
      expect(r.letters).toHaveLength(1);
      expect(r.letters[0]).toMatchObject({ status: 0xa900, comment: { length: Buffer.byteLength(CANARY) } });
      expect(r.letters[0]!.comment!.sealed).toMatch(/^[A-Za-z0-9+/=]+$/);
      expect(profileOfHead(Buffer.from(r.letters[0]!.comment!.sealed!, 'base64')), 'sealed under the profile in force').toBe(profile);
      expect(r.letters[0]!.reason).not.toContain('CANARY');
      // The index (LevelDB log and tables), the object files, the audit trail, the key: no clear copy.
      expect(filesHolding(r.t.dir, 'CANARY-7c1e')).toEqual([]);
      expect(r.gw.output()).not.toContain('CANARY');
      expect(r.list.stdout + r.list.stderr).not.toContain('CANARY');
      // The administrator, with the device key, reads it.
      expect(r.show.code, r.show.stderr).toBe(0);
      expect(r.show.stdout).toContain(`Error Comment ${CANARY}`);
      expect(r.showStopped.code, r.showStopped.stderr).toBe(0);
      expect(r.showStopped.stdout).toContain(`Error Comment ${CANARY}`);
      // Audited both times: handed to the running gateway, then written by the command itself.
      expect(r.show.stderr).toContain('audit: handed to the running gateway');
      expect(r.showStopped.stderr).toMatch(/^audit: seq \d+$/m);
      const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', r.configFile], { timeoutMs: 30_000 });
      expect(v.code, v.stdout + v.stderr).toBe(0);
      const opened = trailText(path.join(r.t.dir, 'audit'))
        .split('\n')
        .filter((l) => l.includes(`the sealed Error Comment of dead letter ${r.letters[0]!.id} (destination pacs) was opened by`));
      expect(opened).toHaveLength(2);
      for (const l of opened) expect(l).toContain('110132');
    } finally {
      await r.scp.stop();
      r.t.cleanup();
    }
  });

  it('none: only the length and the status are kept', { timeout: 60_000 }, async () => {
    const r = await refuseOne('none');
    try {
      expect(r.letters[0]).toMatchObject({ status: 0xa900, comment: { length: Buffer.byteLength(CANARY) } });
      expect(r.letters[0]!.comment!.sealed).toBeUndefined();
      expect(filesHolding(r.t.dir, 'CANARY-7c1e')).toEqual([]);
      expect(r.gw.output()).not.toContain('CANARY');
      expect(r.show.stdout).toMatch(/Error Comment \(\d+ bytes, not kept/);
      // Nothing sealed was opened, so nothing to audit beyond the control request.
      expect(r.show.stderr + r.showStopped.stderr).not.toContain('audit:');
    } finally {
      await r.scp.stop();
      r.t.cleanup();
    }
  });
});
