#!/usr/bin/env node
/**
 * The import layering of src/: a module may import from its own folder and from folders to its
 * left in LAYERS, never from one to its right or from a sibling on the same layer. Imports that
 * run against the flow of data (receive → forward, util → spool) make each part impossible to
 * understand, test or replace on its own; a cycle between two files is the same problem inside a
 * folder. This script lists every cross-folder import, checks it against the order, finds import
 * cycles between files, and exits 1 naming each violation that ALLOWED does not list.
 *
 *   node scripts/check-imports.mjs [--root DIR] [--list]
 *
 * --root: the project to check (default: this script's project); --list also prints every
 * cross-folder import. test/architecture.test.ts runs it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Left to right: what each folder of src/ (or file directly in src/) may build on. Entries of one
 * inner array are siblings: neither may import the other. `cli` is last because `cli/run.ts`
 * starts the gateway (`gateway.ts`).
 */
const LAYERS = [['util'], ['dicom'], ['config'], ['security'], ['audit'], ['spool'], ['receive', 'compress'], ['forward'], ['health'], ['startup'], ['gateway.ts'], ['cli']];

/** Importable from anywhere, importing nothing of ours: the shared bottom. */
const BOTTOM = new Set(['errors.ts', 'error-codes.ts', 'log.ts', 'version.ts', 'types']);

/**
 * Known violations still to be removed. THE ONLY ALLOW-LIST: every entry names who removes it.
 * An entry matches an import by the importing file (`from`, a path or a folder prefix ending in
 * "/") and, when given, the imported file (`to`, likewise); a cycle entry lists the files of the
 * cycle. The script says which entries no longer match anything, so they can be deleted.
 */
const ALLOWED = [];

const IMPORT_RE = /(?:^|[\s;}])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function parseArgs(argv) {
  const out = { root: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), list: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--root') out.root = path.resolve(argv[++i]);
    else if (argv[i] === '--list') out.list = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return out;
}

function walk(dir, root, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) walk(full, root, out);
    else if (/\.(ts|mts|cts)$/.test(e.name)) out.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return out.sort();
}

/** Comments removed (keeping line breaks), so an import quoted in TSDoc is not taken for one. */
function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/[^\n]*/g, '$1');
}

/** `src/a/b.ts` → `a`; `src/gateway.ts` → `gateway.ts`. */
const unitOf = (file) => file.split('/')[1];

const rankOf = (unit) => LAYERS.findIndex((l) => l.includes(unit));

/** The project file an import specifier names, or undefined for a package or node: module. */
function resolve(from, spec, files) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  const ts = base.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts').replace(/\.cjs$/, '.cts');
  for (const cand of [ts, `${base}.ts`, `${base}/index.ts`, base]) if (files.has(cand)) return cand;
  return base;
}

const matches = (pattern, file) => pattern !== undefined && (pattern.endsWith('/') ? file.startsWith(pattern) : file === pattern);

export function check(root) {
  const files = walk(path.join(root, 'src'), root);
  const set = new Set(files);
  const edges = [];
  for (const f of files) {
    const text = stripComments(readFileSync(path.join(root, f), 'utf8'));
    for (const m of text.matchAll(IMPORT_RE)) {
      const to = resolve(f, m[1] ?? m[2], set);
      if (to && to.startsWith('src/')) edges.push({ from: f, to });
    }
  }

  const problems = [];
  const cross = [];
  for (const e of edges) {
    const a = unitOf(e.from);
    const b = unitOf(e.to);
    if (a === b) continue;
    cross.push(e);
    if (BOTTOM.has(b)) continue;
    let why;
    if (BOTTOM.has(a)) why = `${a} is at the bottom and imports nothing of ours`;
    else if (rankOf(a) < 0) why = `${a} is not placed in the layering (scripts/check-imports.mjs, LAYERS)`;
    else if (rankOf(b) < 0) why = `${b} is not placed in the layering (scripts/check-imports.mjs, LAYERS)`;
    else if (rankOf(b) === rankOf(a)) why = `${a} and ${b} are siblings on one layer`;
    else if (rankOf(b) > rankOf(a)) why = `${a} may not import ${b}, which is above it`;
    if (why) problems.push({ kind: 'layer', from: e.from, to: e.to, why });
  }
  for (const cycle of cycles(files, edges)) problems.push({ kind: 'cycle', files: cycle, why: `import cycle: ${cycle.join(' → ')} → ${cycle[0]}` });

  const used = new Set();
  const allowedBy = (p) =>
    ALLOWED.findIndex((a) =>
      p.kind === 'cycle'
        ? a.cycle !== undefined && a.cycle.length === p.files.length && a.cycle.every((f) => p.files.includes(f))
        : a.cycle === undefined && matches(a.from, p.from) && (a.to === undefined || matches(a.to, p.to)),
    );
  const violations = [];
  const allowed = [];
  for (const p of problems) {
    const i = allowedBy(p);
    if (i >= 0) {
      used.add(i);
      allowed.push({ ...p, allowedAs: ALLOWED[i].why });
    } else violations.push(p);
  }
  const stale = ALLOWED.filter((_, i) => !used.has(i)).map((a) => a.why);
  return { files: files.length, edges, cross, violations, allowed, stale };
}

/** Every import cycle between files (strongly connected components of more than one file), each from its first file in sort order. */
function cycles(files, edges) {
  const next = new Map(files.map((f) => [f, []]));
  for (const e of edges) if (next.has(e.to)) next.get(e.from).push(e.to);
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
      else if (next.get(v).includes(v)) out.push([v]);
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  return out;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const r = check(args.root);
  if (args.list) for (const e of r.cross) console.log(`${e.from} -> ${e.to}`);
  for (const a of r.allowed) console.log(`allowed (${a.allowedAs}): ${a.kind === 'cycle' ? a.why : `${a.from} -> ${a.to}`}`);
  for (const s of r.stale) console.log(`allow-list entry no longer needed, delete it: ${s}`);
  for (const v of r.violations) console.log(`VIOLATION: ${v.kind === 'cycle' ? v.why : `${v.from} -> ${v.to}: ${v.why}`}`);
  console.log(`${r.files} files, ${r.edges.length} imports of our own modules, ${r.cross.length} across folders, ${r.violations.length} violations, ${r.allowed.length} allowed for now`);
  process.exitCode = r.violations.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
