import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlGet } from '../../src/health/control-server.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';

/**
 * An operator changes spool.encryption.profile while objects wait for a PACS that is down:
 * aes-256-gcm, then gm, then none. Nothing acknowledged may be stranded: every object, sealed
 * under whichever profile was in force when it arrived, reaches the PACS intact.
 */
describe('changing spool.encryption.profile with objects in the spool', () => {
  it('keeps every object readable across aes-256-gcm → gm → none, and delivers them all', async () => {
    const tmp = tempDir('pacs-edge-profile-');
    mkdirSync(path.join(tmp.dir, 'study'));
    mkdirSync(path.join(tmp.dir, 'pacs'));
    const study = writeStudy(path.join(tmp.dir, 'study'), 4, { rows: 32, cols: 32 });
    const pacsPort = await freePort();
    const port = await freePort();
    const base = {
      dir: tmp.dir,
      port,
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1 } },
    };
    const profileByte = (f: string) => {
      const b = readFileSync(f);
      return b.subarray(0, 4).toString('latin1') === 'PESE' ? (b[5] === 2 ? 'gm' : 'aes-256-gcm') : b.subarray(128, 132).toString('latin1') === 'DICM' ? 'plain' : 'unknown';
    };
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const steps: [string, number[]][] = [
        ['aes-256-gcm', [0, 1]],
        ['gm', [2]],
        ['none', [3]],
      ];
      let gw;
      for (const [profile, idx] of steps) {
        gw = await startGateway({ ...base, spool: { compressAtRest: false, encryption: { profile } } });
        const recovered = await gw.waitForLog((l) => l.msg === 'spool recovered');
        expect(recovered.lost, `nothing lost on the restart with ${profile}`).toBe(0);
        expect((await storescu({ port: gw.port, files: idx.map((i) => study[i]!.file) })).acked).toHaveLength(idx.length);
        if (profile !== 'none') expect(await gw.stop()).toBe(0);
      }
      const objects = path.join(gw!.spoolDir, 'objects');
      expect(readdirSync(objects).sort().map((n) => profileByte(path.join(objects, n)))).toEqual(['aes-256-gcm', 'aes-256-gcm', 'gm', 'plain']);
      pacs = await startStorescp(path.join(tmp.dir, 'pacs'), 'PACS', { port: pacsPort });
      await waitFor(() => nothingPending(gw!.spoolDir), { what: 'all four delivered', timeoutMs: 30_000 });
      const s = (await controlGet(path.join(gw!.spoolDir, 'control.sock'), '/status')) as { destinations: { deadLetter: number }[] };
      expect(s.destinations[0]!.deadLetter).toBe(0);
      const got = readdirSync(path.join(tmp.dir, 'pacs')).filter((n) => n.endsWith('.dcm')).map((n) => datasetBytes(path.join(tmp.dir, 'pacs', n)));
      expect(got).toHaveLength(4);
      for (const f of study) expect(got.some((b) => b.equals(datasetBytes(f.file)))).toBe(true);
      await gw!.stop();
    } finally {
      await pacs?.stop();
      tmp.cleanup();
    }
  }, 90_000);
});
