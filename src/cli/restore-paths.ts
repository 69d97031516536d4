import { lstatSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { HEAD_FILE } from '../audit/chain.js';
import { PacsEdgeError } from '../errors.js';

/**
 * Where `pacs-edge restore` may write: the directories a backup's own configuration says the
 * device keeps its files in, and nothing else. A backup is authenticated under its passphrase,
 * but whoever knows the passphrase (or crafted the file with it) must still not be able to make
 * a restore, run as root, write `/etc/cron.d/x` or follow a symbolic link planted in the target.
 *
 * Owned directories: the configuration's own directory (its profiles and the TLS and MQTT files
 * it names live there or below), and the state root (`dirname(spool.dir)`, which holds the spool,
 * the key and the audit trail by default) with the key's and the audit trail's directories when
 * the configuration puts them elsewhere. The device key must be exactly `spool.encryption.keyFile`,
 * the audit head exactly `<audit.dir>/head.json`, the configuration exactly the backup's.
 */
export interface RestoreEntry {
  path: string;
  role: string;
  data: Buffer;
}

function refused(message: string): PacsEdgeError {
  return new PacsEdgeError('BACKUP_PATH_REFUSED', `${message}. Nothing was restored.`, { retryable: false });
}

/** A setting of the configuration chain: the first file that sets it wins (the configuration overrides what it extends). */
function setting(chain: readonly unknown[], keys: readonly string[]): string | undefined {
  for (const doc of chain) {
    let v: unknown = doc;
    for (const k of keys) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return undefined;
}

const inside = (file: string, dir: string) => file.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** The directories and exact files the backup's configuration owns (paths as on the backed-up device). */
export function ownedPaths(configFile: string, entries: readonly RestoreEntry[]): { dirs: string[]; keyFile: string; auditHead: string } {
  const base = path.dirname(configFile);
  const chain = [entries.find((e) => e.role === 'config'), ...entries.filter((e) => e.role === 'profile')].map((e) => {
    try {
      return e ? (parse(e.data.toString('utf8')) as unknown) : undefined;
    } catch {
      return undefined;
    }
  });
  // As src/config/validate.ts resolves them (relative to the configuration's directory).
  const spoolDir = path.resolve(base, setting(chain, ['spool', 'dir']) ?? 'spool');
  const state = path.dirname(spoolDir);
  const keyFile = path.resolve(base, setting(chain, ['spool', 'encryption', 'keyFile']) ?? path.join(state, 'keys', 'device.key'));
  const auditDir = path.resolve(base, setting(chain, ['audit', 'dir']) ?? path.join(state, 'audit'));
  const dirs = [base, state, path.dirname(keyFile), auditDir].filter((d) => d !== '/');
  return { dirs: [...new Set(dirs)], keyFile, auditHead: path.join(auditDir, HEAD_FILE) };
}

/**
 * Check every entry before anything is written: a plain absolute path, inside an owned
 * directory (the device key and the audit head exactly where the configuration puts them),
 * and no symbolic link anywhere below that directory in the target (`root`).
 *
 * @returns per entry, the owned directory (under `root`) it is written below
 * @throws PacsEdgeError BACKUP_PATH_REFUSED
 */
export function checkRestorePaths(configFile: string, entries: readonly RestoreEntry[], root: string): Map<RestoreEntry, string> {
  const owned = ownedPaths(configFile, entries);
  const out = new Map<RestoreEntry, string>();
  for (const e of entries) {
    const p = e.path;
    if (typeof p !== 'string' || !path.isAbsolute(p) || path.normalize(p) !== p || p.split('/').includes('..') || p.includes('\0')) throw refused(`the backup names an unusable path ${JSON.stringify(p)}`);
    if (e.role === 'config' && p !== configFile) throw refused(`the backup's configuration entry ${p} is not its configuration ${configFile}`);
    if (e.role === 'device-key' && p !== owned.keyFile) throw refused(`the backup puts the device key at ${p}, not at the spool.encryption.keyFile of its configuration (${owned.keyFile})`);
    if (e.role === 'audit-head' && p !== owned.auditHead) throw refused(`the backup puts the audit head at ${p}, not in the audit.dir of its configuration`);
    // The outermost owned directory: every link below it is looked at (an owned directory nested
    // in another, such as the key's, is checked too, not trusted as a starting point).
    const dir = owned.dirs.filter((d) => inside(p, d)).sort((a, b) => a.length - b.length)[0];
    if (!dir) throw refused(`the backup names ${p}, outside the directories its configuration owns (${owned.dirs.join(', ')})`);
    const top = path.join(root, dir);
    const target = path.join(root, p);
    // Every component below the owned directory, the file included: a planted link is refused, not followed.
    for (let at = target; at !== top && inside(at, top); at = path.dirname(at)) {
      let isLink = false;
      try {
        isLink = lstatSync(at).isSymbolicLink();
      } catch {
        /* not there yet: created by the restore */
      }
      if (isLink) throw refused(`${at} is a symbolic link: restore does not write through links`);
    }
    out.set(e, top);
  }
  return out;
}

/** Create the directories from `top` down to `dir` one at a time, refusing a link that appeared meanwhile. */
export function makeDirsBelow(top: string, dir: string, mode: number): void {
  mkdirSync(top, { recursive: true, mode: 0o750 });
  const rel = path.relative(top, dir);
  let at = top;
  for (const part of rel ? rel.split('/') : []) {
    at = path.join(at, part);
    try {
      mkdirSync(at, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (lstatSync(at).isSymbolicLink() || !lstatSync(at).isDirectory()) throw refused(`${at} is not a directory (a link or a file was planted): restore does not write through it`);
  }
}
