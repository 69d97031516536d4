import { resolveSopClass } from '../../dicom/sop-classes.js';
import type { ForwardConfig, GatewayConfig } from '../types.js';
import type { Sections } from './sections.js';
import type { FileReader, Validator } from './validator.js';

/** `forward[]`: the destinations, each with a unique name. */
export function readForward(v: Validator, root: Sections['root'], file: FileReader): ForwardConfig[] {
  const names = new Set<string>();
  return v.array(root.forward ?? [], 'forward').map((f, i): ForwardConfig => {
    const p = `forward[${i}]`;
    const o = v.object(f, p, ['name', 'aeTitle', 'host', 'port', 'callingAeTitle', 'associations', 'compression', 'commit', 'tls', 'match', 'prefetchBytes']);
    const t = o.tls === undefined ? undefined : v.object(o.tls, `${p}.tls`, ['ca', 'cert', 'key']);
    const name = v.string(o.name, `${p}.name`, { required: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, _ . - (1-64)' }) ?? '';
    if (name && names.has(name)) v.problem(`${p}.name`, `duplicate destination name "${name}"`);
    names.add(name);
    const out: ForwardConfig = {
      name,
      aeTitle: v.aeTitle(o.aeTitle, `${p}.aeTitle`, { required: true }) ?? '',
      host: v.string(o.host, `${p}.host`, { required: true }) ?? '',
      port: v.int(o.port, `${p}.port`, { min: 1, max: 65535, required: true }) ?? 0,
      associations: v.int(o.associations, `${p}.associations`, { min: 1, max: 32 }) ?? 2,
      compression: v.oneOf(o.compression, `${p}.compression`, ['none', 'jpeg-ls', 'htj2k', 'rle', 'deflate'] as const) ?? 'jpeg-ls',
      commit: v.boolean(o.commit, `${p}.commit`) ?? false,
      prefetchBytes: v.bytes(o.prefetchBytes, `${p}.prefetchBytes`) ?? 32 * 1024 * 1024,
    };
    if (t) {
      out.tls = { ca: file(t.ca, `${p}.tls.ca`), cert: file(t.cert, `${p}.tls.cert`), key: file(t.key, `${p}.tls.key`) };
      if (Boolean(out.tls.cert) !== Boolean(out.tls.key)) v.problem(`${p}.tls`, 'cert and key go together (the client certificate and its private key)');
    }
    const calling = v.aeTitle(o.callingAeTitle, `${p}.callingAeTitle`);
    if (calling) out.callingAeTitle = calling;
    if (o.match !== undefined) out.match = readMatch(v, o.match, p);
    return out;
  });
}

/** `forward[].match`: which objects go to the destination. */
function readMatch(v: Validator, raw: unknown, p: string): NonNullable<ForwardConfig['match']> {
  const m = v.object(raw, `${p}.match`, ['callingAeTitle', 'modality', 'sopClass', 'notSopClass']);
  const list = (x: unknown, k: string) => (x === undefined ? undefined : v.array(x, `${p}.match.${k}`).map((e, j) => v.string(e, `${p}.match.${k}[${j}]`, { required: true }) ?? ''));
  const classes = (x: unknown, k: string) =>
    list(x, k)?.map((e, j) => {
      const uid = resolveSopClass(e);
      if (!uid) v.problem(`${p}.match.${k}[${j}]`, `"${e}" is neither a SOP Class UID nor a PS3.6 keyword of a storage SOP Class (e.g. CTImageStorage)`);
      return uid ?? e;
    });
  const match: NonNullable<ForwardConfig['match']> = {};
  const ae = list(m.callingAeTitle, 'callingAeTitle');
  if (ae) match.callingAeTitle = ae;
  const mod = list(m.modality, 'modality')?.map((x) => x.toUpperCase());
  if (mod) match.modality = mod;
  const sc = classes(m.sopClass, 'sopClass');
  if (sc) match.sopClass = sc;
  const not = classes(m.notSopClass, 'notSopClass');
  if (not) match.notSopClass = not;
  return match;
}

/** The `forwarding` section: timeouts, backoff and batch sizes shared by every destination. */
export function readForwarding(v: Validator, fwd: Sections['forwarding']): GatewayConfig['forwarding'] {
  return {
    connectTimeoutSeconds: v.number(fwd.connectTimeoutSeconds, 'forwarding.connectTimeoutSeconds', { min: 1, max: 600 }) ?? 10,
    acseTimeoutSeconds: v.number(fwd.acseTimeoutSeconds, 'forwarding.acseTimeoutSeconds', { min: 1, max: 600 }) ?? 30,
    responseTimeoutSeconds: v.number(fwd.responseTimeoutSeconds, 'forwarding.responseTimeoutSeconds', { min: 1, max: 3600 }) ?? 120,
    retryBaseSeconds: v.number(fwd.retryBaseSeconds, 'forwarding.retryBaseSeconds', { min: 0.1, max: 3600 }) ?? 2,
    retryMaxSeconds: v.number(fwd.retryMaxSeconds, 'forwarding.retryMaxSeconds', { min: 1, max: 86400 }) ?? 300,
    idleReleaseSeconds: v.number(fwd.idleReleaseSeconds, 'forwarding.idleReleaseSeconds', { min: 0.1, max: 3600 }) ?? 10,
    maxAttempts: v.int(fwd.maxAttempts, 'forwarding.maxAttempts', { min: 1, max: 1000 }) ?? 10,
    batch: v.int(fwd.batch, 'forwarding.batch', { min: 1, max: 1000 }) ?? 16,
    maxPduLength: v.int(fwd.maxPduLength, 'forwarding.maxPduLength', { min: 4096, max: 16 * 1024 * 1024 }) ?? 262144,
    commitBatch: v.int(fwd.commitBatch, 'forwarding.commitBatch', { min: 1, max: 5000 }) ?? 500,
    commitTimeoutSeconds: v.number(fwd.commitTimeoutSeconds, 'forwarding.commitTimeoutSeconds', { min: 1, max: 7 * 86400 }) ?? 3600,
  };
}
