import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDurableSync } from '../util/durable-write.js';

/**
 * Installation integrity (可信验证, GB/T 22239-2019 §8.1.4.x "可信验证"): `make build` writes
 * `dist/MANIFEST.sha256`, the SHA-256 of every file the gateway runs from, and `pacs-edge run`
 * checks it before it opens anything (`security.integrity: enforce | warn | off`).
 *
 * What the manifest covers, relative to the installation root (the directory holding dist/):
 * - every regular file under `dist/` (compiled code, source maps), except the manifest itself;
 * - `package.json` and `package-lock.json`;
 * - every regular file of every production package in `node_modules/` (the `package-lock.json`
 *   entries without `dev`/`devOptional` that are installed), nested `node_modules/` folders
 *   being packages of their own;
 * - in a Debian package (scripts/package.sh, made at build time), the bundled Node runtime
 *   under `node/`.
 * dpkg's transient files (`*.dpkg-new` …, left beside the old ones by an upgrade cut short)
 * are not code the gateway loads and are left out. Measured on the development machine: 90 packages, ~7,000
 *   files, ~42 MB: 0.1 s with a warm page cache, 0.6 s cold (docs/hardening.md).
 *
 * The format is `sha256sum`'s (`<hex>  <path>` per line), so `cd /opt/pacs-edge && sha256sum
 * -c dist/MANIFEST.sha256` checks an installation without the gateway. A file added in the
 * covered scope is reported too (code dropped next to the gateway's own).
 */
export const MANIFEST_PATH = 'dist/MANIFEST.sha256';

/** Exit code of `run` when `security.integrity: enforce` refuses to start (docs/operations.md, "Exit codes"). */
export const INTEGRITY_EXIT_CODE = 4;

export type IntegrityMode = 'enforce' | 'warn' | 'off';

export interface IntegrityReport {
  /** True when the manifest exists and every file in scope matches it. */
  ok: boolean;
  manifestMissing: boolean;
  /** Paths (relative to the root) whose content differs from the manifest. */
  changed: string[];
  /** Listed in the manifest, gone from the installation. */
  missing: string[];
  /** In the covered scope, not in the manifest. */
  added: string[];
  /** Files hashed. */
  checked: number;
  ms: number;
}

/** The installation root of the running code: `<root>/dist/src/security/integrity.js` → `<root>`. */
export function installRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '../../..');
}

/** The files the manifest covers, relative to `root`, sorted, with `/` separators. */
export function manifestScope(root: string): string[] {
  const out = new Set<string>();
  const dist = path.join(root, 'dist');
  if (existsSync(dist)) walk(dist, root, out, false);
  out.delete(MANIFEST_PATH);
  for (const f of ['package.json', 'package-lock.json']) if (existsSync(path.join(root, f))) out.add(f);
  // The Node runtime a Debian package brings with it (scripts/package.sh): /usr/lib/pacs-edge/node.
  const runtime = path.join(root, 'node');
  if (existsSync(runtime)) walk(runtime, root, out, false);
  for (const pkg of productionPackages(root)) walk(path.join(root, pkg), root, out, true);
  return [...out].sort();
}

/** Write `<root>/dist/MANIFEST.sha256` (atomically) and say what it holds. */
export function writeManifest(root: string): { file: string; files: number; bytes: number; ms: number } {
  const t0 = process.hrtime.bigint();
  const files = manifestScope(root);
  let bytes = 0;
  const lines = files.map((f) => {
    const data = readFileSync(path.join(root, f));
    bytes += data.length;
    return `${sha256(data)}  ${f}\n`;
  });
  const file = path.join(root, MANIFEST_PATH);
  writeDurableSync(file, lines.join(''), { mode: 0o644 });
  return { file, files: files.length, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

/** SHA-256 of a file read through `buf`. */
function hashFile(file: string, buf: Buffer): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Check the installation at `root` against its manifest. Synchronous: it runs before anything else starts. */
export function verifyInstallation(root: string): IntegrityReport {
  const t0 = process.hrtime.bigint();
  const report: IntegrityReport = { ok: false, manifestMissing: false, changed: [], missing: [], added: [], checked: 0, ms: 0 };
  let text: string;
  try {
    text = readFileSync(path.join(root, MANIFEST_PATH), 'utf8');
  } catch {
    report.manifestMissing = true;
    report.ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return report;
  }
  const expected = parseManifest(text);
  const present = new Set(manifestScope(root));
  // One reused buffer: hashing ~40 MB of installation must not leave ~40 MB of garbage behind
  // in a process whose memory is capped (MemoryMax) and watched (the 1 GiB object test).
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const [file, hash] of expected) {
    let digest: string;
    try {
      digest = hashFile(path.join(root, file), buf);
    } catch {
      report.missing.push(file);
      continue;
    }
    report.checked++;
    if (digest !== hash) report.changed.push(file);
  }
  for (const f of present) if (!expected.has(f)) report.added.push(f);
  report.ok = report.changed.length === 0 && report.missing.length === 0 && report.added.length === 0;
  report.ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return report;
}

/**
 * What failed, one entry per file (`dist/src/gateway.js changed`, `package.json missing`,
 * `dist/x.js added`, `dist/MANIFEST.sha256 missing`); empty when the installation is intact.
 * For the audit trail's Security Alert (the caller records it; this module only checks).
 */
export function integrityFailures(report: IntegrityReport): string[] {
  if (report.manifestMissing) return [`${MANIFEST_PATH} missing`];
  return [...report.changed.map((f) => `${f} changed`), ...report.missing.map((f) => `${f} missing`), ...report.added.map((f) => `${f} added`)];
}

/** Convenience for callers outside `run` (e.g. a periodic audit check): the failures of `root`, or [] when intact. */
export function changedInstallationFiles(root: string = installRoot()): string[] {
  return integrityFailures(verifyInstallation(root));
}

function parseManifest(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const DPKG_TRANSIENT = /\.dpkg-(new|tmp|old|bak|dist)$/;

/** Regular files under `dir` (symbolic links are not followed), skipping nested node_modules in packages. */
function walk(dir: string, root: string, out: Set<string>, inPackage: boolean): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (inPackage && e.name === 'node_modules') continue;
      walk(full, root, out, inPackage);
    } else if (e.isFile()) {
      // dpkg's transient files of an upgrade cut short (the new file waits beside the old one,
      // renamed into place only once every file is unpacked): never loaded, and not "added" code.
      if (DPKG_TRANSIENT.test(e.name)) continue;
      out.add(path.relative(root, full).split(path.sep).join('/'));
    }
  }
}

/** `node_modules/...` folders of the production dependencies named by package-lock.json and installed. */
function productionPackages(root: string): string[] {
  let lock: { packages?: Record<string, { dev?: boolean; devOptional?: boolean; link?: boolean }> };
  try {
    lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as typeof lock;
  } catch {
    return [];
  }
  return Object.entries(lock.packages ?? {})
    .filter(([p, e]) => p.startsWith('node_modules/') && !e.dev && !e.devOptional && !e.link)
    .map(([p]) => p)
    .filter((p) => existsSync(path.join(root, p, 'package.json')));
}
