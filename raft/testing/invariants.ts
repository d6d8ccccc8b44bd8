// Raft's safety properties (paper Figure 3), checked incrementally as a simulation runs:
// - Election Safety: at most one leader per term.
// - Log Matching: two logs holding an entry with the same index and term hold the same data
//   there and agree on the term of the entry before it (and so, inductively, on the prefix).
// - Leader Completeness: a leader's log holds every entry committed before its term.
// - State Machine Safety: no two nodes apply different entries at one index.
import type { LogStorage } from '../log-storage.js';
import type { RaftStatus } from '../raft.js';
import type { Entry, NodeId } from '../types.js';

export class SafetyViolation extends Error {
  readonly code = 'ERR_RAFT_SAFETY';
}

interface Recorded {
  readonly term: number;
  readonly prevTerm: number | undefined;
  readonly data: Uint8Array;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entries = new Map<string, Recorded>();
  private readonly applied = new Map<number, { term: number; data: Uint8Array; by: NodeId }>();
  private storageOf: ((id: NodeId) => LogStorage | undefined) | null = null;

  /** Lets the checker read a node's persisted log for leader completeness. */
  attachStorage(fn: (id: NodeId) => LogStorage | undefined): void {
    this.storageOf = fn;
  }

  checkLeaders(statuses: readonly RaftStatus[]): void {
    for (const s of statuses) {
      if (s.role !== 'leader') continue;
      const known = this.leaderOfTerm.get(s.term);
      if (known === undefined) {
        this.leaderOfTerm.set(s.term, s.id);
        this.checkLeaderCompleteness(s.id, s.term);
      } else if (known !== s.id) {
        throw new SafetyViolation(`election safety: two leaders in term ${s.term}: ${String(known)} and ${String(s.id)}`);
      }
    }
  }

  checkAppended(storage: LogStorage, ents: readonly Entry[]): void {
    for (const e of ents) {
      let prevTerm: number | undefined;
      try {
        prevTerm = e.index - 1 >= storage.firstIndex() - 1 ? storage.term(e.index - 1) : undefined;
      } catch {
        prevTerm = undefined;
      }
      const key = `${e.index}:${e.term}`;
      const rec = this.entries.get(key);
      if (!rec) {
        this.entries.set(key, { term: e.term, prevTerm, data: e.data });
        continue;
      }
      if (!sameBytes(rec.data, e.data)) {
        throw new SafetyViolation(`log matching: two different entries at index ${e.index} term ${e.term}`);
      }
      if (rec.prevTerm !== undefined && prevTerm !== undefined && rec.prevTerm !== prevTerm) {
        throw new SafetyViolation(`log matching: entries at index ${e.index} term ${e.term} follow different terms (${rec.prevTerm} vs ${prevTerm})`);
      }
    }
  }

  checkApplied(id: NodeId, e: Entry): void {
    const rec = this.applied.get(e.index);
    if (!rec) {
      this.applied.set(e.index, { term: e.term, data: e.data, by: id });
      return;
    }
    if (rec.term !== e.term || !sameBytes(rec.data, e.data)) {
      throw new SafetyViolation(
        `state machine safety: node ${String(id)} applied (index ${e.index}, term ${e.term}) but node ${String(rec.by)} applied term ${rec.term} there`,
      );
    }
  }

  /** Highest index applied anywhere. */
  committedIndex(): number {
    let max = 0;
    for (const i of this.applied.keys()) if (i > max) max = i;
    return max;
  }

  private checkLeaderCompleteness(id: NodeId, term: number): void {
    const storage = this.storageOf?.(id);
    if (!storage) return;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    for (const [index, rec] of this.applied) {
      if (rec.term >= term || index < first) continue;
      if (index > last) {
        throw new SafetyViolation(`leader completeness: leader ${String(id)} of term ${term} lacks committed entry ${index}`);
      }
      const t = storage.term(index);
      if (t !== rec.term) {
        throw new SafetyViolation(`leader completeness: leader ${String(id)} of term ${term} has term ${t} at committed index ${index} (expected ${rec.term})`);
      }
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
