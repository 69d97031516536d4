import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';
import type { GatewayConfig } from './types.js';
import { validateConfig } from './validate.js';

/**
 * Reads a YAML (or JSON) configuration file. A file may name a device profile with
 * `extends: profiles/arm64-4c-2g.yaml` (relative to itself); the file's own keys override the
 * profile's, mapping by mapping. Relative paths in the result are resolved against the
 * directory of the file that is loaded.
 */
export function loadConfig(file: string): GatewayConfig {
  const abs = path.resolve(file);
  const doc = readLayered(abs, new Set());
  return validateConfig(doc, { baseDir: path.dirname(abs), file: abs });
}

function readLayered(file: string, seen: Set<string>): Record<string, unknown> {
  if (seen.has(file)) throw new ConfigError([`extends: cycle through ${file}`], file);
  seen.add(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read file: ${(err as Error).message}`], file);
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, strict: true, uniqueKeys: true });
  } catch (err) {
    throw new ConfigError([`not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`], file);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(['(top level): must be a mapping'], file);
  const own = doc as Record<string, unknown>;
  if (own.extends === undefined) return own;
  if (typeof own.extends !== 'string') throw new ConfigError(['extends: must be a file path'], file);
  const base = readLayered(path.resolve(path.dirname(file), own.extends), seen);
  const { extends: _ignored, ...rest } = own;
  return merge(base, rest);
}

/**
 * Deep merge of mappings; lists and scalars of `over` replace those of `base`. An empty value
 * (a bare `workers:` in YAML is null) keeps the profile's section instead of erasing it.
 */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v === null && b !== undefined) continue;
    out[k] = isMap(b) && isMap(v) ? merge(b, v) : v;
  }
  return out;
}

const isMap = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
