import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './processes.js';
import { inCi } from './requirements.js';

const HOW = 'provide the corpus at ../shared/corpus/public (make test then sets PACS_EDGE_CORPUS) or set PACS_EDGE_CORPUS to its directory';

/** Why the public DICOM corpus is not usable (unset, missing, or without a `.dcm` file); undefined when it is. */
export function corpusMissing(): string | undefined {
  const env = process.env.PACS_EDGE_CORPUS;
  if (!env) return `the public DICOM corpus is missing: PACS_EDGE_CORPUS is not set (${HOW})`;
  const dir = path.resolve(ROOT, env);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return `the public DICOM corpus is missing: PACS_EDGE_CORPUS=${env}: no such directory (${HOW})`;
  if (!readdirSync(dir).some((n) => n.endsWith('.dcm'))) return `the public DICOM corpus is missing: PACS_EDGE_CORPUS=${env}: no .dcm file in it (${HOW})`;
  return undefined;
}

/**
 * The public DICOM corpus of the corpus tests: the directory named by `$PACS_EDGE_CORPUS`
 * (`make test` sets it to ../shared/corpus/public when that directory exists), relative paths
 * taken from the project root. undefined when it is not there: the corpus tests are then
 * skipped (`describe.skipIf(skipSuite(…, corpusMissing()))`, test/helpers/requirements.ts).
 *
 * With CI set, a missing corpus is an error instead, thrown when the test file loads, so that a
 * CI run cannot pass by skipping them.
 */
export function corpusDir(): string | undefined {
  const missing = corpusMissing();
  if (missing === undefined) return path.resolve(ROOT, process.env.PACS_EDGE_CORPUS!);
  if (inCi()) throw new Error(`${missing}. CI is set: the corpus tests must run in CI, not be skipped.`);
  return undefined;
}
