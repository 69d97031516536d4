import { chmodSync, chownSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { datasetBytes, startStorescp, storescu, wholeFilesAt } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { CLI, freePort, run, runGateway, tempDir, waitFor, writeGatewayConfig } from '../helpers/processes.js';
import { requireRoot } from '../helpers/root.js';
import { readFileSync, writeFileSync } from 'node:fs';

/**
 * A field engineer runs commands as root (sudo) on a box whose gateway runs as the service user.
 * A command that wrote the spool's index, the audit trail or the device key as root would leave
 * files the service cannot write, and the next start would fail. So every command that touches
 * the state works as the state's owner, and `restore` gives what it writes the owner of the
 * directory it writes into. Here the state belongs to `nobody`; every command runs as root; all
 * files stay nobody's, and the gateway (also started as root) runs as nobody and delivers.
 */
const NOBODY = 65534;

/** Every file and directory under `dir` whose owner is not `uid`. */
function notOwnedBy(dir: string, uid: number): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      const st = statSync(full);
      if (st.uid !== uid) out.push(`${path.relative(dir, full)} (uid ${st.uid})`);
      if (st.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out;
}

function chownTree(dir: string, uid: number): void {
  chownSync(dir, uid, uid);
  for (const n of readdirSync(dir)) {
    const full = path.join(dir, n);
    if (statSync(full).isDirectory()) chownTree(full, uid);
    else chownSync(full, uid, uid);
  }
}

describe('commands run as root on a box whose state belongs to the service user', () => {
  it('leave every file of the spool, audit trail and keys to its owner; the gateway starts and delivers', { timeout: 90_000 }, async (ctx) => {
    if (!requireRoot(ctx, 'chown to another user')) return;
    const t = tempDir();
    chmodSync(t.dir, 0o755);
    const state = path.join(t.dir, 'state');
    mkdirSync(state);
    const pacsDir = path.join(t.dir, 'pacs');
    mkdirSync(pacsDir);
    const pacsPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      spool: { dir: path.join(state, 'spool') },
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none' }], forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 } },
    });
    const spool = path.join(state, 'spool');
    let gw = await runGateway(configFile, { port, spoolDir: spool });
    let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;
    try {
      const study = writeStudy(t.dir, 4);
      expect((await storescu({ port, files: study.map((s) => s.file) })).acked).toHaveLength(4);
      expect(await gw.stop()).toBe(0);
      // The box as installed: the state is the service user's.
      chownTree(state, NOBODY);
      chmodSync(state, 0o700);
      writeFileSync(path.join(t.dir, 'pass'), 'a passphrase long enough\n', { mode: 0o600 });
      const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });
      for (const args of [
        ['status', '--config', configFile, '--json'],
        ['dead-letter', 'list', '--config', configFile],
        ['dead-letter', 'retry', '--config', configFile, '--destination', 'pacs'],
        ['dead-letter', 'purge', '--config', configFile, '--destination', 'pacs', '--yes'],
        ['audit', 'verify', '--config', configFile],
        ['backup', '--config', configFile, '--out', path.join(t.dir, 'b.peb'), '--passphrase-file', path.join(t.dir, 'pass')],
        ['restore', '--in', path.join(t.dir, 'b.peb'), '--passphrase-file', path.join(t.dir, 'pass'), '--root', '/', '--force'],
      ]) {
        const r = await cli(...args);
        expect(r.code, `${args.slice(0, 2).join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
        expect(notOwnedBy(state, NOBODY), `after ${args.slice(0, 2).join(' ')}: every file is still the service user's`).toEqual([]);
      }
      // Started by root, the gateway runs as the owner of its state, and works.
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort });
      gw = await runGateway(configFile, { port, spoolDir: spool });
      const status = readFileSync(`/proc/${gw.proc.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(NOBODY));
      for (const f of await wholeFilesAt(pacsDir, 4, { what: '4 whole files at the PACS' })) {
        const b = readFileSync(f);
        expect(datasetBytes(b).equals(datasetBytes(study.find((s) => s.uid === readPart10Header(b)!.sopInstanceUid)!.file))).toBe(true);
      }
      expect(await gw.stop()).toBe(0);
      expect(notOwnedBy(state, NOBODY)).toEqual([]);
    } finally {
      await gw.stop();
      await pacs?.stop();
      t.cleanup();
    }
  });
});
