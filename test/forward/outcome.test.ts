import { describe, expect, it } from 'vitest';
import { Status } from '../../src/dicom/status.js';
import { Backoff } from '../../src/forward/backoff.js';
import { outcomeOfError, outcomeOfStatus } from '../../src/forward/outcome.js';
import { AssociationError as ForwardError, PacsEdgeError } from '../../src/errors.js';

describe('forward outcome: what a destination answer means for the object', () => {
  it('success and warnings are delivered (warnings flagged)', () => {
    expect(outcomeOfStatus(Status.Success.code)).toEqual({ kind: 'delivered', status: 0, warning: false });
    expect(outcomeOfStatus(Status.WarningCoercionOfDataElements.code)).toMatchObject({ kind: 'delivered', warning: true });
    expect(outcomeOfStatus(0xb006)).toMatchObject({ kind: 'delivered', warning: true });
  });

  it('out of resources (0xA7xx), resource limitation and processing failure are retried', () => {
    for (const s of [0xa700, 0xa701, 0xa7ff, Status.ResourceLimitation.code, Status.ProcessingFailure.code]) {
      expect(outcomeOfStatus(s).kind, `0x${s.toString(16)}`).toBe('retry');
    }
  });

  it('SOP class not supported, not authorized, 0xA9xx and 0xCxxx are dead-lettered with status and reason', () => {
    for (const s of [Status.SopClassNotSupported.code, Status.NotAuthorized.code, 0xa900, 0xa9ff, 0xc000, 0xc123, 0x0111]) {
      const o = outcomeOfStatus(s, 'peer says why');
      expect(o.kind, `0x${s.toString(16)}`).toBe('dead-letter');
      expect(o).toMatchObject({ status: s, peerComment: 'peer says why' });
      // Free text from the destination never enters the reason that is logged and shown in status.
      expect((o as { reason: string }).reason).not.toContain('peer says why');
    }
  });

  it('errors: retryable ones are retried, the others dead-lettered', () => {
    expect(outcomeOfError(new ForwardError('CONNECT_FAILED', 'refused', { retryable: true })).kind).toBe('retry');
    expect(outcomeOfError(new ForwardError('ASSOCIATION_REJECTED', 'permanent', { retryable: false })).kind).toBe('dead-letter');
    // A damaged spool copy is flagged as such (an alarm), not told apart by the text of its reason.
    expect(outcomeOfError(new PacsEdgeError('SPOOL_CORRUPT', 'bad sha'))).toEqual({ kind: 'dead-letter', reason: 'corrupt: bad sha', corrupt: true });
    expect(outcomeOfError(new PacsEdgeError('HASH_FAILED', 'corrupt: looks like it'))).not.toHaveProperty('corrupt');
    expect(outcomeOfError(new Error('something odd')).kind).toBe('retry');
  });
});

describe('forward backoff: exponential, jittered, capped, closed by a success', () => {
  it('doubles each failure within [50 %, 100 %] of base·2^(n-1), capped at max', () => {
    let now = 1_000_000;
    let r = 0;
    const b = new Backoff({ baseMs: 1000, maxMs: 8000, random: () => r, now: () => now });
    expect(b.state()).toEqual({ state: 'up' });
    r = 1; // longest
    expect([b.failure('x'), b.failure('x'), b.failure('x'), b.failure('x'), b.failure('x')]).toEqual([1000, 2000, 4000, 8000, 8000]);
    r = 0; // shortest
    expect(b.failure('x')).toBe(4000);
    expect(b.waitMs()).toBe(4000);
    now += 1500;
    expect(b.waitMs()).toBe(2500);
    expect(b.state()).toMatchObject({ state: 'down', failures: 6, lastError: 'x', since: 1_000_000 });
    b.success();
    expect(b.waitMs()).toBe(0);
    expect(b.state()).toEqual({ state: 'up' });
  });

  it('reports a short hiccup as backoff, a longer one as down', () => {
    const b = new Backoff({ baseMs: 10, maxMs: 100 });
    b.failure('refused');
    expect(b.state().state).toBe('backoff');
    b.failure('refused');
    b.failure('refused');
    expect(b.state().state).toBe('down');
  });
});
