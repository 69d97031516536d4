import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * Replace one bench's section of a Markdown file, between `<!-- NAME:start -->` and
 * `<!-- NAME:end -->`, or append it when absent: each bench rewrites only its own figures.
 */
export function writeSection(file: string, name: string, body: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const block = `${start}\n${body}\n${end}`;
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  writeFileSync(file, i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + end.length) : `${old.trimEnd()}\n\n${block}\n`);
}
