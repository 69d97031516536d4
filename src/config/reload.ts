import type { GatewayConfig } from './types.js';

/**
 * What a reload (`pacs-edge reload`, SIGHUP) may change in a running gateway, and what needs a
 * restart. Reloadable: the callers allowed in (`receive.callers`), the TLS certificate, key and
 * CAs of the DICOM TLS listener (re-read from their files at every reload, also when the
 * configuration did not change: a renewed certificate on the same path), the destinations
 * (`forward`, `forwarding`), `studies.stableSeconds` and `log.level`. Everything else — ports,
 * the spool, keys, audit, MQTT, limits — is opened once at start: a reload that changes any of it
 * is refused as a whole, with the keys that need `systemctl restart pacs-edge`.
 */
export const RELOADABLE = ['receive.callers', 'receive.tls.cert', 'receive.tls.key', 'receive.tls.ca', 'forward', 'forwarding', 'studies.stableSeconds', 'log.level'] as const;

type Obj = Record<string, unknown>;

/** The dotted paths at which two values differ (objects compared key by key, anything else as JSON). */
export function differences(a: unknown, b: unknown, at = ''): string[] {
  const isObj = (x: unknown): x is Obj => !!x && typeof x === 'object' && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => differences(a[k], b[k], at ? `${at}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}

/** The changes between two configurations, split into those a reload applies and those that need a restart. */
export function reloadPlan(current: GatewayConfig, next: GatewayConfig): { reloadable: string[]; restart: string[] } {
  const diff = differences(current, next);
  const reloadable = diff.filter((p) => RELOADABLE.some((r) => p === r || p.startsWith(`${r}.`) || p.startsWith(`${r}[`)));
  return { reloadable, restart: diff.filter((p) => !reloadable.includes(p)) };
}
