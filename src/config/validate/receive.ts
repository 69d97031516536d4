import { isIP } from 'node:net';
import { transferSyntax } from '../../dicom/transfer-syntaxes.js';
import { isValidUid } from '../../dicom/uids.js';
import type { CallerConfig, GatewayConfig } from '../types.js';
import type { Sections } from './sections.js';
import type { FileReader, Validator } from './validator.js';

/** `receive.callers`: the modalities allowed to send. */
export function readCallers(v: Validator, receive: Sections['receive']): CallerConfig[] {
  return v.array(receive.callers ?? [], 'receive.callers').map((c, i): CallerConfig => {
    const p = `receive.callers[${i}]`;
    const o = v.object(c, p, ['aeTitle', 'host', 'port']);
    const aeTitle = v.aeTitle(o.aeTitle, `${p}.aeTitle`, { required: true, wildcard: true }) ?? '';
    const host = v.string(o.host, `${p}.host`);
    // Compared with the peer's address as is: a host name would never match (no DNS lookups on the receive path).
    if (host && isIP(host) === 0) v.problem(`${p}.host`, `"${host}" is not an IP address (host names are not resolved)`);
    const port = v.int(o.port, `${p}.port`, { min: 1, max: 65535 });
    return { aeTitle, ...(host ? { host } : {}), ...(port !== undefined ? { port } : {}) };
  });
}

/** `receive.transferSyntaxes`: "all", or UIDs of syntaxes this gateway knows. */
export function readTransferSyntaxes(v: Validator, receive: Sections['receive']): 'all' | string[] {
  const ts = receive.transferSyntaxes;
  if (ts === undefined || ts === 'all') return 'all';
  return v.array(ts, 'receive.transferSyntaxes').map((u, i) => {
    const s = v.string(u, `receive.transferSyntaxes[${i}]`, { required: true }) ?? '';
    if (s && !isValidUid(s)) v.problem(`receive.transferSyntaxes[${i}]`, `"${s}" is not a UID`);
    else if (s && !transferSyntax(s)) v.problem(`receive.transferSyntaxes[${i}]`, `"${s}" is not a transfer syntax this gateway knows`);
    return s;
  });
}

/** The `receive` section, with the callers and transfer syntaxes read before it. */
export function readReceive(
  v: Validator,
  s: Pick<Sections, 'receive' | 'receiveTls' | 'blocking' | 'commitment'>,
  file: FileReader,
  read: { callers: CallerConfig[]; transferSyntaxes: 'all' | string[] },
): GatewayConfig['receive'] {
  const { receive, receiveTls, blocking, commitment } = s;
  return {
    aeTitle: v.aeTitle(receive.aeTitle, 'receive.aeTitle', { required: true }) ?? '',
    host: v.string(receive.host, 'receive.host') ?? '0.0.0.0',
    port: v.int(receive.port, 'receive.port', { min: 1, max: 65535 }) ?? 11112,
    // With TLS, plain DICOM only when asked for (a port, or plain: true); without TLS it is the only listener.
    plain: v.boolean(receive.plain, 'receive.plain') ?? (receiveTls === undefined || receive.port !== undefined),
    tls: receiveTls
      ? {
          port: v.int(receiveTls.port, 'receive.tls.port', { min: 1, max: 65535 }) ?? 2762,
          cert: file(receiveTls.cert, 'receive.tls.cert', true) ?? '',
          key: file(receiveTls.key, 'receive.tls.key', true) ?? '',
          ca: file(receiveTls.ca, 'receive.tls.ca'),
          requireClientCert: v.boolean(receiveTls.requireClientCert, 'receive.tls.requireClientCert') ?? true,
        }
      : undefined,
    callers: read.callers,
    maxAssociations: v.int(receive.maxAssociations, 'receive.maxAssociations', { min: 1, max: 1024 }) ?? 8,
    maxPduLength: v.int(receive.maxPduLength, 'receive.maxPduLength', { min: 4096, max: 16 * 1024 * 1024 }) ?? 262144,
    artimTimeoutSeconds: v.number(receive.artimTimeoutSeconds, 'receive.artimTimeoutSeconds', { min: 1, max: 3600 }) ?? 30,
    idleTimeoutSeconds: v.number(receive.idleTimeoutSeconds, 'receive.idleTimeoutSeconds', { min: 1, max: 86400 }) ?? 120,
    unknownSopClasses: v.oneOf(receive.unknownSopClasses, 'receive.unknownSopClasses', ['reject', 'accept']) ?? 'reject',
    transferSyntaxes: read.transferSyntaxes,
    maxObjectBytes: v.bytes(receive.maxObjectBytes, 'receive.maxObjectBytes') ?? 4 * 1024 ** 3,
    blocking: {
      rejections: v.int(blocking.rejections, 'receive.blocking.rejections', { min: 1, max: 100_000 }) ?? 20,
      windowSeconds: v.number(blocking.windowSeconds, 'receive.blocking.windowSeconds', { min: 1, max: 86400 }) ?? 60,
      blockSeconds: v.number(blocking.blockSeconds, 'receive.blocking.blockSeconds', { min: 0, max: 30 * 86400 }) ?? 600,
      exempt: blocking.exempt === undefined ? ['127.0.0.1', '::1'] : v.array(blocking.exempt, 'receive.blocking.exempt').map((x, i) => {
        const a = v.string(x, `receive.blocking.exempt[${i}]`, { required: true }) ?? '';
        if (a && isIP(a) === 0) v.problem(`receive.blocking.exempt[${i}]`, `"${a}" is not an IP address`);
        return a;
      }),
    },
    commitment: {
      enabled: v.boolean(commitment.enabled, 'receive.commitment.enabled') ?? true,
      report: v.oneOf(commitment.report, 'receive.commitment.report', ['spooled', 'forwarded'] as const) ?? 'spooled',
      timeoutSeconds: v.number(commitment.timeoutSeconds, 'receive.commitment.timeoutSeconds', { min: 1, max: 7 * 86400 }) ?? 3600,
    },
  };
}
