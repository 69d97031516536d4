import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './processes.js';

/** CI is set (any value but empty, `0` or `false`). */
function inCi(): boolean {
  const ci = process.env.CI;
  return !!ci && ci !== '0' && ci.toLowerCase() !== 'false';
}

/**
 * The public DICOM corpus of the corpus tests: the directory named by `$PACS_EDGE_CORPUS`
 * (`make test` sets it to ../shared/corpus/public when that directory exists), relative paths
 * taken from the project root. undefined when it is not there (unset, missing, or without a
 * `.dcm` file): the corpus tests are then skipped (`describe.skipIf(!corpusDir())`).
 *
 * With CI set, a missing corpus is an error instead, thrown when the test file loads, so that a
 * CI run cannot pass by skipping them.
 */
export function corpusDir(): string | undefined {
  const env = process.env.PACS_EDGE_CORPUS;
  let missing: string;
  if (!env) missing = 'PACS_EDGE_CORPUS is not set';
  else {
    const dir = path.resolve(ROOT, env);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) missing = `PACS_EDGE_CORPUS=${env}: no such directory`;
    else if (!readdirSync(dir).some((n) => n.endsWith('.dcm'))) missing = `PACS_EDGE_CORPUS=${env}: no .dcm file in it`;
    else return dir;
  }
  if (inCi()) {
    throw new Error(
      `the public DICOM corpus is missing (${missing}) and CI is set: the corpus tests must run in CI, not be skipped. ` +
        'Provide the corpus at ../shared/corpus/public (make test then sets PACS_EDGE_CORPUS) or set PACS_EDGE_CORPUS to its directory.',
    );
  }
  return undefined;
}
