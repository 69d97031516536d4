import { PacsEdgeError } from '../errors.js';
import type { GatewayConfig } from '../config/types.js';
import { controlGet } from '../health/control-server.js';
import { readSpool } from '../spool/open.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { bytes, duration } from '../util/format.js';

export { bytes, duration };
import { actAsStateOwner } from '../security/state-owner.js';
import type { AtRestStats } from '../compress/at-rest.js';
import type { CompressionStats, DestinationStatus } from '../forward/destination.js';
import type { DestinationStats } from '../spool/spool.js';

/**
 * `pacs-edge status`: ask the running gateway over its control socket; when none answers,
 * read the spool index (read-only, no recovery, opened only for the moment of the reading, so
 * a gateway starting meanwhile is never kept from its spool).
 */
export async function statusCommand(config: GatewayConfig, json: boolean, watchSeconds?: number): Promise<number> {
  actAsStateOwner(config);
  if (watchSeconds === undefined || json) return statusOnce(config, json);
  // --watch: redraw the live view until Ctrl-C (the screen is cleared each time, as `watch` does).
  for (;;) {
    const lines: string[] = [];
    const log = console.log;
    const err = console.error;
    console.log = (x: string) => lines.push(x);
    console.error = (x: string) => lines.push(x);
    try {
      await statusOnce(config, false);
    } finally {
      console.log = log;
      console.error = err;
    }
    process.stdout.write(`\x1b[2J\x1b[H${new Date().toISOString()}  (every ${watchSeconds} s, Ctrl-C to quit)\n\n${lines.join('\n')}\n`);
    await new Promise((r) => setTimeout(r, watchSeconds * 1000));
  }
}

async function statusOnce(config: GatewayConfig, json: boolean): Promise<number> {
  // A refusal (no role, an unproven caller) is the answer: the spool behind it is not the caller's to read.
  let status = (await controlGet(config.control.socket, '/status').catch((err: unknown) => {
    if (err instanceof PacsEdgeError) throw err;
    return undefined;
  })) as Record<string, unknown> | undefined;
  if (!status) {
    try {
      const spool = await readSpool(config, async (view) => view.stats());
      status = { device: config.device.id, running: false, spool: { dir: config.spool.dir, objects: spool.objects, bytes: spool.bytes, unreadable: spool.unreadable ?? 0 }, destinations: spool.destinations };
    } catch (err) {
      const msg = (err as Error).message;
      console.error(`pacs-edge status: the gateway does not answer on ${config.control.socket} and the spool cannot be read: ${msg}`);
      return exitCodeFor(err);
    }
  }
  if (json) {
    console.log(JSON.stringify(status, null, 2));
    return EXIT.ok;
  }
  console.log(renderStatus(status));
  return EXIT.ok;
}

export function renderStatus(s: Record<string, unknown>): string {
  const lines: string[] = [];
  const spool = s.spool as { dir: string; objects: number; bytes: number; freeBytes?: number };
  lines.push(`pacs-edge ${s.device}: ${s.running ? `running (pid ${s.pid}, up ${duration(Number(s.uptimeSeconds))})` : 'NOT RUNNING (figures read from the spool)'}`);
  const r = s.receive as Record<string, unknown> | undefined;
  if (r) {
    lines.push(
      `receive   ${r.aeTitle} on ${listenText(r)}  associations ${r.activeAssociations} active  stored ${r.objectsStored} (${bytes(Number(r.bytesStored))})  failed ${r.objectsFailed}  last ${r.lastStoredAt ? `${when(String(r.lastStoredAt))} (${ago(String(r.lastStoredAt))})` : 'never'}`,
    );
    // Per modality (calling AE title): the last arrival, the first thing asked at a site.
    for (const c of (r.callers as { aeTitle: string; objects: number; lastStoredAt: string }[] | undefined) ?? []) {
      lines.push(`          ${c.aeTitle}: last image ${ago(c.lastStoredAt)} (${when(c.lastStoredAt)}), ${c.objects} since start`);
    }
    // Refused associations, by reason, with who was refused last.
    for (const x of (r.refused as { reason: string; why?: string; count: number; lastCallingAeTitle: string; lastAddress: string; lastAt: string }[] | undefined) ?? []) {
      lines.push(`          REFUSED ${x.count}x ${x.reason}: ${x.why ?? ''}; last from AE ${x.lastCallingAeTitle || '(none)'} at ${x.lastAddress}, ${when(x.lastAt)}`);
    }
  }
  const blocked = (r?.blocked as { address: string; rejections: number; until: string }[] | undefined) ?? [];
  for (const b of blocked) lines.push(`          BLOCKED ${b.address} until ${when(b.until)} after ${b.rejections} refused associations`);
  lines.push(`spool     ${spool.dir}  ${spool.objects} objects  ${bytes(spool.bytes)}${spool.freeBytes !== undefined ? `  free ${bytes(spool.freeBytes)}` : ''}`);
  const unreadable = (s.spool as { unreadable?: number }).unreadable ?? 0;
  if (unreadable > 0) {
    lines.push(`          UNREADABLE ${unreadable} object(s): their files cannot be opened with this device key (wrong or missing key?).`);
    lines.push('          They are kept, unsent, and go out after a start with the key they were sealed with (see the log: "cannot be opened").');
  }
  const z = (s.spool as { compressAtRest?: AtRestStats }).compressAtRest;
  if (z) {
    const ratio = z.bytesOut > 0 ? `${(z.bytesIn / z.bytesOut).toFixed(2)}:1, ${bytes(z.bytesIn - z.bytesOut)} saved` : 'no ratio yet';
    lines.push(`          compressed at rest (JPEG-LS): ${z.compressed} objects, ${bytes(z.bytesIn)} → ${bytes(z.bytesOut)} (${ratio}); backlog ${z.backlog}${z.errors ? `; ${z.errors} errors` : ''}`);
  }
  const dests = (s.destinations as (DestinationStats & Partial<DestinationStatus>)[]) ?? [];
  if (dests.length === 0) lines.push('forward   no destinations configured: objects are kept in the spool');
  else {
    lines.push('');
    lines.push(pad(['DESTINATION', 'STATE', 'PENDING', 'BYTES', 'OLDEST', 'DEAD-LETTER', 'SENT', 'RATE/s', 'LAST SUCCESS']));
    for (const d of dests) {
      lines.push(
        pad([
          d.name,
          stateText(d, Boolean(s.running)),
          String(d.pending),
          bytes(d.pendingBytes),
          duration(d.oldestPendingSeconds),
          String(d.deadLetter),
          d.sent === undefined ? '-' : String(d.sent),
          d.rate === undefined ? '-' : String(d.rate),
          d.lastSuccessAt ? when(d.lastSuccessAt) : '-',
        ]),
      );
      if (d.lastError && (d.state === 'down' || d.state === 'backoff')) lines.push(`  last error: ${d.lastError}`);
      if (d.compression) lines.push(`  ${compressionText(d.compression)}`);
      const c = d.commitment;
      if (c) {
        lines.push(
          `  storage commitment: ${c.committed} committed, ${c.failed} not committed (re-sent or dead-lettered); waiting for a report ${c.requested} in ${c.transactions} transaction(s), to be asked ${c.waiting}${c.timeouts ? `; ${c.timeouts} timed out` : ''}`,
        );
      }
    }
  }
  const sc = s.commitment as { requests: number; pending: number; reported: number; committed: number; failed: number; reportFailures: number } | undefined;
  if (sc && sc.requests > 0) {
    lines.push('', `commitment requests from modalities: ${sc.requests} (${sc.pending} open), ${sc.reported} reported; instances ${sc.committed} committed, ${sc.failed} failed${sc.reportFailures ? `; ${sc.reportFailures} report deliveries failed` : ''}`);
  }
  const codecs = s.codecs as { workers: number; busy: number; queued: number } | undefined;
  if (codecs) lines.push('', `codecs    ${codecs.workers} worker(s), ${codecs.busy} busy, ${codecs.queued} waiting`);
  const audit = s.audit as { state: string; since: string | null; reason: string | null; onFailure: string; queuedRecords: number } | undefined;
  if (audit?.state === 'failing') {
    lines.push(`audit     FAILING since ${when(audit.since ?? undefined)}: ${audit.reason ?? ''}; ${audit.queuedRecords} record(s) waiting in memory`);
    lines.push(audit.onFailure === 'refuse' ? '          new associations are REFUSED until the trail can write again (audit.onFailure: refuse)' : '          associations are accepted; the trail may get gaps (audit.onFailure: alarm)');
  }
  const certs = (s.certificates ?? []) as { role: string; name: string; daysLeft: number | null; expired: boolean; notAfter: string | null; error?: string }[];
  for (const c of certs) {
    const who = c.role === 'forward' ? `forward ${c.name}` : c.role;
    const what = c.daysLeft === null ? `cannot be read: ${c.error ?? ''}` : c.expired ? `EXPIRED ${c.notAfter}` : `${Math.floor(c.daysLeft)} days left (${c.notAfter})${c.daysLeft <= 30 ? ' — renew it' : ''}`;
    lines.push(`cert      ${who}: ${what}`);
  }
  return lines.join('\n');
}

/** "0.0.0.0:11112", "0.0.0.0 TLS 2762", "0.0.0.0:11112 + TLS 2762" (older status documents have no tlsPort). */
function listenText(r: Record<string, unknown>): string {
  const tlsPort = r.tlsPort ? `TLS ${r.tlsPort}` : '';
  if (r.port === null || r.port === undefined) return `${r.host} ${tlsPort}`;
  return `${r.host}:${r.port}${tlsPort ? ` + ${tlsPort}` : ''}`;
}

/** "compression jpeg-ls: 120 objects, 61.2 MB → 24.1 MB (2.54:1, 37.1 MB saved)…". */
export function compressionText(c: CompressionStats): string {
  if (c.mode === 'none') return 'compression off (forward[].compression: none)';
  const ratio = c.bytesOut > 0 ? `${(c.bytesIn / c.bytesOut).toFixed(2)}:1, ${bytes(c.bytesIn - c.bytesOut)} saved` : 'no ratio yet';
  const extra = [
    c.decoded ? `${c.decoded} decoded or converted for the destination` : '',
    c.passedThrough ? `${c.passedThrough} not compressible (sent as stored)` : '',
    c.verifyFailures ? `${c.verifyFailures} VERIFY FAILURES (sent uncompressed)` : '',
    c.codecErrors ? `${c.codecErrors} codec errors` : '',
  ].filter(Boolean);
  return `compression ${c.mode}: ${c.compressed} objects, ${bytes(c.bytesIn)} → ${bytes(c.bytesOut)} (${ratio})${extra.length ? `; ${extra.join(', ')}` : ''}`;
}

/** "up", "PAUSED", "backing off until 12-04 14:02:11Z", "down since 12-04 13:40:02Z, retry 14:02:11Z". */
function stateText(d: Partial<DestinationStatus>, running: boolean): string {
  if (!running) return 'stopped';
  if (d.paused) return 'PAUSED (pacs-edge destination resume)';
  if (d.state === 'backoff') return `backing off until ${when(d.backoffUntil)}`;
  if (d.state === 'down') return `down since ${when(d.downSince)}, retry ${clock(d.backoffUntil)}`;
  return d.state ?? '-';
}

function clock(iso: string | undefined): string {
  return iso ? `${new Date(iso).toISOString().slice(11, 19)}Z` : '-';
}

/** Date and time, UTC, to the second: "2026-12-04 14:02:11Z". */
export function when(iso: string | undefined): string {
  return iso ? `${new Date(iso).toISOString().slice(0, 19).replace('T', ' ')}Z` : '-';
}

/** "2h ago", "5m ago", "just now". */
export function ago(iso: string, now = Date.now()): string {
  const sec = Math.max(0, (now - Date.parse(iso)) / 1000);
  return sec < 5 ? 'just now' : `${duration(sec)} ago`;
}

function pad(cols: string[]): string {
  const w = [16, 37, 9, 11, 9, 12, 8, 8, 21];
  return cols.map((c, i) => c.padEnd(w[i] ?? 10)).join(' ').trimEnd();
}

