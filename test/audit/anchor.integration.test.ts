import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePort, run, runGateway, tempDir, writeGatewayConfig, type GatewayProcess } from '../helpers/processes.js';

/*
 * The audit anchor (`<spool.dir>/audit.anchor`, src/audit/anchor.ts) is written after every
 * flush of the trail and when it opens (see WHEN). Before it went through the durable-write helper it was neither fsynced nor
 * read defensively: a crash could leave it empty, and an empty anchor kept the gateway from
 * starting. Here the real gateway is killed at every step of that write, at start and while running,
 * and each time the next start must come up without an alert and the trail must verify.
 * An anchor the disk itself damaged (empty) is reported as a Security Alert and the gateway
 * starts, as a head that fails its MAC is (docs/audit.md); the tamper evidence the anchor gives
 * (a deleted trail is noticed) holds through all of it.
 */

const STEPS = ['durable-written', 'durable-synced', 'durable-renamed', 'durable-done'] as const;
/**
 * The 1st anchor write of a run is when the trail opens (before the gateway listens); with an
 * empty inbox and no traffic the 2nd is the flush of Application Start, or the stop when that
 * comes first: either is a run that is killed after it listens.
 */
const WHEN = [
  { when: 'start', nth: 1 },
  { when: 'running', nth: 2 },
] as const;

let tmp: { dir: string; cleanup: () => void };
let configFile: string;
let port: number;
let spoolDir: string;
const anchorFile = (): string => path.join(spoolDir, 'audit.anchor');
const auditDir = (): string => path.join(tmp.dir, 'audit');

beforeAll(async () => {
  tmp = tempDir('pacs-edge-anchor-');
  ({ configFile, port, spoolDir } = await writeGatewayConfig({ dir: tmp.dir }));
});
afterAll(() => tmp.cleanup());
// A failed assertion must not leave a gateway holding the spool for the next test.
const running: GatewayProcess[] = [];
afterEach(async () => {
  for (const gw of running.splice(0)) await gw.kill();
});

async function start(env?: Record<string, string>): Promise<GatewayProcess> {
  const gw = await runGateway(configFile, { port, spoolDir, ...(env ? { env } : {}) });
  running.push(gw);
  return gw;
}

/** A gateway that dies before it listens: wait for it to be gone, and say how it ended. */
function runUntilExit(env: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, 'run', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    p.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** What the start said about the audit trail or its anchor (other alerts, such as a plain listener, are not this test's). */
const alerts = (gw: GatewayProcess): string[] => gw.logs.filter((l) => /audit/i.test(l.msg) && (l.level === 'error' || /SECURITY ALERT/.test(l.msg))).map((l) => l.msg);

function anchorSeq(): number {
  const seq = (JSON.parse(readFileSync(anchorFile(), 'utf8')) as { seq: unknown }).seq;
  expect(Number.isSafeInteger(seq)).toBe(true);
  return seq as number;
}

function chainAlerts(): number {
  return readdirSync(auditDir())
    .filter((n) => n.endsWith('.log'))
    .flatMap((n) => readFileSync(path.join(auditDir(), n), 'utf8').split('\n').filter(Boolean))
    .filter((l) => /AUDIT-CHAIN/.test((JSON.parse(l) as { xml: string }).xml)).length;
}

/** Verify (read-only: its reading waits in the inbox), then a clean run that records the reading, so the next run's anchor writes are counted as above. */
async function verify(): Promise<void> {
  const v = await run(process.execPath, [CLI, 'audit', 'verify', '--config', configFile]);
  expect(v.code, v.stdout + v.stderr).toBe(0);
  const gw = await start();
  expect(await gw.stop()).toBe(0);
}

describe('audit anchor write killed at every step', () => {
  it('the next start comes up without an alert and the trail verifies, after a kill at start or while running', async () => {
    // A first run leaves an anchor to replace.
    const first = await start();
    expect(await first.stop()).toBe(0);
    let before = anchorSeq();
    for (const { when, nth } of WHEN) {
      for (const step of STEPS) {
        const env = { PACS_EDGE_CRASHPOINT: `${step}@audit.anchor:${nth}` };
        if (when === 'start') {
          const r = await runUntilExit(env);
          expect(r.signal, `${step} at start:\n${r.output.slice(-2000)}`).toBe('SIGKILL');
        } else {
          const gw = await start(env);
          await gw.stop();
          expect(gw.proc.signalCode, `${step} while running`).toBe('SIGKILL');
        }
        // Whole: the previous anchor or the new one, never empty, never behind an earlier run.
        const seq = anchorSeq();
        expect(seq).toBeGreaterThanOrEqual(before);
        before = seq;
        const gw = await start();
        expect(alerts(gw), `${step} at ${when}`).toEqual([]);
        expect(await gw.stop()).toBe(0);
        await verify();
        before = anchorSeq();
      }
    }
    expect(chainAlerts()).toBe(0);
  }, 180_000);

  it('an empty anchor (left by the disk, or by a hand) is a Security Alert and the gateway starts; it is written anew', async () => {
    writeFileSync(anchorFile(), '');
    const gw = await start();
    await gw.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit anchor .* is invalid \(empty\)/.test(l.msg));
    expect(await gw.stop()).toBe(0);
    expect(anchorSeq()).toBeGreaterThan(0);
    expect(chainAlerts()).toBe(1);
    await verify();
    // The fresh anchor vouches for the chain again: the next start is quiet.
    const again = await start();
    expect(alerts(again)).toEqual([]);
    expect(await again.stop()).toBe(0);
  }, 60_000);

  it('an empty configuration fingerprint (beside the trail) cannot stop the start either: a possible change is audited, the file written anew', async () => {
    const fingerprint = path.join(auditDir(), 'config.fingerprint');
    // A clean start leaves it.
    expect(await (await start()).stop()).toBe(0);
    expect(JSON.parse(readFileSync(fingerprint, 'utf8'))).toMatchObject({ all: expect.any(String), security: expect.any(String) });
    writeFileSync(fingerprint, '');
    const gw = await start();
    await gw.waitForLog((l) => l.msg === 'configuration fingerprint of the last start is unreadable: audited as a possible change, written anew');
    expect(await gw.stop()).toBe(0);
    expect(JSON.parse(readFileSync(fingerprint, 'utf8'))).toMatchObject({ all: expect.any(String), security: expect.any(String) });
    const trail = readdirSync(auditDir())
      .filter((n) => n.endsWith('.log'))
      .flatMap((n) => readFileSync(path.join(auditDir(), n), 'utf8').split('\n').filter(Boolean))
      .map((l) => (JSON.parse(l) as { xml: string }).xml);
    // 110129 Security Configuration: the change may have touched security settings.
    expect(trail.filter((x) => x.includes('110129') && x.includes('fingerprint of the last start'))).toHaveLength(1);
    await verify();
    // Written anew: the next start on the same configuration says nothing of a change.
    const again = await start();
    expect(await again.stop()).toBe(0);
    expect(again.logs.some((l) => /configuration (changed|fingerprint)/.test(l.msg))).toBe(false);
  }, 60_000);

  it('emptying the anchor does not hide a deleted trail: the start still raises an alert in the new chain', async () => {
    rmSync(auditDir(), { recursive: true });
    writeFileSync(anchorFile(), '');
    const gw = await start();
    await gw.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit anchor/.test(l.msg));
    expect(await gw.stop()).toBe(0);
    expect(chainAlerts()).toBe(1);
    // And with the anchor intact, the deletion is named as such.
    rmSync(auditDir(), { recursive: true });
    const next = await start();
    await next.waitForLog((l) => l.level === 'error' && /^SECURITY ALERT: the audit trail restarts at seq \d+, but the previous run reached seq \d+/.test(l.msg));
    expect(await next.stop()).toBe(0);
  }, 60_000);
});
