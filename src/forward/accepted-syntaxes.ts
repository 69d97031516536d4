import type { Compression } from '../compress/transcode.js';
import { syntaxPlan } from './syntax-plan.js';

/**
 * What one destination accepted on its last association, per SOP class: the transfer syntaxes
 * of the presentation contexts it accepted among those proposed. A SOP class proposed again on
 * a later association replaces what was known of it. Kept in memory: after a start, nothing is
 * known until the first association (compression at rest then assumes the old rule, below).
 *
 * @see PS3.8 §9.3.3.2 (the acceptor's result per presentation context)
 */
export class AcceptedSyntaxes {
  private readonly bySopClass = new Map<string, Set<string>>();
  /** Over all SOP classes of the last association: the syntaxes proposed, and those accepted for at least one. */
  private proposed = new Set<string>();
  private acceptedAny = new Set<string>();

  /** Record an association: each proposed context, and whether it was accepted. */
  note(contexts: readonly { abstractSyntax: string; transferSyntaxes: readonly string[] }[], accepted: (sopClass: string, ts: string) => boolean): void {
    const now = new Map<string, Set<string>>();
    this.proposed = new Set();
    this.acceptedAny = new Set();
    for (const pc of contexts) {
      const set = now.get(pc.abstractSyntax) ?? new Set<string>();
      for (const ts of pc.transferSyntaxes) {
        this.proposed.add(ts);
        if (!accepted(pc.abstractSyntax, ts)) continue;
        set.add(ts);
        this.acceptedAny.add(ts);
      }
      now.set(pc.abstractSyntax, set);
    }
    for (const [k, v] of now) this.bySopClass.set(k, v);
  }

  /**
   * Whether the destination took `ts` for this SOP class when it was last proposed; for a SOP
   * class never proposed, whether it took `ts` for any class on its last association (a PACS
   * that takes no JPEG-LS for a CT rarely takes it for an MR); undefined when nothing is known.
   */
  accepts(sopClass: string, ts: string): boolean | undefined {
    const known = this.bySopClass.get(sopClass);
    if (known) return known.has(ts);
    return this.proposed.has(ts) ? this.acceptedAny.has(ts) : undefined;
  }
}

/**
 * Would this destination be sent an object compressed at rest in `atRest` exactly as stored
 * (no decode)? Its plan for the compressed form (syntax-plan.ts) is walked in order; the first
 * syntax the destination accepted last time decides. A syntax never proposed to it counts as
 * accepted (nothing known yet: compressing at rest stays the default). With `compression: none`
 * the plan sends what the modality sent (decoded), so compression at rest never saves it work.
 */
export function sendsAsStored(o: { sopClassUid: string; received: string; atRest: string; compression: Compression; accepted: AcceptedSyntaxes }): boolean {
  for (const step of syntaxPlan(o.atRest, o.compression, o.received)) {
    if (o.accepted.accepts(o.sopClassUid, step.ts) === false) continue;
    return step.how === 'as-stored';
  }
  return false;
}
