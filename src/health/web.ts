import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { listenError } from '../errors.js';
import type { Logger } from '../log.js';
import { tlsServerOptions } from '../security/tls.js';
import type { FileCheck } from '../config/file-check.js';
import { bytes } from '../util/format.js';

/**
 * A read-only status page for site IT (`health.web`): destinations and their queues, the disk,
 * recent studies with their state per destination, refused associations, certificates' days
 * left. Plain HTML and a little CSS from Node's own http/https — no front-end build, no script —
 * refreshed every 15 s. UIDs, AE titles, addresses and counts only: no patient data.
 *
 * On loopback it needs nothing else; elsewhere the configuration requires TLS and a password
 * (HTTP Basic, user `pacs-edge`) or client certificates (`tls.ca`): src/config/validate.ts.
 */
export interface WebSources {
  status: () => Promise<Record<string, unknown>>;
  studies: () => Record<string, unknown>[];
  certificates: () => FileCheck[];
}

const esc = (x: unknown): string => String(x ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const time = (iso: unknown) => (typeof iso === 'string' && iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : '-');

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f4}
.ok{color:#176f2c;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}.muted{color:#666}code{font-size:.9em}`;

/** The page, from the gateway's own status document, its studies and its certificates. */
export function renderPage(s: Record<string, unknown>, studies: Record<string, unknown>[], certs: FileCheck[], now = Date.now()): string {
  const r = (s.receive ?? {}) as Record<string, unknown>;
  const spool = (s.spool ?? {}) as Record<string, number | string>;
  const dests = (s.destinations ?? []) as Record<string, unknown>[];
  const refused = (r.refused ?? []) as { reason: string; why?: string; count: number; lastCallingAeTitle: string; lastAddress: string; lastAt: string }[];
  const callers = (r.callers ?? []) as { aeTitle: string; objects: number; lastStoredAt: string }[];
  const anyDown = dests.some((d) => d.state === 'down' || d.paused);
  const stateCell = (d: Record<string, unknown>) =>
    d.paused ? '<span class="warn">paused</span>' : d.state === 'up' || d.state === 'idle' ? `<span class="ok">${esc(d.state)}</span>` : d.state === 'down' ? `<span class="bad">down since ${esc(time(d.downSince))}</span>` : d.state === 'backoff' ? `<span class="warn">retrying ${esc(time(d.backoffUntil))}</span>` : esc(d.state ?? '-');
  const rows = (xs: string[]) => xs.join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="15"><title>pacs-edge ${esc(s.device)}</title><style>${CSS}</style></head>
<body>
<h1>pacs-edge <code>${esc(s.device)}</code> <span class="${anyDown ? 'warn' : 'ok'}" id="overall">${anyDown ? 'attention' : 'healthy'}</span></h1>
<p class="muted">version ${esc(s.version)}, up ${Math.round(Number(s.uptimeSeconds ?? 0) / 60)} min; page made ${esc(time(new Date(now).toISOString()))}, refreshed every 15 s.</p>
<h2>Receiving</h2>
<p>AE <code>${esc(r.aeTitle)}</code> on ${esc(r.host)}${r.port ? `:${esc(r.port)}` : ''}${r.tlsPort ? ` (TLS ${esc(r.tlsPort)})` : ''}: ${esc(r.activeAssociations)} association(s) now, ${esc(r.objectsStored)} object(s) stored since start, last ${esc(time(r.lastStoredAt))}.</p>
<table id="callers"><tr><th>Modality (calling AE)</th><th>Objects since start</th><th>Last image</th></tr>
${rows(callers.map((c) => `<tr><td><code>${esc(c.aeTitle)}</code></td><td>${esc(c.objects)}</td><td>${esc(time(c.lastStoredAt))}</td></tr>`)) || '<tr><td colspan="3" class="muted">nothing received since start</td></tr>'}
</table>
<h2>Refused associations</h2>
<table id="refused"><tr><th>Reason</th><th>Count</th><th>Last calling AE</th><th>Last address</th><th>Last</th></tr>
${rows(refused.map((x) => `<tr><td title="${esc(x.reason)}">${esc(x.why ?? x.reason)}</td><td class="bad">${esc(x.count)}</td><td><code>${esc(x.lastCallingAeTitle)}</code></td><td>${esc(x.lastAddress)}</td><td>${esc(time(x.lastAt))}</td></tr>`)) || '<tr><td colspan="5" class="muted">none</td></tr>'}
</table>
<h2>Destinations</h2>
<table id="destinations"><tr><th>Destination</th><th>State</th><th>Pending</th><th>Oldest</th><th>Dead letters</th><th>Sent</th><th>Last success</th></tr>
${rows(dests.map((d) => `<tr><td><code>${esc(d.name)}</code></td><td>${stateCell(d)}</td><td>${esc(d.pending)} (${bytes(Number(d.pendingBytes ?? 0))})</td><td>${esc(d.oldestPendingSeconds)} s</td><td class="${Number(d.deadLetter) > 0 ? 'bad' : ''}">${esc(d.deadLetter)}</td><td>${esc(d.sent ?? '-')}</td><td>${esc(time(d.lastSuccessAt))}</td></tr>`))}
</table>
<h2>Spool and disk</h2>
<p id="spool">${esc(spool.objects)} object(s), ${bytes(Number(spool.bytes ?? 0))}; free ${bytes(Number(spool.freeBytes ?? 0))} (floor ${bytes(Number(spool.minFreeBytes ?? 0))})${Number(spool.unreadable ?? 0) > 0 ? `; <span class="bad">${esc(spool.unreadable)} unreadable</span>` : ''}.</p>
<h2>Recent studies</h2>
<table id="studies"><tr><th>Last received</th><th>Study Instance UID</th><th>Modality</th><th>Images</th><th>From</th><th>State</th><th>Per destination</th></tr>
${rows(studies.slice(0, 50).map((x) => {
  const ds = (x.destinations ?? []) as { name: string; forwarded: number; pending: number; deadLetter: number }[];
  const st = String(x.state);
  return `<tr><td>${esc(time(x.lastReceived))}</td><td><code>${esc(x.studyInstanceUid)}</code></td><td>${esc((x.modalities as string[]).join('/'))}</td><td>${esc(x.instances)}</td><td><code>${esc(x.callingAeTitle)}</code></td><td class="${st === 'delivered' ? 'ok' : st === 'incomplete' ? 'bad' : 'warn'}">${esc(st)}</td><td>${ds.map((d) => `${esc(d.name)}: ${esc(d.forwarded)} sent, ${esc(d.pending)} pending${d.deadLetter ? `, <span class="bad">${esc(d.deadLetter)} dead</span>` : ''}`).join('<br>')}</td></tr>`;
})) || '<tr><td colspan="7" class="muted">no study yet</td></tr>'}
</table>
<h2>Certificates and keys</h2>
<table id="certificates"><tr><th>Setting</th><th>File</th><th>State</th></tr>
${rows(certs.map((c) => `<tr><td><code>${esc(c.key)}</code></td><td>${esc(c.file)}</td><td class="${!c.ok ? 'bad' : c.warning ? 'warn' : 'ok'}">${esc(c.detail)}</td></tr>`))}
</table>
</body></html>
`;
}

/** Serve the page; resolves once listening. */
export async function serveWeb(opts: {
  host: string;
  port: number;
  tls?: { cert: string; key: string; ca?: string | undefined } | undefined;
  passwordFile?: string | undefined;
  sources: WebSources;
  log: Logger;
}): Promise<{ port: number; close: () => Promise<void> }> {
  const password = opts.passwordFile ? readFileSync(opts.passwordFile, 'utf8').trim() : undefined;
  const digest = (x: string) => createHash('sha256').update(x).digest();
  const authorised = (req: http.IncomingMessage) => {
    if (password === undefined) return true;
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const [user, ...rest] = Buffer.from(m[1]!, 'base64').toString('utf8').split(':');
    return user === 'pacs-edge' && timingSafeEqual(digest(rest.join(':')), digest(password));
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" };
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/') {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (!authorised(req)) {
      res.writeHead(401, { ...headers, 'www-authenticate': 'Basic realm="pacs-edge", charset="UTF-8"', 'content-type': 'text/plain' }).end('authentication required\n');
      return;
    }
    opts.sources
      .status()
      .then((s) => res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(renderPage(s, opts.sources.studies(), opts.sources.certificates())))
      .catch((err: unknown) => res.writeHead(500, { ...headers, 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`));
  };
  const server = opts.tls ? https.createServer({ ...tlsServerOptions({ ...opts.tls, requireClientCert: !!opts.tls.ca }) }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, 'status page (health.web.port)', opts.host, opts.port)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  opts.log.info({ host: opts.host, port, tls: !!opts.tls, password: password !== undefined }, 'status page listening');
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}
