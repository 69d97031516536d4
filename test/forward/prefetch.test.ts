import { describe, expect, it } from 'vitest';
import { Prefetch } from '../../src/forward/prefetch.js';
import type { Claim } from '../../src/spool/spool.js';

const claim = (i: number, size: number): Claim => ({ destination: 'pacs', attempts: 0, record: { id: String(i).padStart(4, '0'), size } as Claim['record'] });

function harness(sizes: number[], budgetBytes: number, skip?: (c: Claim) => boolean) {
  const claims = sizes.map((s, i) => claim(i, s));
  const started: { id: string; streamed: boolean }[] = [];
  const dropped: string[] = [];
  const ahead = new Prefetch<string>(claims, {
    start: async (c, streamed) => {
      started.push({ id: c.record.id, streamed });
      return c.record.id;
    },
    budgetBytes,
    ...(skip ? { skip } : {}),
    drop: (p) => void p.then((id) => dropped.push(id)),
  });
  return { claims, started, dropped, ahead };
}

describe('Prefetch: read-ahead of a claimed batch', () => {
  it('hands objects out in claim order and starts each once, ahead of the one being sent', async () => {
    const h = harness([10, 10, 10, 10, 10, 10], 35);
    for (let i = 0; i < 6; i++) {
      expect(await h.ahead.take(i)).toBe(h.claims[i]!.record.id);
      h.ahead.done(i);
    }
    expect(h.started.map((s) => s.id)).toEqual(h.claims.map((c) => c.record.id));
    expect(h.started.every((s) => !s.streamed)).toBe(true);
  });

  it('never holds more than its budget (the object on the wire included)', async () => {
    const h = harness([10, 20, 5, 30, 10, 10, 25, 5], 40);
    await h.ahead.take(0);
    // 10 + 20 + 5 fit; 30 more would not.
    expect(h.started.map((s) => s.id)).toEqual(['0000', '0001', '0002']);
    for (let i = 0; i < 8; i++) {
      await h.ahead.take(i);
      h.ahead.done(i);
    }
    expect(h.ahead.peakBytes).toBeLessThanOrEqual(40);
    expect(h.started).toHaveLength(8);
  });

  it('an object bigger than the budget is streamed, opened only when it is next in line', async () => {
    const h = harness([10, 100, 10], 40);
    await h.ahead.take(0);
    expect(h.started).toEqual([
      { id: '0000', streamed: false },
      { id: '0001', streamed: true },
      { id: '0002', streamed: false },
    ]);
    expect(h.ahead.peakBytes).toBe(20);
  });

  it('objects set aside for this pass are not prepared', async () => {
    const h = harness([10, 10, 10], 100, (c) => c.record.id === '0001');
    await h.ahead.take(0);
    expect(h.started.map((s) => s.id)).toEqual(['0000', '0002']);
  });

  it('stopped in the middle: what was prepared and not sent is dropped, nothing else is touched', async () => {
    const h = harness([10, 10, 10, 10, 10], 100);
    await h.ahead.take(0);
    h.ahead.done(0);
    await h.ahead.take(1);
    h.ahead.dropFrom(0);
    await new Promise((r) => setImmediate(r));
    // 0 and 1 were taken (sent, closed by the sender); 2..4 prepared ahead and dropped.
    expect(h.dropped.sort()).toEqual(['0002', '0003', '0004']);
    expect(h.ahead.peakBytes).toBe(50);
  });
});
