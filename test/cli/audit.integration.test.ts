import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecord } from '../../src/audit/chain.js';
import { verifyTrail } from '../../src/audit/verify.js';
import { CLI, run, startGateway, tempDir } from '../helpers/processes.js';
import { openTrail, received, start } from '../audit/helpers.js';

const tmp = tempDir('pacs-edge-audit-cli-');
afterAll(() => tmp.cleanup());
let n = 0;

/** A base dir with a config (spool in <base>/spool, so the audit dir is <base>/audit and the key <base>/keys/device.key). */
function setup(): { base: string; config: string } {
  const base = path.join(tmp.dir, `c${++n}`);
  mkdirSync(base);
  const config = path.join(base, 'gateway.yaml');
  writeFileSync(config, stringify({ device: { id: 'edge-cli' }, receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }] }, spool: { dir: path.join(base, 'spool') } }));
  return { base, config };
}

/** The anchor where the configuration's spool is (src/audit/anchor.ts). */
const anchorOf = (base: string) => path.join(base, 'spool', 'audit.anchor');
const verify = (config: string, ...extra: string[]) => run(process.execPath, [CLI, 'audit', 'verify', '--config', config, ...extra], { timeoutMs: 30_000 });
const logLines = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean));

/** What the gateway does when it opens the trail: record what commands left in the inbox. */
async function recordInbox(base: string): Promise<void> {
  const { trail } = await openTrail(base, { anchorFile: anchorOf(base) });
  await trail.stop(); // stop drains the inbox first
}

describe('pacs-edge audit verify', () => {
  it('exit 0 when intact; the reading waits in the inbox (verify writes nothing to the trail) and is recorded as 110101 Audit Log Used when the trail next opens', async () => {
    const { base, config } = setup();
    const { trail, dir, chainKey } = await openTrail(base, { anchorFile: anchorOf(base) });
    trail.record(start);
    trail.record(received(3));
    await trail.stop();
    const r = await verify(config, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; records: number; recorded: string };
    expect(out).toMatchObject({ ok: true, records: 2, recorded: 'queued in the audit inbox: the gateway records it at its next start' });
    expect(logLines(dir)).toHaveLength(2);
    await recordInbox(base);
    const last = parseRecord(logLines(dir).at(-1)!)!;
    expect(last.seq).toBe(3);
    expect(last.xml).toContain('csd-code="110101"');
    expect(last.xml).toContain('EventOutcomeIndicator="0"');
    expect(await verifyTrail(dir, chainKey)).toMatchObject({ ok: true, records: 3 });
    const human = await verify(config);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/audit trail intact: 3 record\(s\)/);
  });

  it('exit 3 when a record was edited, naming it; the reading is recorded with outcome 4', async () => {
    const { base, config } = setup();
    const { trail, dir } = await openTrail(base, { anchorFile: anchorOf(base) });
    for (let i = 0; i < 4; i++) trail.record(received(i));
    await trail.stop();
    const [file] = readdirSync(dir).filter((f) => f.endsWith('.log'));
    const f = path.join(dir, file!);
    writeFileSync(f, readFileSync(f, 'utf8').replace('1.2.3.2', '1.2.3.7'));
    const r = await verify(config);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`audit trail NOT intact: edited at ${file} line 3, seq 3`);
    const json = await verify(config, '--json');
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problem: { what: 'edited', file, line: 3, seq: 3 } });
    await recordInbox(base);
    const reads = logLines(dir).map((l) => parseRecord(l)!).filter((x) => x.xml.includes('110101'));
    expect(reads).toHaveLength(2);
    expect(reads[0]!.xml).toContain('EventOutcomeIndicator="4"');
  });

  it('exit 3 for a deleted day file; 1 without the key; 2 for a usage error', async () => {
    const { base, config } = setup();
    let t = Date.UTC(2025, 1, 1, 12);
    const { trail, dir } = await openTrail(base, { anchorFile: anchorOf(base), now: () => new Date(t) });
    for (let d = 0; d < 3; d++, t += 86_400_000) {
      trail.record(received(d));
      await trail.flush();
    }
    await trail.stop();
    const { rmSync } = await import('node:fs');
    rmSync(path.join(dir, 'audit-20250202.log'));
    const r = await verify(config, '--json');
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).problem).toMatchObject({ what: 'file-deleted', file: 'audit-20250203.log', seq: 2 });
    rmSync(path.join(base, 'keys'), { recursive: true });
    expect((await verify(config)).code).toBe(1);
    expect((await run(process.execPath, [CLI, 'audit', 'check', '--config', config])).code).toBe(2);
  });

  it('while a gateway holds the trail, the reading goes through its inbox', async () => {
    const { base, config } = setup();
    const { trail, dir } = await openTrail(base, { anchorFile: anchorOf(base) });
    trail.record(start);
    await trail.flush();
    const r = await verify(config, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).recorded).toMatch(/^(handed to the running gateway|queued in the audit inbox)/);
    await new Promise((res) => setTimeout(res, 1300));
    await trail.stop();
    expect(logLines(dir).at(-1)).toContain('110101');
  });

  it('the real gateway records Application Start and Stop', async () => {
    const base = path.join(tmp.dir, `gw${++n}`);
    mkdirSync(base);
    const gw = await startGateway({ dir: base });
    await gw.waitForLog((l) => l.msg === 'gateway listening', 20_000);
    expect(await gw.stop()).toBe(0);
    const recs = logLines(path.join(base, 'audit')).map((l) => parseRecord(l)!);
    // Application Activity: start, then stop (other records between them, e.g. the plain-listener Security Alert).
    const activity = recs.filter((x) => /<EventID csd-code="110100"/.test(x.xml));
    expect(activity.map((x) => /csd-code="(11012[01])"/.exec(x.xml)?.[1])).toEqual(['110120', '110121']);
    expect(recs.some((x) => /csd-code="110113"[\s\S]*csd-code="110128"/.test(x.xml))).toBe(true);
    const r = await verify(gw.configFile);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 60_000);
});
