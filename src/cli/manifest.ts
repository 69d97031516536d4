import path from 'node:path';
import { INTEGRITY_EXIT_CODE, installRoot, integrityFailures, MANIFEST_PATH, verifyInstallation, writeManifest } from '../security/integrity.js';

/** `pacs-edge manifest [--root DIR] [--check]`: write or check DIR/dist/MANIFEST.sha256. */
export function manifestCommand(root: string | undefined, check: boolean): number {
  const dir = root ? path.resolve(root) : installRoot();
  if (check) {
    const failures = integrityFailures(verifyInstallation(dir));
    for (const f of failures) console.error(`SECURITY ALERT: installation integrity check failed: ${f}`);
    if (failures.length === 0) console.log(`${path.join(dir, MANIFEST_PATH)}: installation intact`);
    return failures.length === 0 ? 0 : INTEGRITY_EXIT_CODE;
  }
  const m = writeManifest(dir);
  console.log(`${m.file}: ${m.files} files, ${(m.bytes / 1e6).toFixed(1)} MB, hashed in ${Math.round(m.ms)} ms`);
  return 0;
}
