import path from 'node:path';

/** A parsed mapping of the configuration document. */
export type Obj = Record<string, unknown>;
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/**
 * Reads one value of the document by its path and records every problem instead of throwing, so
 * validateConfig reports all of a file's problems at once. Each reader returns undefined for a
 * value that is absent or wrong (the caller's default then stands; the problem is kept).
 */
export class Validator {
  readonly problems: string[] = [];

  problem(p: string, msg: string): void {
    this.problems.push(`${p || '(top level)'}: ${msg}`);
  }

  object(x: unknown, p: string, keys: readonly string[]): Obj {
    if (x === undefined || x === null) {
      this.problem(p, 'required section is missing');
      return {};
    }
    if (typeof x !== 'object' || Array.isArray(x)) {
      this.problem(p, `must be a mapping, got ${kind(x)}`);
      return {};
    }
    for (const k of Object.keys(x)) {
      if (!keys.includes(k)) {
        const near = keys.find((c) => c.toLowerCase() === k.toLowerCase());
        this.problem(p ? `${p}.${k}` : k, `unknown key${near ? ` (did you mean "${near}"?)` : ''}`);
      }
    }
    return x as Obj;
  }

  array(x: unknown, p: string): unknown[] {
    if (!Array.isArray(x)) {
      this.problem(p, `must be a list, got ${kind(x)}`);
      return [];
    }
    return x;
  }

  string(x: unknown, p: string, o: { required?: boolean; pattern?: RegExp; hint?: string } = {}): string | undefined {
    if (x === undefined || x === null) {
      if (o.required) this.problem(p, 'required');
      return undefined;
    }
    if (typeof x !== 'string' || x.length === 0) {
      this.problem(p, `must be a non-empty string, got ${kind(x)}`);
      return undefined;
    }
    if (o.pattern && !o.pattern.test(x)) {
      this.problem(p, `"${x}" is not valid${o.hint ? ` (${o.hint})` : ''}`);
      return undefined;
    }
    return x;
  }

  boolean(x: unknown, p: string): boolean | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'boolean') {
      this.problem(p, `must be true or false, got ${JSON.stringify(x)}`);
      return undefined;
    }
    return x;
  }

  /** AE title: 1-16 characters of the default repertoire, no backslash or control characters. @see PS3.5 Table 6.2-1 */
  aeTitle(x: unknown, p: string, o: { required?: boolean; wildcard?: boolean } = {}): string | undefined {
    const s = this.string(x, p, o.required ? { required: true } : {});
    if (s === undefined) return undefined;
    if (o.wildcard && s === '*') return s;
    const t = s.trim();
    if (t.length === 0 || t.length > 16 || /[\\\x00-\x1f\x7f-\uffff]/.test(t)) {
      this.problem(p, `"${s}" is not a valid AE title (1-16 ASCII characters, no backslash)`);
      return undefined;
    }
    return t;
  }

  number(x: unknown, p: string, o: { min: number; max: number; required?: boolean }): number | undefined {
    if (x === undefined || x === null) {
      if (o.required) this.problem(p, 'required');
      return undefined;
    }
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      this.problem(p, `must be a number, got ${kind(x)}`);
      return undefined;
    }
    if (x < o.min || x > o.max) {
      this.problem(p, `${x} is out of range [${o.min}, ${o.max}]`);
      return undefined;
    }
    return x;
  }

  int(x: unknown, p: string, o: { min: number; max: number; required?: boolean }): number | undefined {
    const n = this.number(x, p, o);
    if (n !== undefined && !Number.isInteger(n)) {
      this.problem(p, `must be a whole number, got ${n}`);
      return undefined;
    }
    return n;
  }

  /** A byte count: a number, or a string such as "2GiB", "500 MB", "0". */
  bytes(x: unknown, p: string): number | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x === 'number' && Number.isInteger(x) && x >= 0) return x;
    if (typeof x === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(x);
      const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
      if (m && unit !== undefined) return Math.round(Number(m[1]) * unit);
    }
    this.problem(p, `must be a byte count such as 2147483648 or "2GiB", got ${JSON.stringify(x)}`);
    return undefined;
  }

  oneOf<T extends string>(x: unknown, p: string, allowed: readonly T[]): T | undefined {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || !allowed.includes(x as T)) {
      this.problem(p, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${JSON.stringify(x)}`);
      return undefined;
    }
    return x as T;
  }
}

function kind(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  return `${typeof x} ${JSON.stringify(x)}`;
}

/** Reads a file path of the configuration, resolved against the configuration's directory. */
export type FileReader = (x: unknown, p: string, required?: boolean) => string | undefined;

export function fileReader(v: Validator, baseDir: string): FileReader {
  return (x, p, required = false) => ((f) => (f ? path.resolve(baseDir, f) : undefined))(v.string(x, p, { required }));
}
