import type { CodecPool } from '../compress/pool.js';
import type { Compression } from '../compress/transcode.js';
import type { Logger } from '../log.js';
import type { Claim, ObjectReader, Spool } from '../spool/spool.js';
import { memoryReader } from './memory-reader.js';
import { outcomeOfError, outcomeOfStatus, type Outcome } from './outcome.js';
import type { ScuAssociation } from './scu.js';
import { syntaxPlan } from './syntax-plan.js';

/** What the destination's compression did since start. */
export interface CompressionStats {
  /** `forward[].compression` of this destination. */
  mode: Compression;
  /** Objects sent compressed, and their data set bytes before and after. */
  compressed: number;
  bytesIn: number;
  bytesOut: number;
  /** Compressed objects decoded because the destination takes only uncompressed data. */
  decoded: number;
  /** Objects sent as stored because they cannot be compressed losslessly (no pixels, float…). */
  passedThrough: number;
  /** Encoded frames that did not decode to the original: sent uncompressed instead. */
  verifyFailures: number;
  /** Codec failures (worker crash, time limit): sent in another syntax. */
  codecErrors: number;
}

/** Max presentation contexts proposed on one association. @see PS3.8 §9.3.2.2 (ids 1..255, odd) */
const MAX_CONTEXTS = 127;
/** Stored (SOP class, syntax) pairs per association: each may need up to 4 contexts (see syntax-plan.ts). */
export const MAX_PAIRS = Math.floor(MAX_CONTEXTS / 4);

/**
 * How one destination's objects go out: which presentation contexts an association proposes
 * for the stored (SOP class, syntax) pairs, and, object by object, the syntax it is sent in —
 * as stored, or converted on the codec workers — with the compression counters.
 */
export class ObjectSender {
  private readonly compression: Compression;
  private readonly zip: CompressionStats;

  constructor(
    private readonly deps: {
      destination: string;
      compression: Compression;
      spool: Spool;
      log: Logger;
      codecs?: { pool: CodecPool; verify: boolean; maxObjectBytes: number } | undefined;
    },
  ) {
    this.compression = deps.compression;
    this.zip = { mode: this.compression, compressed: 0, bytesIn: 0, bytesOut: 0, decoded: 0, passedThrough: 0, verifyFailures: 0, codecErrors: 0 };
  }

  stats(): CompressionStats {
    return { ...this.zip };
  }

  /** One presentation context per (SOP class, syntax) the stored pairs may be sent in. */
  contextsFor(pairs: readonly string[]): { id: number; abstractSyntax: string; transferSyntaxes: string[] }[] {
    const seen = new Set<string>();
    const out: { id: number; abstractSyntax: string; transferSyntaxes: string[] }[] = [];
    for (const k of pairs) {
      const [abstractSyntax, stored, received] = k.split('|') as [string, string, string | undefined];
      for (const step of this.plan(stored, received)) {
        const pc = `${abstractSyntax}|${step.ts}`;
        if (seen.has(pc) || out.length >= MAX_CONTEXTS) continue;
        seen.add(pc);
        out.push({ id: 2 * out.length + 1, abstractSyntax, transferSyntaxes: [step.ts] });
      }
    }
    return out;
  }

  private plan(stored: string, received?: string) {
    // Without codec workers (or a spool without files) only the stored syntax is possible.
    if (!this.deps.codecs || !this.deps.spool.filePath) return syntaxPlan(stored, 'none').filter((s) => s.how === 'as-stored');
    return syntaxPlan(stored, this.compression, received);
  }

  /**
   * Send one object in the first syntax of its plan that the destination accepted and that
   * works for this object: compressed if it can be (and the round trip verified), else as
   * stored, else decoded. None accepted is a permanent, stated refusal.
   */
  async deliver(assoc: ScuAssociation, c: Claim, open: () => Promise<ObjectReader>): Promise<Outcome> {
    return this.sendPrepared(assoc, c, await this.prepare(assoc, c, open));
  }

  /**
   * Everything before the wire, so that it can run ahead of the object being sent (the
   * forwarder's prefetch): choose the syntax, convert on the codec workers when needed, or
   * open (`open`: read, decrypt and check) the stored file. Never rejects.
   */
  async prepare(assoc: ScuAssociation, c: Claim, open: () => Promise<ObjectReader>): Promise<Prepared> {
    const { sopClassUid, sopInstanceUid, transferSyntaxUid: stored, id, size } = c.record;
    const plan = this.plan(stored, c.record.receivedTransferSyntaxUid);
    let codecTrouble: string | undefined;
    for (const step of plan) {
      const ctx = assoc.contextFor(sopClassUid, step.ts);
      if (ctx === undefined) continue;
      if (step.how === 'as-stored') {
        const reader = open();
        reader.catch(() => undefined);
        return { kind: 'send', ctx, reader };
      }
      const codecs = this.deps.codecs!;
      if (size > codecs.maxObjectBytes) continue;
      const conv = await codecs.pool.convert({
        op: step.how,
        target: step.how === 'encode' ? step.compression : undefined,
        to: step.how === 'decode' ? step.ts : undefined,
        path: this.deps.spool.filePath!(id),
        size,
        sha256: c.record.sha256,
        verify: codecs.verify,
        maxBytes: codecs.maxObjectBytes,
      });
      const log = this.deps.log;
      if (conv.kind === 'corrupt') return { kind: 'outcome', outcome: { kind: 'dead-letter', reason: `corrupt: ${conv.reason}`, corrupt: true } };
      if (conv.kind === 'skip') {
        if (step.how === 'encode') this.zip.passedThrough++;
        log.debug({ sopInstanceUid, id, syntax: step.ts, reason: conv.reason }, 'not converted');
        continue;
      }
      if (conv.kind === 'mismatch') {
        this.zip.verifyFailures++;
        log.warn({ sopInstanceUid, id, syntax: step.ts, reason: conv.reason }, 'compressed frames did not decode to the original: sending the object uncompressed');
        continue;
      }
      if (conv.kind !== 'done') {
        this.zip.codecErrors++;
        codecTrouble ??= conv.reason;
        log.warn({ sopInstanceUid, id, syntax: step.ts, reason: conv.reason }, 'codec failed: sending the object in another syntax');
        continue;
      }
      const converted = memoryReader({ sopClassUid, sopInstanceUid, transferSyntaxUid: conv.transferSyntaxUid }, conv.dataset);
      const encoded = step.how === 'encode';
      return {
        kind: 'send',
        ctx,
        reader: Promise.resolve(converted),
        onDelivered: (o) => {
          o.bytes = converted.size;
          if (encoded) {
            this.zip.compressed++;
            this.zip.bytesIn += conv.originalBytes;
            this.zip.bytesOut += conv.dataset.length;
          } else this.zip.decoded++;
        },
      };
    }
    // A codec failure may be transient (a worker crashed or timed out), but retrying here could
    // hold the queue forever if it is not: set it aside, saying so; `dead-letter retry` resends.
    if (codecTrouble) return { kind: 'outcome', outcome: { kind: 'dead-letter', reason: `codec failed (${codecTrouble}) and the destination accepts no other syntax the gateway can send it in` } };
    const offered = plan.map((s) => s.ts).join(', ');
    return { kind: 'outcome', outcome: { kind: 'dead-letter', reason: `destination accepts SOP Class ${sopClassUid} in none of the syntaxes the gateway can send it in (${offered})` } };
  }

  /** Put a prepared object on the wire (or return the outcome its preparation came to). */
  async sendPrepared(assoc: ScuAssociation, c: Claim, p: Prepared): Promise<Outcome> {
    if (p.kind === 'outcome') return p.outcome;
    const o = await this.send(assoc, p.ctx, c, p.reader);
    if (o.kind === 'delivered') p.onDelivered?.(o);
    return o;
  }

  private async send(assoc: ScuAssociation, ctx: number, c: Claim, opened: Promise<ObjectReader>): Promise<Outcome> {
    try {
      const file = await opened;
      try {
        const r = await assoc.store(ctx, c.record.sopClassUid, c.record.sopInstanceUid, file);
        return outcomeOfStatus(r.status, r.errorComment);
      } finally {
        await file.close().catch(() => undefined);
      }
    } catch (err) {
      return outcomeOfError(err);
    }
  }
}

/** An object made ready to go: the context and bytes to send, or already an outcome (no syntax, corrupt). */
export type Prepared =
  | { kind: 'send'; ctx: number; reader: Promise<ObjectReader>; /** Counts a converted object once delivered. */ onDelivered?: (o: Outcome & { kind: 'delivered' }) => void }
  | { kind: 'outcome'; outcome: Outcome };

/** Close what was prepared ahead and will not be sent now (its claim is given back). */
export function discard(...prepared: (Promise<Prepared> | undefined)[]): void {
  for (const p of prepared) void p?.then((x) => (x.kind === 'send' ? x.reader.then((r) => r.close()) : undefined)).catch(() => undefined);
}
