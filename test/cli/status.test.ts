import { describe, expect, it } from 'vitest';
import { compressionText, renderStatus } from '../../src/cli/status.js';

describe('pacs-edge status: compression line', () => {
  const base = { mode: 'jpeg-ls' as const, compressed: 0, bytesIn: 0, bytesOut: 0, decoded: 0, passedThrough: 0, verifyFailures: 0, codecErrors: 0 };

  it('gives ratio and bytes saved, and shouts verify failures', () => {
    const t = compressionText({ ...base, compressed: 10, bytesIn: 5_000_000, bytesOut: 2_000_000, passedThrough: 2, verifyFailures: 1 });
    expect(t).toMatch(/^compression jpeg-ls: 10 objects/);
    expect(t).toContain('2.50:1');
    expect(t).toContain('2 not compressible');
    expect(t).toContain('1 VERIFY FAILURES');
  });

  it('says when compression is off, and when nothing was compressed yet', () => {
    expect(compressionText({ ...base, mode: 'none' })).toMatch(/compression off/);
    expect(compressionText(base)).toContain('no ratio yet');
  });

  it('appears under its destination, with the codec pool backlog', () => {
    const out = renderStatus({
      device: 'edge-1',
      running: true,
      pid: 1,
      uptimeSeconds: 5,
      spool: { dir: '/s', objects: 1, bytes: 10 },
      destinations: [{ name: 'pacs', pending: 1, pendingBytes: 10, oldestPendingSeconds: 1, deadLetter: 0, state: 'up', compression: { ...base, compressed: 1, bytesIn: 4, bytesOut: 2 } }],
      codecs: { workers: 1, busy: 1, queued: 3 },
    });
    expect(out).toMatch(/pacs .*\n {2}compression jpeg-ls: 1 objects/);
    expect(out).toContain('codecs    1 worker(s), 1 busy, 3 waiting');
  });

  it('shows Storage Commitment under its destination and the modalities\' requests', () => {
    const out = renderStatus({
      device: 'edge-1',
      running: true,
      pid: 1,
      uptimeSeconds: 5,
      spool: { dir: '/s', objects: 3, bytes: 30 },
      destinations: [
        { name: 'pacs', pending: 3, pendingBytes: 30, oldestPendingSeconds: 1, deadLetter: 0, state: 'up', commitment: { waiting: 1, requested: 2, transactions: 1, committed: 40, failed: 1, timeouts: 0 } },
      ],
      commitment: { requests: 2, pending: 1, reported: 1, committed: 7, failed: 0, reportFailures: 0 },
    });
    expect(out).toMatch(/pacs .*\n {2}storage commitment: 40 committed, 1 not committed .*waiting for a report 2 in 1 transaction\(s\), to be asked 1/);
    expect(out).toContain('commitment requests from modalities: 2 (1 open), 1 reported; instances 7 committed, 0 failed');
  });

  it('shows blocked addresses under receive', () => {
    const out = renderStatus({
      device: 'edge-1',
      running: true,
      pid: 1,
      uptimeSeconds: 5,
      receive: { aeTitle: 'EDGE', host: '0.0.0.0', port: null, tlsPort: 2762, activeAssociations: 0, objectsStored: 0, bytesStored: 0, objectsFailed: 0, blocked: [{ address: '10.0.0.9', rejections: 20, until: '2026-11-26T10:00:00.000Z' }] },
      spool: { dir: '/s', objects: 0, bytes: 0 },
      destinations: [],
    });
    expect(out).toMatch(/receive {3}EDGE on 0\.0\.0\.0 TLS 2762 /);
    expect(out).toMatch(/BLOCKED 10\.0\.0\.9 until .* after 20 refused associations/);
  });

  it('shouts a failing audit trail and what it does to receive; lists the certificates with their days left', () => {
    const out = renderStatus({
      device: 'edge-1',
      running: true,
      pid: 1,
      uptimeSeconds: 5,
      receive: { aeTitle: 'EDGE', host: '0.0.0.0', port: 11112, tlsPort: null, activeAssociations: 0, objectsStored: 0, bytesStored: 0, objectsFailed: 0, blocked: [] },
      spool: { dir: '/s', objects: 0, bytes: 0 },
      destinations: [],
      audit: { state: 'failing', since: '2026-11-26T10:00:00.000Z', reason: 'ENOSPC: no space left on device', onFailure: 'refuse', queuedRecords: 3, failures: 1 },
      certificates: [
        { role: 'receive', name: 'receive', file: '/c.pem', notAfter: '2026-12-01T00:00:00.000Z', daysLeft: 4.5, expired: false },
        { role: 'forward', name: 'pacs', file: '/f.pem', notAfter: '2026-11-01T00:00:00.000Z', daysLeft: -25, expired: true },
      ],
    });
    expect(out).toMatch(/audit {5}FAILING since .*: ENOSPC: no space left on device; 3 record\(s\) waiting in memory/);
    expect(out).toContain('new associations are REFUSED');
    expect(out).toMatch(/cert {6}receive: 4 days left \(2026-12-01T00:00:00\.000Z\) — renew it/);
    expect(out).toMatch(/cert {6}forward pacs: EXPIRED 2026-11-01/);
  });
});

describe('pacs-edge status --watch', () => {
  it('redraws the view until stopped', async () => {
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    const { CLI, tempDir } = await import('../helpers/processes.js');
    const t = tempDir();
    try {
      const cfg = `${t.dir}/g.yaml`;
      writeFileSync(cfg, `device: { id: edge-w }\nreceive: { aeTitle: A, callers: [{ aeTitle: B }] }\nspool: { dir: ${t.dir}/spool }\n`);
      const p = spawn(process.execPath, [CLI, 'status', '--config', cfg, '--watch', '0.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => setTimeout(r, 1800));
      p.kill('SIGINT');
      await new Promise((r) => p.once('exit', r));
      expect(out.split('\x1b[2J\x1b[H').length - 1).toBeGreaterThanOrEqual(2);
      expect(out).toContain('pacs-edge edge-w');
    } finally {
      t.cleanup();
    }
  });
});
