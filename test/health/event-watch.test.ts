import { describe, expect, it } from 'vitest';
import { EventWatch } from '../../src/health/event-watch.js';
import type { HealthEvent } from '../../src/health/mqtt-health.js';
import { watermark } from '../../src/health/health-report.js';

describe('EventWatch: state changes become events', () => {
  const dest = (state: string, deadLetter = 0) => ({ name: 'pacs', state, deadLetter, lastError: 'CONNECT_FAILED: refused' });

  it('destination down, up, and dead letters added', () => {
    const got: HealthEvent[] = [];
    const w = new EventWatch((e) => got.push(e));
    w.update({ destinations: [dest('up')], watermark: 'ok', freeBytes: 10 });
    w.update({ destinations: [dest('backoff')], watermark: 'ok', freeBytes: 10 });
    expect(got).toEqual([]); // one or two failures: not yet down
    w.update({ destinations: [dest('down')], watermark: 'ok', freeBytes: 10 });
    w.update({ destinations: [dest('down')], watermark: 'ok', freeBytes: 10 });
    w.update({ destinations: [dest('up', 2)], watermark: 'ok', freeBytes: 10 });
    expect(got).toEqual([
      { type: 'destination-down', destination: 'pacs', reason: 'CONNECT_FAILED: refused' },
      { type: 'destination-up', destination: 'pacs' },
      { type: 'dead-letter', destination: 'pacs', added: 2, deadLetter: 2 },
    ]);
  });

  it('disk: low, then full, then ok again', () => {
    const got: HealthEvent[] = [];
    const w = new EventWatch((e) => got.push(e));
    const min = 100;
    for (const free of [1000, 150, 50, 60, 1000]) w.update({ destinations: [], watermark: watermark(free, min), freeBytes: free });
    expect(got).toEqual([
      { type: 'disk-low', watermark: 'low', freeBytes: 150 },
      { type: 'disk-low', watermark: 'full', freeBytes: 50 },
      { type: 'disk-ok', freeBytes: 1000 },
    ]);
  });

  it('the first snapshot is only the baseline', () => {
    const got: HealthEvent[] = [];
    new EventWatch((e) => got.push(e)).update({ destinations: [dest('down', 5)], watermark: 'full', freeBytes: 1 });
    expect(got).toEqual([]);
  });
});
