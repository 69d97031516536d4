import http from 'node:http';
import type { Logger } from '../log.js';
import { listenError } from '../errors.js';

/**
 * Prometheus text exposition (format 0.0.4) of the same figures as the MQTT `health` message,
 * on `http://<health.metrics.host>:<health.metrics.port>/metrics` (host 127.0.0.1 unless
 * configured otherwise). Counts, sizes, states, destination names and AE-free reasons only.
 *
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 */
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

class Writer {
  private readonly out: string[] = [];
  private readonly seen = new Set<string>();

  metric(name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number | null | undefined][]): void {
    if (!this.seen.has(name)) {
      this.seen.add(name);
      this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    }
    for (const [labels, value] of samples) {
      if (value === null || value === undefined || !Number.isFinite(value)) continue;
      const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',');
      this.out.push(`${name}${l ? `{${l}}` : ''} ${value}`);
    }
  }

  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

export function renderMetrics(h: Doc): string {
  const w = new Writer();
  const one = (v: number | null | undefined): [Record<string, string>, number | null | undefined][] => [[{}, v]];
  w.metric('pacs_edge_up', 'gauge', 'The gateway is running.', one(1));
  w.metric('pacs_edge_uptime_seconds', 'gauge', 'Seconds since the gateway started.', one(h.uptimeSeconds));
  w.metric('pacs_edge_cpu_load_percent', 'gauge', 'CPU load of the board, percent.', one(h.system?.cpuLoadPercent));
  w.metric('pacs_edge_memory_used_bytes', 'gauge', 'Memory in use on the board.', one(h.system?.memory?.usedBytes));
  w.metric('pacs_edge_memory_total_bytes', 'gauge', 'Memory of the board.', one(h.system?.memory?.totalBytes));
  w.metric('pacs_edge_process_resident_bytes', 'gauge', 'Resident memory of the gateway process.', one(h.system?.memory?.processRssBytes));
  w.metric('pacs_edge_temperature_celsius', 'gauge', 'CPU temperature, when the board has a sensor.', one(h.system?.temperatureC));
  const r = h.receive ?? {};
  w.metric('pacs_edge_receive_associations_active', 'gauge', 'Associations with modalities open now.', one(r.activeAssociations));
  w.metric('pacs_edge_receive_associations_accepted_total', 'counter', 'Associations accepted since start.', one(r.associationsAccepted));
  w.metric('pacs_edge_receive_associations_rejected_total', 'counter', 'Associations refused since start, by reason.', Object.entries(r.rejectedByReason ?? {}).map(([reason, n]) => [{ reason }, n as number]));
  w.metric('pacs_edge_receive_objects_stored_total', 'counter', 'C-STORE answered with Success since start.', one(r.objectsStored));
  w.metric('pacs_edge_receive_bytes_stored_total', 'counter', 'Bytes of the objects stored since start.', one(r.bytesStored));
  w.metric('pacs_edge_receive_objects_failed_total', 'counter', 'C-STORE answered with a failure, by status.', Object.entries(r.failuresByStatus ?? {}).map(([status, n]) => [{ status }, n as number]));
  w.metric('pacs_edge_receive_objects_per_second', 'gauge', 'Objects received per second since the previous health figures.', one(r.receivedPerSecond));
  const s = h.spool ?? {};
  w.metric('pacs_edge_spool_objects', 'gauge', 'Objects in the spool.', one(s.objects));
  w.metric('pacs_edge_spool_bytes', 'gauge', 'Bytes of the objects in the spool.', one(s.bytes));
  w.metric('pacs_edge_spool_free_bytes', 'gauge', 'Free space of the spool file system.', one(s.freeBytes));
  w.metric('pacs_edge_spool_filesystem_bytes', 'gauge', 'Size of the spool file system.', one(s.totalBytes));
  w.metric('pacs_edge_spool_min_free_bytes', 'gauge', 'spool.minFreeBytes: below it C-STORE is refused (Out of Resources).', one(s.minFreeBytes));
  w.metric('pacs_edge_spool_watermark', 'gauge', 'Spool free-space state: 1 for the current one (ok, low, full).', ['ok', 'low', 'full'].map((st) => [{ state: st }, s.watermark === st ? 1 : 0]));
  const z = s.compressAtRest;
  if (z) {
    w.metric('pacs_edge_spool_compressed_objects_total', 'counter', 'Objects compressed at rest since start.', one(z.compressed));
    w.metric('pacs_edge_spool_compress_backlog', 'gauge', 'Objects waiting for compression at rest.', one(z.backlog));
  }
  const a = h.audit;
  if (a) {
    w.metric('pacs_edge_audit_recording', 'gauge', '1 while audit records are written, 0 while they cannot be (audit.onFailure decides what receive does).', one(a.state === 'ok' ? 1 : 0));
    w.metric('pacs_edge_audit_queued_records', 'gauge', 'Audit records made but not yet durable (waiting in memory).', one(a.queuedRecords));
    w.metric('pacs_edge_audit_failures_total', 'counter', 'Times audit recording stopped since start.', one(a.failures));
  }
  for (const c of (h.certificates ?? []) as Doc[]) {
    w.metric('pacs_edge_certificate_days_left', 'gauge', 'Days until a certificate the gateway presents expires (negative: expired), by role.', [[{ role: String(c.role), name: String(c.name) }, c.daysLeft]]);
  }
  for (const d of (h.destinations ?? []) as Doc[]) {
    const l = { destination: String(d.name) };
    w.metric('pacs_edge_destination_pending', 'gauge', 'Objects queued for the destination.', [[l, d.pending]]);
    w.metric('pacs_edge_destination_pending_bytes', 'gauge', 'Bytes queued for the destination.', [[l, d.pendingBytes]]);
    w.metric('pacs_edge_destination_oldest_pending_seconds', 'gauge', 'Age of the oldest object queued for the destination.', [[l, d.oldestPendingSeconds]]);
    w.metric('pacs_edge_destination_dead_letters', 'gauge', 'Objects set aside for the destination.', [[l, d.deadLetter]]);
    if (d.state !== undefined) w.metric('pacs_edge_destination_up', 'gauge', '1 when the destination is up, 0 when backing off or down.', [[l, d.state === 'up' ? 1 : 0]]);
    w.metric('pacs_edge_destination_sent_total', 'counter', 'Objects the destination confirmed since start.', [[l, d.sent]]);
    w.metric('pacs_edge_destination_sent_bytes_total', 'counter', 'Bytes sent to the destination since start.', [[l, d.sentBytes]]);
    w.metric('pacs_edge_destination_retries_total', 'counter', 'Transient failures since start.', [[l, d.retries]]);
    w.metric('pacs_edge_destination_dead_lettered_total', 'counter', 'Objects dead-lettered since start.', [[l, d.deadLettered]]);
    w.metric('pacs_edge_destination_last_success_timestamp_seconds', 'gauge', 'Time of the last confirmation.', [[l, d.lastSuccessAt ? Date.parse(d.lastSuccessAt) / 1000 : null]]);
    const c = d.compression;
    if (c) {
      w.metric('pacs_edge_destination_compressed_bytes_in_total', 'counter', 'Data set bytes before compression, objects sent compressed.', [[l, c.bytesIn]]);
      w.metric('pacs_edge_destination_compressed_bytes_out_total', 'counter', 'Data set bytes after compression, objects sent compressed.', [[l, c.bytesOut]]);
      w.metric('pacs_edge_destination_verify_failures_total', 'counter', 'Compressed frames that did not decode to the original.', [[l, c.verifyFailures]]);
    }
  }
  return w.text();
}

/** Serve /metrics; resolves once listening. */
export async function serveMetrics(opts: { host: string; port: number; health: () => Promise<Record<string, unknown>>; log: Logger }): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    opts
      .health()
      .then((h) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(renderMetrics(h)))
      .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, 'metrics listener (health.metrics.port)', opts.host, opts.port)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  opts.log.info({ host: opts.host, port }, 'metrics listening');
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}
