import { copyFileSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ANCHOR_PURPOSE, anchorText, readAnchor } from '../../src/audit/anchor.js';
import { parseRecord } from '../../src/audit/chain.js';
import { verifyTrail } from '../../src/audit/verify.js';
import { tempDir } from '../helpers/processes.js';
import { openTrail, received, start } from './helpers.js';

/*
 * The audit anchor (src/audit/anchor.ts): the chain's end kept a second time, outside the audit
 * directory, under its own MAC key. Each test makes the attack and shows it is detected.
 */
const tmp = tempDir('pacs-edge-anchor-unit-');
afterAll(() => tmp.cleanup());
let n = 0;

async function setup() {
  const base = path.join(tmp.dir, `t${++n}`);
  const anchorFile = path.join(base, 'spool', 'audit.anchor');
  const open = () => openTrail(base, { anchorFile });
  const first = await open();
  const anchorKey = first.key.derive(ANCHOR_PURPOSE);
  const verify = (withAnchor = true) => verifyTrail(first.dir, first.chainKey, withAnchor ? { anchor: { file: anchorFile, key: anchorKey } } : {});
  return { base, anchorFile, anchorKey, open, first, verify, dir: first.dir };
}

const dayFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.log')).sort();

describe('audit anchor', () => {
  it('follows the head after every flush, authenticated', async () => {
    const { first, anchorFile, anchorKey, verify } = await setup();
    first.trail.record(start);
    first.trail.record(received(1));
    await first.trail.flush();
    const a = await readAnchor(anchorFile, anchorKey);
    expect(a).toMatchObject({ state: 'ok', anchor: { seq: 2 } });
    const head = JSON.parse(readFileSync(path.join(first.dir, 'head.json'), 'utf8')) as { seq: number; hmac: string };
    expect(a.state === 'ok' && a.anchor.hmac).toBe(head.hmac);
    await first.trail.stop();
    expect(await verify()).toMatchObject({ ok: true, records: 2 });
  });

  it('a new trail killed before its first head is not a finding (the anchor says no head was ever written); a head deleted later is', async () => {
    const { first, anchorFile, anchorKey, dir, verify } = await setup();
    // Opening wrote the anchor at seq 0, before any record.
    expect(await readAnchor(anchorFile, anchorKey)).toMatchObject({ state: 'ok', anchor: { seq: 0 } });
    const atOpen = readFileSync(anchorFile);
    first.trail.record(start);
    first.trail.record(received(1));
    await first.trail.stop();
    const anchorNow = readFileSync(anchorFile);
    // The state a SIGKILL between the first day-file append and the first head leaves.
    rmSync(path.join(dir, 'head.json'));
    writeFileSync(anchorFile, atOpen);
    const r = await verify();
    expect(r).toMatchObject({ ok: true, records: 2, headNotYetWritten: true });
    // Once a head was written the anchor says so, and a missing head is a finding.
    writeFileSync(anchorFile, anchorNow);
    expect(await verify()).toMatchObject({ ok: false, problem: { what: 'head-missing' } });
  });

  it('head replay: an old head.json copied back with the day file cut to match verifies without the anchor, and is named rolled-back with it', async () => {
    const { first, open, dir, verify } = await setup();
    first.trail.record(start);
    first.trail.record(received(1));
    await first.trail.flush();
    // The attacker's copy, taken earlier.
    const [file] = dayFiles(dir);
    const oldSize = statSync(path.join(dir, file!)).size;
    copyFileSync(path.join(dir, 'head.json'), path.join(dir, 'head.old'));
    for (let i = 2; i < 6; i++) first.trail.record(received(i));
    await first.trail.stop();
    // The attack: the old head back, the records after it cut away.
    copyFileSync(path.join(dir, 'head.old'), path.join(dir, 'head.json'));
    rmSync(path.join(dir, 'head.old'));
    truncateSync(path.join(dir, file!), oldSize);
    expect((await verify(false)).ok).toBe(true); // what the trail alone can show
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ what: 'rolled-back', seq: 3 });
    expect(r.problem!.detail).toMatch(/ends at seq 2 .*anchor says seq 6/);

    // The next open raises a Security Alert and continues the chain from the anchor: the gap
    // stays visible to verify for good, even once the anchor has moved on.
    const again = await open();
    expect(again.trail.anchorProblems.join()).toMatch(/restarts at seq 2, but the previous run reached seq 6/);
    await again.trail.stop();
    const lines = readFileSync(path.join(dir, file!), 'utf8').trim().split('\n');
    const alert = parseRecord(lines.at(-1)!)!;
    expect(alert.seq).toBe(7);
    expect(alert.xml).toContain('AUDIT-CHAIN');
    expect((await verify()).problem).toMatchObject({ what: 'missing', seq: 3 });
  });

  it('an anchor whose MAC fails (edited, forged, unauthenticated old format) fails verify and is a Security Alert at open', async () => {
    const { first, open, anchorFile, anchorKey, verify } = await setup();
    first.trail.record(start);
    await first.trail.stop();
    const good = readFileSync(anchorFile, 'utf8');
    const edited = JSON.parse(good) as Record<string, unknown>;
    // Moved back to seq 0 (to hide a rollback), MAC kept: fails.
    writeFileSync(anchorFile, JSON.stringify({ ...edited, seq: 0 }));
    expect(await readAnchor(anchorFile, anchorKey)).toMatchObject({ state: 'invalid', detail: expect.stringMatching(/fails its MAC/) });
    expect((await verify()).problem).toMatchObject({ what: 'anchor-invalid' });
    // Forged without the device key (another key's MAC): fails.
    const other = (await openTrail(path.join(tmp.dir, `other${n}`))).key.derive(ANCHOR_PURPOSE);
    writeFileSync(anchorFile, anchorText(other, { seq: 0, hmac: '0'.repeat(64), at: new Date().toISOString() }));
    expect((await verify()).problem).toMatchObject({ what: 'anchor-invalid' });
    // The unauthenticated format of earlier releases: fails.
    writeFileSync(anchorFile, JSON.stringify({ seq: 0, at: new Date().toISOString() }));
    expect((await verify()).problem).toMatchObject({ what: 'anchor-invalid', detail: expect.stringMatching(/no MAC/) });
    const again = await open();
    expect(again.trail.anchorProblems.join()).toMatch(/audit anchor .* is invalid \(no MAC/);
    await again.trail.stop();
    expect(again.alarms.some((a) => a.kind === 'chain-broken')).toBe(true);
  });

  it('a deleted anchor (to make a rollback unprovable) fails verify while records exist', async () => {
    const { first, anchorFile, verify } = await setup();
    first.trail.record(start);
    await first.trail.stop();
    rmSync(anchorFile);
    expect((await verify()).problem).toMatchObject({ what: 'anchor-missing' });
  });

  it('a trail replaced by another chain of the same length (the record at the anchor seq differs) is named rolled-back', async () => {
    const { first, base, dir, verify } = await setup();
    first.trail.record(start);
    first.trail.record(received(1));
    await first.trail.stop();
    const anchor = readFileSync(path.join(base, 'spool', 'audit.anchor'));
    // A fresh chain written with the device key (the attacker ran the software), then the anchor put back.
    for (const f of dayFiles(dir)) rmSync(path.join(dir, f));
    rmSync(path.join(dir, 'head.json'));
    const forged = await openTrail(base);
    forged.trail.record(start);
    forged.trail.record(received(9));
    await forged.trail.stop();
    writeFileSync(path.join(base, 'spool', 'audit.anchor'), anchor);
    expect((await verify()).problem).toMatchObject({ what: 'rolled-back', seq: 2 });
  });

  it('a trail cut below what the syslog forwarder had delivered (its cursor) is named rolled-back, even without the anchor', async () => {
    const { first, dir, verify } = await setup();
    first.trail.record(start);
    await first.trail.stop();
    writeFileSync(path.join(dir, 'syslog.cursor'), JSON.stringify({ seq: 5 }));
    const r = await verify(false);
    expect(r.problem).toMatchObject({ what: 'rolled-back', file: 'syslog.cursor', detail: expect.stringMatching(/delivered up to seq 5/) });
  });
});
