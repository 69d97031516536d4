import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PduType } from '../../src/dicom/pdu.js';
import { echoscu } from '../helpers/dcmtk.js';
import { associateRq, RawScu } from '../helpers/raw-scu.js';
import { startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { record, startMosquitto } from '../helpers/mosquitto.js';

/**
 * Access control under attack (MLPS 2.0 §8.1.4.1 登录失败处理): unknown AE titles are refused
 * and audited; an address that keeps trying is blocked for a while, with an alarm, while
 * known callers from elsewhere keep being served. The attacker is 127.0.0.2, a second
 * loopback address (loopback 127.0.0.1 itself is exempt by default).
 */
const VERIFICATION = '1.2.840.10008.1.1';
const EXPLICIT = '1.2.840.10008.1.2.1';

async function attempt(port: number, callingAe: string): Promise<'rejected' | 'accepted' | 'closed'> {
  const c = await RawScu.connect(port, '127.0.0.1', '127.0.0.2');
  try {
    c.write(associateRq({ callingAe, contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT] }] }));
    const p = await c.next(5000);
    if (!p) return 'closed';
    return p.type === PduType.AssociateRj ? 'rejected' : p.type === PduType.AssociateAc ? 'accepted' : 'closed';
  } finally {
    c.close();
  }
}

describe('caller allowlist under repeated attempts', () => {
  it('refuses unknown AE titles (audited), blocks the address after 5 in a minute, keeps serving others, unblocks later', async () => {
    const tmp = tempDir('pacs-edge-block-');
    mkdirSync(path.join(tmp.dir, 'mqtt'));
    const broker = await startMosquitto(path.join(tmp.dir, 'mqtt'));
    const events = await record(broker.url, 'pacs-edge/edge-block/events');
    const gw = await startGateway({
      dir: tmp.dir,
      receive: { callers: [{ aeTitle: 'CT01' }], blocking: { rejections: 5, windowSeconds: 60, blockSeconds: 3 } },
      config: { device: { id: 'edge-block' }, health: { mqtt: { url: broker.url, intervalSeconds: 1 } } },
    });
    try {
      for (let i = 0; i < 5; i++) expect(await attempt(gw.port, `GUESS${i}`)).toBe('rejected');
      await gw.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: 127\.0\.0\.2 blocked for 3 s after 5 refused associations/.test(l.msg));
      // The field engineer's alarm: an MQTT event naming the address.
      const ev = await waitFor(() => events.messages.find((m) => m.text.includes('"address-blocked"')), { what: 'the address-blocked event' });
      expect(JSON.parse(ev.text)).toMatchObject({ type: 'address-blocked', address: '127.0.0.2', rejections: 5, device: 'edge-block' });
      // Blocked: closed before any PDU, even with a good AE title.
      expect(await attempt(gw.port, 'CT01')).toBe('closed');
      // A known caller from another address is served meanwhile.
      expect((await echoscu(gw.port, { callingAe: 'CT01' })).code).toBe(0);
      const status = JSON.parse((await import('node:child_process')).execFileSync(process.execPath, [path.join(import.meta.dirname, '../../dist/src/cli/main.js'), 'status', '--config', gw.configFile, '--json'], { encoding: 'utf8' })) as {
        receive: { blocked: { address: string }[]; refusedBlocked: number };
      };
      expect(status.receive.blocked.map((b) => b.address)).toEqual(['127.0.0.2']);
      expect(status.receive.refusedBlocked).toBeGreaterThanOrEqual(1);
      // The block ends by itself.
      await waitFor(async () => (await attempt(gw.port, 'CT01')) === 'accepted' || undefined, { what: 'the block to end', timeoutMs: 10_000, intervalMs: 500 });
    } finally {
      await gw.stop();
      await events.close();
      await broker.stop();
    }
    // The audit trail holds each refusal and the block (PS3.15 A.5.3.11 Security Alert).
    const auditDir = path.join(tmp.dir, 'audit');
    const trail = readdirSync(auditDir)
      .filter((n) => n.endsWith('.log'))
      .map((n) => readFileSync(path.join(auditDir, n), 'utf8'))
      .join('');
    expect(trail.match(/110113/g)?.length ?? 0).toBeGreaterThanOrEqual(6);
    expect(trail).toContain('GUESS0');
    expect(trail).toMatch(/blocked for 3 s after 5 refused associations/);
    tmp.cleanup();
  }, 60_000);
});
