// A message-level test network of RawNodes over MemoryStorage, for scenario tests that need
// hand-built logs, hand-delivered messages or injected messages. SimCluster is the higher-level
// (and contractual) simulator; this one exposes every message.
import { MemoryStorage } from '../log-storage.js';
import { seededRandom } from '../prng.js';
import { RawNode } from '../raft.js';
import type { RaftConfig } from '../raft.js';
import type { Entry, HardState, Message, NodeId, ReadState } from '../types.js';

export interface TestNodeSpec {
  readonly id: NodeId;
  /** Log terms for indexes 1..n (data is derived from index and term). */
  readonly terms?: readonly number[];
  readonly hardState?: HardState;
}

export interface TestNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raft: RawNode;
  readonly applied: Entry[];
  readonly readStates: ReadState[];
}

export function entriesWithTerms(terms: readonly number[], from = 1): Entry[] {
  return terms.map((term, i) => ({ index: from + i, term, type: 'normal' as const, data: new TextEncoder().encode(`e${from + i}t${term}`) }));
}

export type NodeOptions = Partial<Omit<RaftConfig, 'id' | 'storage' | 'peers'>>;

export class TestNet {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in send order. */
  queue: Message[] = [];
  private readonly blackholes = new Set<NodeId>();

  /** All specs share the voter set `voters` (default: every spec's id) via their storage's conf state. */
  constructor(specs: readonly TestNodeSpec[], readonly options: NodeOptions = {}, voters?: readonly NodeId[]) {
    const all = voters ?? specs.map((s) => s.id);
    for (const spec of specs) {
      const storage = new MemoryStorage({ voters: all, learners: [] });
      if (spec.terms && spec.terms.length > 0) storage.append(entriesWithTerms(spec.terms));
      const lastTerm = spec.terms && spec.terms.length > 0 ? spec.terms[spec.terms.length - 1]! : 0;
      storage.setHardState(spec.hardState ?? { term: lastTerm, vote: null, commit: 0 });
      this.nodes.set(spec.id, { id: spec.id, storage, raft: this.make(spec.id, storage), applied: [], readStates: [] });
    }
  }

  private make(id: NodeId, storage: MemoryStorage): RawNode {
    return new RawNode({
      id,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      preVote: false,
      checkQuorum: false,
      random: seededRandom(`net-${String(id)}`),
      ...this.options,
    });
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${String(id)}`);
    return n;
  }

  raft(id: NodeId): RawNode {
    return this.node(id).raft;
  }

  /** Restarts a node from its storage (volatile state lost). */
  restart(id: NodeId): void {
    const n = this.node(id);
    n.raft = this.make(id, n.storage);
    n.applied.length = 0;
  }

  /** Drops every message to and from `id`. */
  blackhole(id: NodeId): void {
    this.blackholes.add(id);
  }

  unblackhole(id: NodeId): void {
    this.blackholes.delete(id);
  }

  /** Processes every node's Ready: persist, queue messages, record applied entries. */
  flush(): void {
    for (let pass = 0; pass < 16; pass++) {
      let any = false;
      for (const n of this.nodes.values()) {
        if (!n.raft.hasReady()) continue;
        any = true;
        const rd = n.raft.ready();
        if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        for (const m of rd.earlyMessages) this.queue.push(m);
        for (const m of rd.messages) this.queue.push(m);
        for (const e of rd.committedEntries) n.applied.push(e);
        n.readStates.push(...rd.readStates);
        n.raft.advance();
      }
      if (!any) return;
    }
  }

  /** Takes the queued messages (after flushing), optionally only those matching `filter`. */
  take<T extends Message>(filter: (m: Message) => m is T): T[];
  take(filter?: (m: Message) => boolean): Message[];
  take(filter?: (m: Message) => boolean): Message[] {
    this.flush();
    const out = filter ? this.queue.filter(filter) : this.queue;
    this.queue = filter ? this.queue.filter((m) => !filter(m)) : [];
    return out;
  }

  deliver(m: Message): void {
    if (this.blackholes.has(m.from) || this.blackholes.has(m.to)) return;
    this.nodes.get(m.to)?.raft.step(m);
  }

  /** Delivers until no message is in flight (bounded). */
  stabilize(maxRounds = 1000): void {
    for (let i = 0; i < maxRounds; i++) {
      const msgs = this.take();
      if (msgs.length === 0) return;
      for (const m of msgs) this.deliver(m);
    }
    throw new Error(`network did not settle within ${maxRounds} rounds`);
  }

  /** The persisted log terms of a node, index 1.. */
  terms(id: NodeId): number[] {
    const s = this.node(id).storage;
    const out: number[] = [];
    for (let i = s.firstIndex(); i <= s.lastIndex(); i++) out.push(s.term(i));
    return out;
  }
}
