// Third-party notices for the Debian package (scripts/package.sh): the licence of every
// production package installed under NODE_MODULES (as package-lock.json lists them, dev ones
// left out), then the bundled Node runtime's. Usage: node scripts/notices.mjs ROOT RUNTIME_DIR VERSION NODE_VERSION
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const [root, runtime, version, nodeVersion] = process.argv.slice(2);
const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
const out = [`Third-party software bundled in pacs-edge ${version}`, '='.repeat(60), ''];
const packages = Object.entries(lock.packages ?? {})
  .filter(([p, e]) => p.startsWith('node_modules/') && !e.dev && !e.devOptional && existsSync(path.join(root, p, 'package.json')))
  .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
out.push(`${packages.length} npm packages, then the Node.js runtime.`, '');
for (const [p] of packages) {
  const dir = path.join(root, p);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const licence = typeof pkg.license === 'string' ? pkg.license : JSON.stringify(pkg.license ?? pkg.licenses ?? 'unknown');
  out.push('-'.repeat(90), `${pkg.name} ${pkg.version} (${licence})`, '');
  const files = readdirSync(dir).filter((n) => /^(licen[sc]e|copying|notice)/i.test(n)).sort();
  if (files.length === 0) out.push(`(the package has no licence file; its package.json says: ${licence})`, '');
  for (const f of files) out.push(readFileSync(path.join(dir, f), 'utf8').trimEnd(), '');
}
out.push('-'.repeat(90), `Node.js ${nodeVersion} (runtime in /usr/lib/pacs-edge/node/)`, '', readFileSync(path.join(runtime, 'LICENSE'), 'utf8').trimEnd(), '');
process.stdout.write(out.join('\n'));
