import type { AtRestCompressor } from '../compress/at-rest.js';
import type { CodecPool } from '../compress/pool.js';
import type { GatewayConfig } from '../config/types.js';
import type { Forwarders } from '../forward/forwarders.js';
import type { CommitmentScp } from '../receive/commitment-scp.js';
import type { DicomServer } from '../receive/server.js';
import type { DiskGuard } from '../spool/disk-guard.js';
import type { LevelSpool } from '../spool/level-spool.js';
import { VERSION } from '../version.js';
import type { CertificateState } from './certificate-watch.js';

/**
 * The status document: one JSON object that `pacs-edge status`, MQTT health, the metrics and
 * the status page all read, so they never disagree. Each part describes itself (its `status()`
 * or `stats()`); this puts the sections together. Counts, states and UIDs only: no patient data.
 */
export function statusDocument(parts: {
  config: GatewayConfig;
  startedAt: number;
  dicom: DicomServer;
  spool: LevelSpool;
  guard: DiskGuard;
  forwarders: Forwarders;
  codecPool: CodecPool;
  atRest?: AtRestCompressor | undefined;
  commitmentScp?: CommitmentScp | undefined;
  /** Whether the audit trail can write now (src/audit/failure-watch.ts), with audit.onFailure. */
  audit?: (() => Record<string, unknown>) | undefined;
  /** Days left of every certificate the gateway presents (src/health/certificate-watch.ts). */
  certificates?: (() => CertificateState[]) | undefined;
}): () => Promise<Record<string, unknown>> {
  const { config, dicom, spool, forwarders, codecPool, atRest, commitmentScp } = parts;
  return async () => {
    const spoolStats = spool.stats();
    return {
      device: config.device.id,
      version: VERSION,
      running: true,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - parts.startedAt) / 1000),
      receive: dicom.status(),
      spool: {
        dir: config.spool.dir,
        ...spoolStats,
        freeBytes: await parts.guard.freeBytes(),
        minFreeBytes: config.spool.minFreeBytes,
        ...(atRest ? { compressAtRest: atRest.stats() } : {}),
      },
      destinations: spoolStats.destinations.map((d) => ({ ...d, ...forwarders.find(d.name)?.status() })),
      codecs: { workers: config.compress.workers, busy: codecPool.busy, queued: codecPool.queued },
      ...(commitmentScp ? { commitment: commitmentScp.stats() } : {}),
      ...(parts.audit ? { audit: parts.audit() } : {}),
      ...(parts.certificates ? { certificates: parts.certificates() } : {}),
    };
  };
}
