import { spawnSync } from 'node:child_process';
import { mkdirSync, statfsSync } from 'node:fs';
import { tempDir } from './processes.js';
import { missingRoot } from './requirements.js';

/**
 * Size-limited tmpfs volumes for the tests that fill a disk (the spool's, the audit trail's):
 * root only (CI runs as root), Linux only.
 */

/** Why this machine cannot mount a size-limited tmpfs; undefined when it can (for skipSuite). */
export function missingTmpfs(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux tmpfs';
  const root = missingRoot('to mount a size-limited tmpfs');
  if (root) return root;
  const probe = tempDir('pacs-edge-mount-probe-');
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe.dir]);
    if (r.status !== 0) return `mount -t tmpfs failed: ${String(r.stderr).trim()}`;
    spawnSync('umount', [probe.dir]);
    return undefined;
  } finally {
    probe.cleanup();
  }
}

/** Mount a tmpfs of `size` (mount's syntax: `48m`, `2m`) on `dir` (made when missing). */
export function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  if (r.status !== 0) throw new Error(`mount failed: ${String(r.stderr)}`);
}

export function unmountTmpfs(dir: string): void {
  // Lazy: a process that still holds a file there (it should not) cannot make the test hang.
  spawnSync('umount', ['-l', dir]);
}

/** Free bytes of the file system holding `dir` (for an unprivileged writer). */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}
