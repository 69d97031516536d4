import { describe, expect, it } from 'vitest';
import { MemorySpool } from '../../src/spool/memory-spool.js';
import { put, spoolConformance } from './conformance.js';

spoolConformance({
  name: 'MemorySpool',
  durable: false,
  create: async (destinations) => {
    const s = new MemorySpool({ destinations });
    await s.open();
    return s;
  },
  cleanup: async () => undefined,
});

describe('MemorySpool specifics', () => {
  it('read() refuses an object whose bytes no longer match their SHA-256', async () => {
    const s = new MemorySpool({ destinations: ['pacs'] });
    const r = await put(s, '1.2.3');
    s.corrupt(r.id);
    await expect(s.read(r.id)).rejects.toMatchObject({ code: 'SPOOL_CORRUPT' });
  });
});
