import type { GatewayConfig, ForwardConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { DestinationForwarder } from './destination.js';

type Deps = Omit<ConstructorParameters<typeof DestinationForwarder>[1], 'settings' | 'callingAeTitle' | 'commitBatch' | 'commitTimeoutMs'>;

/** The forwarding settings of a configuration, as a forwarder takes them. */
function settingsOf(f: GatewayConfig['forwarding']) {
  return {
    connectTimeoutMs: f.connectTimeoutSeconds * 1000,
    acseTimeoutMs: f.acseTimeoutSeconds * 1000,
    dimseTimeoutMs: f.responseTimeoutSeconds * 1000,
    retryBaseMs: f.retryBaseSeconds * 1000,
    retryMaxMs: f.retryMaxSeconds * 1000,
    idleReleaseMs: f.idleReleaseSeconds * 1000,
    maxAttempts: f.maxAttempts,
    batch: f.batch,
    maxPduLength: f.maxPduLength,
  };
}

/**
 * The forwarders of the running gateway, one per destination: made from the configuration,
 * found by name (status, pause, resume, echo), and replaced on a reload — a destination whose
 * configuration changed (or whose forwarding settings did) is stopped (the object in flight
 * finishes) and started again from its new configuration; one removed is stopped; one added is
 * started. Objects owed to a removed destination stay in the spool until it is configured again.
 */
export class Forwarders {
  private list: DestinationForwarder[] = [];
  private configs = new Map<string, string>();

  private readonly deps: Deps & { log: Logger };
  private config: Pick<GatewayConfig, 'forward' | 'forwarding' | 'receive'>;

  constructor(o: Deps & { log: Logger; config: Pick<GatewayConfig, 'forward' | 'forwarding' | 'receive'> }) {
    const { config, ...deps } = o;
    this.deps = deps;
    this.config = config;
    this.list = config.forward.map((d) => this.make(d));
  }

  private make(d: ForwardConfig): DestinationForwarder {
    const f = this.config.forwarding;
    this.configs.set(d.name, JSON.stringify([d, f]));
    return new DestinationForwarder(d, { ...this.deps, callingAeTitle: this.config.receive.aeTitle, commitBatch: f.commitBatch, commitTimeoutMs: f.commitTimeoutSeconds * 1000, settings: settingsOf(f) });
  }

  all(): readonly DestinationForwarder[] {
    return this.list;
  }

  /**
   * Whether compressing an object at rest pays: some destination that still owes it would send
   * the compressed form as stored (src/forward/accepted-syntaxes.ts).
   */
  takesAtRest(r: { pending: readonly string[]; sopClassUid: string; transferSyntaxUid: string }, atRest: string): boolean {
    return r.pending.some((d) => this.find(d)?.takesAtRest(r.sopClassUid, r.transferSyntaxUid, atRest) === true);
  }

  find(name: string): DestinationForwarder | undefined {
    return this.list.find((x) => x.name === name);
  }

  start(): void {
    for (const f of this.list) f.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.list.map((f) => f.stop()));
  }

  /** Apply a new configuration's destinations; returns what changed. */
  async reload(next: Pick<GatewayConfig, 'forward' | 'forwarding' | 'receive'>): Promise<{ added: string[]; removed: string[]; restarted: string[] }> {
    const out = { added: [] as string[], removed: [] as string[], restarted: [] as string[] };
    const keep: DestinationForwarder[] = [];
    for (const f of this.list) {
      const d = next.forward.find((x) => x.name === f.name);
      if (!d) {
        await f.stop();
        this.configs.delete(f.name);
        out.removed.push(f.name);
      } else if (JSON.stringify([d, next.forwarding]) !== this.configs.get(f.name) || next.receive.aeTitle !== this.config.receive.aeTitle) {
        await f.stop();
        out.restarted.push(f.name);
      } else keep.push(f);
    }
    this.config = next;
    for (const d of next.forward) {
      if (keep.some((f) => f.name === d.name)) continue;
      const f = this.make(d);
      keep.push(f);
      if (!out.restarted.includes(d.name)) out.added.push(d.name);
      f.start();
    }
    this.list = next.forward.map((d) => keep.find((f) => f.name === d.name)!);
    return out;
  }
}
