import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { recordFault } from '../helpers/reliability.js';

/**
 * Issue 12, as reported: default configuration (spool encryption on), destination down, 5 CT
 * acknowledged; the gateway stopped; `pacs-edge dead-letter list` run on the stopped spool; the
 * gateway started with the PACS up. The offline command used to open the spool without the
 * device key and move every sealed object out of the queue: 0 of 5 arrived.
 */
describe('an offline command on a stopped gateway with an encrypted spool (issue 12)', () => {
  it('dead-letter list and status leave the queue as it was: 5 of 5 arrive byte-identical', async () => {
    const t = tempDir();
    const pacsDir = path.join(t.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    const config = { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } };
    let gw = await startGateway({ dir: t.dir, config });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const study = writeStudy(t.dir, 5);
      expect((await storescu({ port: gw.port, files: study.map((s) => s.file) })).acked).toHaveLength(5);
      const before = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json'])).stdout) as { destinations: { pending: number }[] };
      expect(before.destinations[0]!.pending).toBe(5);
      expect(await gw.stop()).toBe(0);

      const list = await run(process.execPath, [CLI, 'dead-letter', 'list', '--config', gw.configFile]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toContain('no dead letters');
      const offline = await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json']);
      expect(JSON.parse(offline.stdout)).toMatchObject({ running: false, spool: { objects: 5, unreadable: 0 }, destinations: [{ name: 'pacs', pending: 5, deadLetter: 0 }] });
      // Nothing was moved aside, nothing deleted.
      expect(existsSync(path.join(gw.spoolDir, 'lost'))).toBe(false);
      expect(readdirSync(path.join(gw.spoolDir, 'objects')).filter((n) => n.endsWith('.dcm'))).toHaveLength(5);

      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      gw = await startGateway({ dir: t.dir, config, port: gw.port });
      await waitFor(() => readdirSync(pacsDir).filter((n) => n.endsWith('.dcm')).length === 5 || undefined, { what: '5 objects at the PACS', timeoutMs: 30_000 });
      await waitFor(async () => {
        const s = JSON.parse((await run(process.execPath, [CLI, 'status', '--config', gw.configFile, '--json'])).stdout) as { destinations: { pending: number }[] };
        return s.destinations[0]!.pending === 0 || undefined;
      }, { what: 'nothing pending' });
      const atPacs = new Map(readdirSync(pacsDir).map((n) => { const b = readFileSync(path.join(pacsDir, n)); return [readPart10Header(b)!.sopInstanceUid, b] as const; }));
      let lost = 0;
      for (const s of study) if (!atPacs.get(s.uid) || !datasetBytes(atPacs.get(s.uid)!).equals(datasetBytes(s.file))) lost++;
      recordFault({
        key: '12-offline-command-encrypted-spool',
        fault: 'read-only command (dead-letter list, status) on a stopped gateway\'s encrypted spool, then start',
        test: 'test/cli/offline-command.integration.test.ts',
        injected: 2,
        acknowledged: 5,
        lost,
        duplicated: 0,
        recoverySeconds: null,
        notes: 'issue 12 reproduction: before the fix 0 of 5 arrived (all moved to spool/lost/); now the queue is untouched and every data set is byte-identical at storescp',
      });
      expect(lost).toBe(0);
    } finally {
      await gw.stop();
      await pacs?.stop();
      t.cleanup();
    }
  });
});
