import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { SPOOL_FORMAT } from '../../src/spool/format.js';
import { storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, runGateway, tempDir, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 13: the spool, its index and the audit trail carry a format version. A newer release
 * migrates an older spool in place, crash-safely (a kill during the migration loses nothing); an
 * older release that meets a newer format refuses to start with exit code 7, names the release
 * that wrote it, and changes nothing.
 */
async function indexDump(spoolDir: string): Promise<Record<string, string>> {
  const db = new Level<string, string>(path.join(spoolDir, 'index'), { valueEncoding: 'utf8', createIfMissing: false });
  await db.open();
  const out: Record<string, string> = {};
  for await (const [k, v] of db.iterator()) if (!k.startsWith('m!sync')) out[k] = v;
  await db.close();
  return out;
}

async function setMarker(spoolDir: string, value: string | undefined): Promise<void> {
  const db = new Level<string, string>(path.join(spoolDir, 'index'), { valueEncoding: 'utf8' });
  await db.open();
  if (value === undefined) await db.del('m!format');
  else await db.put('m!format', value);
  await db.close();
}

function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(dir)) if (statSync(path.join(dir, n)).isFile()) out[n] = createHash('sha256').update(readFileSync(path.join(dir, n))).digest('hex');
  return out;
}

async function world() {
  const t = tempDir();
  const { configFile, port, spoolDir } = await writeGatewayConfig({
    dir: t.dir,
    config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: await freePort(), compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
  });
  const gw = await runGateway(configFile, { port, spoolDir });
  const study = writeStudy(t.dir, 6);
  expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(6);
  expect(await gw.stop()).toBe(0);
  return { t, configFile, port, spoolDir };
}

const status = async (configFile: string) => {
  const r = await run(process.execPath, [CLI, 'status', '--config', configFile, '--json']);
  return { code: r.code, stderr: r.stderr, doc: r.code === 0 ? (JSON.parse(r.stdout) as { spool: { objects: number }; destinations: { pending: number }[] }) : undefined };
};

describe('spool format versions', () => {
  it('a new spool records its format; a format-1 spool (no marker) is migrated, and a kill during the migration loses nothing', { timeout: 60_000 }, async () => {
    const w = await world();
    try {
      expect(JSON.parse((await indexDump(w.spoolDir))['m!format']!)).toMatchObject({ version: SPOOL_FORMAT });
      // The spool as a release before format 2 left it: no marker.
      await setMarker(w.spoolDir, undefined);
      // Killed in the middle of the step: the marker says which step was under way.
      const killed = await run(process.execPath, [CLI, 'run', '--config', w.configFile], { env: { PACS_EDGE_CRASHPOINT: 'migrate-step:1' }, timeoutMs: 30_000 });
      expect(killed.code, killed.stdout + killed.stderr).toBeNull(); // SIGKILLed itself
      expect(JSON.parse((await indexDump(w.spoolDir))['m!format']!)).toMatchObject({ version: 1, migrating: 2 });
      // The next start finishes it; every object is still owed.
      const gw = await runGateway(w.configFile, { port: w.port, spoolDir: w.spoolDir });
      const recovered = await gw.waitForLog((l) => l.msg === 'spool recovered');
      expect(recovered).toMatchObject({ recovered: 6, lost: 0, unreadable: 0 });
      expect(gw.logs.filter((l) => l.msg === 'spool format migration: step done').map((l) => l.format)).toEqual([2, 3]);
      expect(await gw.stop()).toBe(0);
      expect(JSON.parse((await indexDump(w.spoolDir))['m!format']!)).toEqual(expect.objectContaining({ version: SPOOL_FORMAT }));
      expect(JSON.parse((await indexDump(w.spoolDir))['m!format']!).migrating).toBeUndefined();
      expect((await status(w.configFile)).doc).toMatchObject({ spool: { objects: 6 }, destinations: [{ pending: 6 }] });
    } finally {
      w.t.cleanup();
    }
  });

  it('a spool of a newer release: start, status and commands refuse with exit 7 naming the release, and nothing changes', { timeout: 60_000 }, async () => {
    const w = await world();
    try {
      await setMarker(w.spoolDir, JSON.stringify({ version: SPOOL_FORMAT + 1, by: '9.9.9' }));
      const before = { index: await indexDump(w.spoolDir), objects: filesOf(path.join(w.spoolDir, 'objects')), audit: filesOf(path.join(w.t.dir, 'audit')) };
      const start = await run(process.execPath, [CLI, 'run', '--config', w.configFile], { timeoutMs: 30_000 });
      expect(start.code, start.stdout + start.stderr).toBe(EXIT.formatNewer);
      expect(start.stdout).toMatch(new RegExp(`format ${SPOOL_FORMAT + 1}, written by pacs-edge 9\\.9\\.9.*reads formats up to ${SPOOL_FORMAT}.*Nothing was changed`));
      const s = await status(w.configFile);
      expect(s.code).toBe(EXIT.formatNewer);
      expect(s.stderr).toContain('written by pacs-edge 9.9.9');
      const retry = await run(process.execPath, [CLI, 'dead-letter', 'retry', '--config', w.configFile, '--destination', 'pacs']);
      expect(retry.code, retry.stderr).toBe(EXIT.formatNewer);
      expect({ index: await indexDump(w.spoolDir), objects: filesOf(path.join(w.spoolDir, 'objects')), audit: filesOf(path.join(w.t.dir, 'audit')) }).toEqual(before);
    } finally {
      w.t.cleanup();
    }
  });

  it('an audit trail of a newer release: the start is refused with exit 7 before anything is appended', { timeout: 60_000 }, async () => {
    const w = await world();
    try {
      const head = path.join(w.t.dir, 'audit', 'head.json');
      expect(JSON.parse(readFileSync(head, 'utf8'))).toMatchObject({ format: 1 });
      writeFileSync(head, JSON.stringify({ ...JSON.parse(readFileSync(head, 'utf8')), format: 2 }));
      const before = filesOf(path.join(w.t.dir, 'audit'));
      const start = await run(process.execPath, [CLI, 'run', '--config', w.configFile], { timeoutMs: 30_000 });
      expect(start.code, start.stdout + start.stderr).toBe(EXIT.formatNewer);
      expect(start.stdout).toContain('the audit trail');
      expect(filesOf(path.join(w.t.dir, 'audit'))).toEqual(before);
    } finally {
      w.t.cleanup();
    }
  });
});
