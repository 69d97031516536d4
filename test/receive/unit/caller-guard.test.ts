import { describe, expect, it } from 'vitest';
import { CallerGuard } from '../../../src/receive/caller-guard.js';

describe('CallerGuard: repeated rejections block an address for a while', () => {
  const settings = { rejections: 3, windowSeconds: 60, blockSeconds: 600, exempt: ['127.0.0.1', '::1'] };

  it('blocks at the threshold within the window, and only then', () => {
    let t = 0;
    const g = new CallerGuard(settings, () => t);
    expect(g.rejected('10.0.0.9')).toBeUndefined();
    t = 61_000; // the first one has left the window
    expect(g.rejected('10.0.0.9')).toBeUndefined();
    expect(g.rejected('10.0.0.9')).toBeUndefined();
    expect(g.blocked('10.0.0.9')).toBeUndefined();
    const b = g.rejected('::ffff:10.0.0.9');
    expect(b).toEqual({ address: '10.0.0.9', since: 61_000, until: 661_000, rejections: 3 });
    expect(g.blocked('10.0.0.9')).toBeDefined();
    expect(g.blocked('10.0.0.8')).toBeUndefined();
    expect(g.list().map((x) => x.address)).toEqual(['10.0.0.9']);
    t = 661_000;
    expect(g.blocked('10.0.0.9')).toBeUndefined();
    expect(g.list()).toEqual([]);
  });

  it('never blocks an exempt address', () => {
    const g = new CallerGuard(settings, () => 0);
    for (let i = 0; i < 10; i++) expect(g.rejected('127.0.0.1')).toBeUndefined();
    expect(g.blocked('127.0.0.1')).toBeUndefined();
  });
});
