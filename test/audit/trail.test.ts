import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditTrail } from '../../src/audit/trail.js';
import { parseRecord } from '../../src/audit/chain.js';
import { verifyTrail } from '../../src/audit/verify.js';
import { tempDir, waitFor } from '../helpers/processes.js';
import { openTrail, received, start } from './helpers.js';

const tmp = tempDir('pacs-edge-audit-trail-');
afterAll(() => tmp.cleanup());
let n = 0;
const base = () => {
  const d = path.join(tmp.dir, `t${++n}`);
  mkdirSync(d);
  return d;
};

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const DAY = 86_400_000;

/** A trail with records on three consecutive days (4 + 4 + 4), stopped. */
async function threeDays(): Promise<{ dir: string; chainKey: Buffer; files: string[] }> {
  let t = Date.UTC(2025, 0, 10, 12);
  const { trail, dir, chainKey } = await openTrail(base(), { now: () => new Date(t) });
  for (let d = 0; d < 3; d++) {
    t = Date.UTC(2025, 0, 10 + d, 12);
    for (let i = 0; i < 4; i++) trail.record(received(d * 10 + i));
    await trail.flush();
  }
  await trail.stop();
  return { dir, chainKey, files: readdirSync(dir).filter((f) => f.endsWith('.log')).sort() };
}

describe('AuditTrail', () => {
  it('batches records and fsyncs them on its own timer (no stop or flush needed), chains every record, and verify finds it intact', async () => {
    const { trail, dir, chainKey } = await openTrail(base());
    trail.record(start);
    for (let i = 1; i <= 20; i++) trail.record(received(i));
    expect(trail.lastSeq).toBe(21);
    // Behaviour, not time: the batch becomes durable by itself (the flush timer), however busy the box.
    await waitFor(() => trail.durableSeq === 21, { timeoutMs: 10_000, intervalMs: 20, what: 'the batch to be fsynced by the flush timer' });
    const [file] = readdirSync(dir).filter((f) => f.endsWith('.log'));
    const recs = lines(path.join(dir, file!)).map((l) => parseRecord(l)!);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(recs[0]!.prev).toBe('0'.repeat(64));
    for (let i = 1; i < recs.length; i++) expect(recs[i]!.prev).toBe(recs[i - 1]!.hmac);
    expect(Object.keys(JSON.parse(lines(path.join(dir, file!))[0]!) as object)).toEqual(['seq', 'at', 'prev', 'hmac', 'xml']);
    const head = JSON.parse(readFileSync(path.join(dir, 'head.json'), 'utf8')) as { seq: number; hmac: string };
    expect(head).toMatchObject({ seq: 21, hmac: recs[20]!.hmac });
    await trail.stop();
    const r = await verifyTrail(dir, chainKey);
    expect(r).toMatchObject({ ok: true, records: 21, firstSeq: 1, lastSeq: 21, files: 1 });
  });

  it('stop() flushes what is queued (no timer needed)', async () => {
    const { trail, dir, chainKey } = await openTrail(base(), { flushDelayMs: 100 });
    for (let i = 0; i < 5; i++) trail.record(received(i));
    await trail.stop();
    expect((await verifyTrail(dir, chainKey)).records).toBe(5);
    expect(trail.record(start)).toBeUndefined(); // after stop: refused, never thrown
    expect(existsSync(path.join(dir, 'audit.lock'))).toBe(false);
  });

  it('rotates daily; the first record of a day chains to the last of the day before', async () => {
    const { dir, chainKey, files } = await threeDays();
    expect(files).toEqual(['audit-20250110.log', 'audit-20250111.log', 'audit-20250112.log']);
    const last1 = parseRecord(lines(path.join(dir, files[0]!)).at(-1)!)!;
    const first2 = parseRecord(lines(path.join(dir, files[1]!))[0]!)!;
    expect(first2.prev).toBe(last1.hmac);
    expect(first2.seq).toBe(last1.seq + 1);
    expect(await verifyTrail(dir, chainKey)).toMatchObject({ ok: true, records: 12, files: 3 });
  });

  it('one byte edited: verify names that record', async () => {
    const { dir, chainKey, files } = await threeDays();
    const f = path.join(dir, files[1]!);
    const text = readFileSync(f, 'utf8');
    const i = text.indexOf('CT01', text.indexOf('\n') + 1); // in the second line
    writeFileSync(f, `${text.slice(0, i)}CT02${text.slice(i + 4)}`);
    const r = await verifyTrail(dir, chainKey);
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ what: 'edited', file: files[1], line: 2, seq: 6 });
  });

  it('a middle line deleted: a gap, named by seq', async () => {
    const { dir, chainKey, files } = await threeDays();
    const f = path.join(dir, files[1]!);
    const l = lines(f);
    writeFileSync(f, `${[l[0], l[2], l[3]].join('\n')}\n`);
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'missing', file: files[1], line: 2, seq: 6 });
  });

  it('two lines swapped: reordered', async () => {
    const { dir, chainKey, files } = await threeDays();
    const f = path.join(dir, files[2]!);
    const l = lines(f);
    writeFileSync(f, `${[l[0], l[2], l[1], l[3]].join('\n')}\n`);
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'reordered', file: files[2], line: 2, seq: 11 });
  });

  it('the last 2 lines truncated: the head says more', async () => {
    const { dir, chainKey, files } = await threeDays();
    const f = path.join(dir, files[2]!);
    writeFileSync(f, `${lines(f).slice(0, 2).join('\n')}\n`);
    const r = await verifyTrail(dir, chainKey);
    expect(r.problem).toMatchObject({ what: 'truncated', file: files[2], line: 3, seq: 11 });
    expect(r.problem!.detail).toContain('head says 12');
  });

  it('a whole day file deleted: file-deleted at the next file', async () => {
    const { dir, chainKey, files } = await threeDays();
    rmSync(path.join(dir, files[1]!));
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'file-deleted', file: files[2], line: 1, seq: 5 });
    rmSync(path.join(dir, files[2]!));
    // The last file gone too: only the head tells.
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'truncated', seq: 5 });
  });

  it('the oldest file deleted by hand (not by retention) is caught; head edited or missing too', async () => {
    const { dir, chainKey, files } = await threeDays();
    const head = readFileSync(path.join(dir, 'head.json'), 'utf8');
    rmSync(path.join(dir, files[0]!));
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'file-deleted', file: files[1], line: 1, seq: 1 });
    writeFileSync(path.join(dir, 'head.json'), head.replace('"seq":12', '"seq":8'));
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'head-invalid' });
    rmSync(path.join(dir, 'head.json'));
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'file-deleted', seq: 1 });
  });

  it('a record forged without the key fails; so does a check with another key', async () => {
    const { dir, chainKey, files } = await threeDays();
    const f = path.join(dir, files[2]!);
    const last = parseRecord(lines(f).at(-1)!)!;
    appendFileSync(f, `${JSON.stringify({ seq: 13, at: last.at, prev: last.hmac, hmac: 'a'.repeat(64), xml: '<AuditMessage/>' })}\n`);
    expect((await verifyTrail(dir, chainKey)).problem).toMatchObject({ what: 'edited', seq: 13, line: 5 });
    expect((await verifyTrail(dir, Buffer.alloc(32, 1))).problem).toMatchObject({ what: 'head-invalid' });
  });

  it('reopened after truncation: the gap stays visible, a Security Alert is recorded, the chain goes on from the head', async () => {
    const b = base();
    const first = await openTrail(b);
    for (let i = 0; i < 6; i++) first.trail.record(received(i));
    await first.trail.stop();
    const [file] = readdirSync(first.dir).filter((f) => f.endsWith('.log'));
    const f = path.join(first.dir, file!);
    writeFileSync(f, `${lines(f).slice(0, 4).join('\n')}\n`);
    const again = await openTrail(b);
    expect(again.alarms).toEqual([{ kind: 'chain-broken', detail: expect.stringContaining('ends at seq 4 but its head says 6') }]);
    again.trail.record(start);
    await again.trail.stop();
    const recs = lines(f).map((l) => parseRecord(l)!);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3, 4, 7, 8]);
    expect(recs[4]!.xml).toContain('AUDIT-CHAIN');
    expect((await verifyTrail(first.dir, first.chainKey)).problem).toMatchObject({ what: 'missing', seq: 5, line: 5 });
  });

  it('a torn last line (crash mid-append) is cut at open and is not a failure', async () => {
    const b = base();
    const first = await openTrail(b);
    for (let i = 0; i < 3; i++) first.trail.record(received(i));
    await first.trail.stop();
    const [file] = readdirSync(first.dir).filter((x) => x.endsWith('.log'));
    appendFileSync(path.join(first.dir, file!), '{"seq":4,"at":"2025-');
    expect(await verifyTrail(first.dir, first.chainKey)).toMatchObject({ ok: true, records: 3, tornTail: { file, bytes: 20 } });
    const again = await openTrail(b);
    again.trail.record(start);
    await again.trail.stop();
    expect(await verifyTrail(first.dir, first.chainKey)).toMatchObject({ ok: true, records: 4 });
  });

  it('retention deletes old day files (audited, head base moved) and verify still passes', async () => {
    const b = base();
    let t = Date.UTC(2024, 0, 1, 12);
    const first = await openTrail(b, { now: () => new Date(t) });
    for (let i = 0; i < 3; i++) first.trail.record(received(i));
    await first.trail.flush();
    t += 10 * DAY;
    first.trail.record(received(9));
    await first.trail.stop();
    t = Date.UTC(2024, 0, 1, 12) + 200 * DAY; // 200 days later: the first file (day 0) and the second (day 10) are past 180
    const again = await openTrail(b, { now: () => new Date(t), retentionDays: 185 });
    await again.trail.retentionPass();
    await again.trail.stop();
    const files = readdirSync(again.dir).filter((x) => x.endsWith('.log')).sort();
    expect(files).toEqual(['audit-20240111.log', 'audit-20240719.log']);
    const head = JSON.parse(readFileSync(path.join(again.dir, 'head.json'), 'utf8')) as { baseSeq: number };
    expect(head.baseSeq).toBe(3);
    const deletion = parseRecord(lines(path.join(again.dir, files[1]!))[0]!)!;
    expect(deletion.xml).toContain('csd-code="110101"');
    expect(deletion.xml).toContain('EventActionCode="D"');
    expect(deletion.xml).toContain('audit-20240101.log');
    expect(again.trail.stats.retentionDeletedFiles).toBe(1);
    expect(await verifyTrail(again.dir, again.chainKey)).toMatchObject({ ok: true, firstSeq: 4, records: 2 });
  });

  it('retention keeps files the syslog server has not had yet', async () => {
    const b = base();
    let t = Date.UTC(2024, 0, 1, 12);
    const first = await openTrail(b, { now: () => new Date(t) });
    first.trail.record(received(1));
    await first.trail.stop();
    t += 400 * DAY;
    const again = await openTrail(b, { now: () => new Date(t), deliveredSeq: () => 0 });
    again.trail.record(start);
    await again.trail.flush();
    await again.trail.retentionPass();
    await again.trail.stop();
    expect(readdirSync(again.dir).filter((x) => x.endsWith('.log'))).toHaveLength(2);
    expect(again.logs.some((l) => String(l.msg).includes('not yet delivered to syslog'))).toBe(true);
  });

  it('budget: an alarm once at 80 %, at 100 % a Security Alert and a repeating alarm; nothing dropped', async () => {
    let t = Date.UTC(2025, 5, 1);
    const { trail, alarms, dir, chainKey } = await openTrail(base(), { maxBytes: 20_000, budgetRepeatMs: 60_000, now: () => new Date(t) });
    let recorded = 0;
    while (!alarms.some((a) => a.kind === 'budget-exceeded')) {
      trail.record(received(recorded++));
      t += 1000;
    }
    const warned = alarms.filter((a) => a.kind === 'budget-warning');
    expect(warned).toHaveLength(1);
    for (let i = 0; i < 10; i++) trail.record(received(recorded++)); // 10 s later: no repeat yet
    expect(alarms.filter((a) => a.kind === 'budget-exceeded')).toHaveLength(1);
    t += 60_000;
    trail.record(received(recorded++));
    expect(alarms.filter((a) => a.kind === 'budget-exceeded')).toHaveLength(2);
    expect(alarms.filter((a) => a.kind === 'budget-warning')).toHaveLength(1);
    await trail.stop();
    const r = await verifyTrail(dir, chainKey);
    expect(r.ok).toBe(true);
    expect(r.records).toBe(recorded + 2); // every record kept, plus the two Security Alerts
    const [file] = readdirSync(dir).filter((x) => x.endsWith('.log'));
    expect(lines(path.join(dir, file!)).filter((l) => l.includes('AUDIT-BUDGET'))).toHaveLength(2);
  });

  it('a write failure is logged, counted and alarmed, never thrown; the records are written once the disk is back', async () => {
    const b = base();
    const now = new Date();
    const blocker = path.join(b, 'audit', `audit-${now.toISOString().slice(0, 10).replace(/-/g, '')}.log`);
    const { trail, alarms, logs, dir, chainKey } = await openTrail(b);
    mkdirSync(blocker, { recursive: true }); // a directory where the day file should be: open() fails
    expect(() => trail.record(start)).not.toThrow();
    await trail.flush();
    expect(alarms[0]).toMatchObject({ kind: 'write-failed' });
    expect(trail.stats.writeFailures).toBe(1);
    expect(logs.some((l) => l.msg === 'audit trail write failed; records stay queued and are retried')).toBe(true);
    // Recording stopped: one alarm, and the 110133 Security Alert chained behind the failed record.
    expect(alarms.filter((a) => a.kind === 'audit-failure')).toHaveLength(1);
    expect(trail.failure.state()).toMatchObject({ state: 'failing', failures: 1 });
    trail.record(received(1));
    rmSync(blocker, { recursive: true });
    // The retry (every second) writes the queue, then 110134 Audit Recording Started follows.
    await waitFor(() => trail.durableSeq === 4, { timeoutMs: 10_000, what: 'the retry to write the queued records' });
    expect(alarms.filter((a) => a.kind === 'audit-recovered')).toHaveLength(1);
    expect(trail.failure.state()).toMatchObject({ state: 'ok', since: null, failures: 1 });
    await trail.stop();
    expect(await verifyTrail(dir, chainKey)).toMatchObject({ ok: true, records: 4 });
    const text = lines(blocker).join('\n');
    expect(text.indexOf('110133')).toBeGreaterThan(0);
    expect(text.indexOf('110134')).toBeGreaterThan(text.indexOf('110133'));
  });

  it('records the day file took but whose head the disk refused are headed by the retry, with nothing new queued: the trail recovers', async () => {
    const { trail, alarms, dir, chainKey } = await openTrail(base());
    trail.record(start);
    await trail.flush();
    // head.json cannot be replaced (a directory in its place): appends go through, heads fail.
    rmSync(path.join(dir, 'head.json'));
    mkdirSync(path.join(dir, 'head.json'));
    trail.record(received(1));
    await trail.flush();
    expect(trail.failure.state().state).toBe('failing');
    // The retry appends the 110133 alert and fails at the head again: nothing is queued now,
    // only the head is behind.
    await waitFor(() => trail.stats.writeFailures >= 2, { timeoutMs: 10_000, what: 'the retry to fail at the head too' });
    rmSync(path.join(dir, 'head.json'), { recursive: true });
    await waitFor(() => trail.failure.state().state === 'ok' || undefined, { timeoutMs: 10_000, what: 'the trail to recover without a new record' });
    expect(alarms.filter((a) => a.kind === 'audit-recovered')).toHaveLength(1);
    await trail.stop();
    expect(trail.durableSeq).toBe(trail.lastSeq);
    expect(await verifyTrail(dir, chainKey)).toMatchObject({ ok: true, records: trail.lastSeq });
  });

  it('one writer per directory: a live owner keeps the lock; a dead one, or a pid now used by another program, loses it', async () => {
    const b = base();
    mkdirSync(path.join(b, 'audit'), { recursive: true });
    // A live Node process (a gateway or a command) holds it.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(b, 'audit', 'audit.lock'), `${holder.pid}\n`);
      await expect(openTrail(b)).rejects.toMatchObject({ code: 'AUDIT_LOCKED' });
    } finally {
      holder.kill('SIGKILL');
    }
    // After a power loss the lock file survives, and at the next boot its pid may belong to
    // another program: that is no holder (the gateway would otherwise never start again).
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(b, 'audit', 'audit.lock'), `${other.pid}\n`);
      const { trail } = await openTrail(b);
      await trail.stop();
    } finally {
      other.kill('SIGKILL');
    }
    writeFileSync(path.join(b, 'audit', 'audit.lock'), '999999999\n');
    const { trail } = await openTrail(b);
    await trail.stop();
  });

  it('records the events a command may hand in through the inbox, and nothing else', async () => {
    const b = base();
    const { trail, dir } = await openTrail(b);
    writeFileSync(path.join(dir, 'inbox', '1-a.json'), JSON.stringify({ kind: 'audit-log-read', by: 'auditor' }));
    // An operator's change without the operator, or any other kind, is not taken.
    writeFileSync(path.join(dir, 'inbox', '2-b.json'), JSON.stringify({ kind: 'purged', studyUid: '1.2', count: 1, reason: 'x' }));
    writeFileSync(path.join(dir, 'inbox', '3-c.json'), JSON.stringify({ kind: 'application-stop' }));
    writeFileSync(path.join(dir, 'inbox', '4-d.json'), JSON.stringify({ kind: 'purged', studyUid: '1.2.3', count: 2, reason: 'dead letters of pacs purged by an operator', by: 'alice' }));
    writeFileSync(path.join(dir, 'inbox', '5-e.json'), JSON.stringify({ kind: 'instances-requeued', studyUid: '1.2.3', count: 1, reason: 'dead letters queued again', by: 'bob' }));
    // The inbox is read on a timer; every file is taken (recorded or refused) and removed.
    await waitFor(() => readdirSync(path.join(dir, 'inbox')).length === 0, { timeoutMs: 10_000, what: 'the inbox to be read' });
    await trail.stop();
    const [file] = readdirSync(dir).filter((x) => x.endsWith('.log'));
    const recs = lines(path.join(dir, file!));
    expect(recs).toHaveLength(3);
    expect(recs[0]).toContain('110101');
    expect(recs[1]).toContain('110105');
    expect(recs[1]).toContain('UserID=\\"alice\\"');
    expect(recs[2]).toContain('110103');
    expect(recs[2]).toContain('UserID=\\"bob\\"');
    expect(readdirSync(path.join(dir, 'inbox'))).toEqual([]);
  });

  it('an event waiting in the inbox is recorded once when the trail opens and stops at once (the two inbox passes do not overlap)', async () => {
    const b = base();
    const first = await openTrail(b);
    await first.trail.stop();
    for (let k = 0; k < 5; k++) writeFileSync(path.join(first.dir, 'inbox', `e${k}.json`), JSON.stringify({ kind: 'audit-log-read', by: `auditor${k}` }));
    const { trail, dir } = await openTrail(b);
    await trail.stop();
    const reads = readdirSync(dir)
      .filter((f) => f.endsWith('.log'))
      .flatMap((f) => lines(path.join(dir, f)))
      .filter((l) => l.includes('110101'));
    expect(reads).toHaveLength(5);
    expect(readdirSync(path.join(dir, 'inbox'))).toEqual([]);
  });
});

void AuditTrail;
