import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { profileOfHead } from '../../src/security/sealed-file.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * An operator changes spool.encryption.profile while objects wait for a PACS that is down.
 * Nothing acknowledged may be stranded: every object, sealed under whichever profile was in
 * force when it arrived, reaches the PACS intact under the profile in force at the end — in
 * every direction (issue 17 adds chacha20-poly1305: a board moved to it, or back to AES-GCM
 * after its profile file was changed, keeps its queue).
 *
 * @param steps each profile in turn, with the study's objects sent while it is in force
 */
async function changeProfiles(steps: [string, number[]][]): Promise<void> {
  const tmp = tempDir('pacs-edge-profile-');
  mkdirSync(path.join(tmp.dir, 'study'));
  mkdirSync(path.join(tmp.dir, 'pacs'));
  const count = Math.max(...steps.flatMap(([, idx]) => idx)) + 1;
  const study = writeStudy(path.join(tmp.dir, 'study'), count, { rows: 32, cols: 32 });
  const pacsPort = await freePort();
  const port = await freePort();
  const base = {
    dir: tmp.dir,
    port,
    config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 } },
  };
  const profileOf = (f: string) => {
    const b = readFileSync(f);
    return profileOfHead(b) ?? (b.subarray(128, 132).toString('latin1') === 'DICM' ? 'plain' : 'unknown');
  };
  let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
  let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    for (const [i, [profile, idx]] of steps.entries()) {
      gw = await startGateway({ ...base, spool: { compressAtRest: false, encryption: { profile } } });
      const recovered = await gw.waitForLog((l) => l.msg === 'spool recovered');
      expect(recovered.lost, `nothing lost on the restart with ${profile}`).toBe(0);
      expect((await storescu({ port: gw.port, files: idx.map((k) => study[k]!.file) })).acked).toHaveLength(idx.length);
      if (i < steps.length - 1) expect(await gw.stop()).toBe(0);
    }
    const objects = path.join(gw!.spoolDir, 'objects');
    const expected = steps.flatMap(([profile, idx]) => idx.map(() => (profile === 'none' ? 'plain' : profile)));
    expect(readdirSync(objects).sort().map((n) => profileOf(path.join(objects, n)))).toEqual(expected);
    pacs = await startStorescp(path.join(tmp.dir, 'pacs'), 'PACS', { port: pacsPort });
    await waitFor(() => nothingPending(gw!.spoolDir), { what: `all ${count} delivered`, timeoutMs: 30_000 });
    const s = (await controlGet(path.join(gw!.spoolDir, 'control.sock'), '/status')) as { destinations: { deadLetter: number }[] };
    expect(s.destinations[0]!.deadLetter).toBe(0);
    const got = readdirSync(path.join(tmp.dir, 'pacs')).filter((n) => n.endsWith('.dcm')).map((n) => datasetBytes(path.join(tmp.dir, 'pacs', n)));
    expect(got).toHaveLength(count);
    for (const f of study) expect(got.some((b) => b.equals(datasetBytes(f.file)))).toBe(true);
    expect(await gw!.stop()).toBe(0);
  } finally {
    await gw?.stop();
    await pacs?.stop();
    tmp.cleanup();
  }
}

describe('changing spool.encryption.profile with objects in the spool', () => {
  it('keeps every object readable across aes-256-gcm → gm → none, and delivers them all', async () => {
    await changeProfiles([
      ['aes-256-gcm', [0, 1]],
      ['gm', [2]],
      ['none', [3]],
    ]);
  }, 90_000);

  it('aes-256-gcm → chacha20-poly1305: the AES-GCM objects are delivered under chacha20-poly1305', async () => {
    await changeProfiles([
      ['aes-256-gcm', [0, 1]],
      ['chacha20-poly1305', [2, 3]],
    ]);
  }, 90_000);

  it('chacha20-poly1305 → gm → aes-256-gcm: the ChaCha20-Poly1305 objects are delivered under aes-256-gcm', async () => {
    await changeProfiles([
      ['chacha20-poly1305', [0, 1]],
      ['gm', [2]],
      ['aes-256-gcm', [3]],
    ]);
  }, 90_000);
});
