// The core's log: the stable part (LogStorage, already persisted) plus the unstable tail
// (entries and/or an incoming snapshot not yet persisted), and the commit/apply cursors.
//
//   firstIndex ... [stable in storage] ... unstable.offset ... [unstable entries] ... lastIndex
//   applied ≤ applying ≤ committed ≤ lastIndex
import { entryBytes } from './log-storage.js';
import type { LogStorage } from './log-storage.js';
import type { Entry, Snapshot } from './types.js';

export class RaftInvariantError extends Error {
  readonly code = 'ERR_RAFT_INVARIANT';
}

export function assert(cond: boolean, msg: () => string): asserts cond {
  if (!cond) throw new RaftInvariantError(msg());
}

/** Entries and snapshot not yet persisted. Entries before `offsetInProgress` were handed out in a Ready. */
class Unstable {
  snapshot: Snapshot | null = null;
  snapshotInProgress = false;
  entries: Entry[] = [];
  offset: number;
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  lastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot) return this.snapshot.metadata.index;
    return undefined;
  }

  term(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const e = this.entries[i - this.offset];
    return e?.term;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const from = ents[0]!.index;
    if (from === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // Replaces everything unstable, and some persisted entries too: the next save truncates them.
      this.offset = from;
      this.offsetInProgress = from;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, from - this.offset);
      for (const e of ents) this.entries.push(e);
      this.offsetInProgress = Math.min(this.offsetInProgress, from);
    }
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const start = this.offsetInProgress - this.offset;
    return start >= this.entries.length ? [] : this.entries.slice(start);
  }

  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /** Entries up to (i, t) are persisted; a term mismatch means they were replaced meanwhile. */
  stableTo(i: number, t: number): void {
    const term = this.term(i);
    if (term === undefined || term !== t || i < this.offset) return;
    const n = i + 1 - this.offset;
    this.entries = this.entries.slice(n);
    this.offset = i + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }
}

export interface ConflictHint {
  readonly index: number;
  readonly term: number;
}

export class RaftLog {
  readonly unstable: Unstable;
  committed: number;
  /** Highest index handed to the application in a Ready. */
  applying: number;
  /** Highest index the application has acknowledged applying (advance). */
  applied: number;

  constructor(readonly storage: LogStorage, readonly maxCommittedBytesPerReady: number) {
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The state machine restarts from the snapshot, which may be ahead of the log's first index
    // (entries kept behind it for slow followers): everything up to it is committed and applied.
    const snapIndex = Math.max(storage.snapshot().metadata.index, storage.firstIndex() - 1);
    this.committed = snapIndex;
    this.applying = snapIndex;
    this.applied = snapIndex;
  }

  firstIndex(): number {
    const s = this.unstable.snapshot;
    return s ? s.metadata.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.lastIndex() ?? this.storage.lastIndex();
  }

  /** Term of entry i, or undefined when i is compacted away or beyond the log. */
  term(i: number): number | undefined {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    const t = this.unstable.term(i);
    if (t !== undefined) return t;
    if (i >= this.unstable.offset) return undefined;
    if (i < this.storage.firstIndex() - 1 || i > this.storage.lastIndex()) return undefined;
    return this.storage.term(i);
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry that conflicts with ours (or is new); 0 when all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`, with its term: where our log may still
   * match a log whose entry at `index` has `term`. Used for the fast back-off of rejected appends.
   */
  findConflictByTerm(index: number, term: number): ConflictHint {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
      i--;
    }
  }

  /** Follower-side append: returns the last new index, or null when (index, logTerm) does not match. */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, () => `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    assert(after >= this.committed, () => `cannot truncate committed entries: append after ${after}, committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(i: number): void {
    if (i <= this.committed) return;
    assert(i <= this.lastIndex(), () => `commit ${i} is beyond the last index ${this.lastIndex()}`);
    this.committed = i;
  }

  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Entries in [lo, hi) up to maxBytes (at least one), or null when lo is compacted. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | null {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return null;
    assert(hi <= this.lastIndex() + 1, () => `slice [${lo}, ${hi}) is beyond the last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    const uOff = this.unstable.offset;
    if (lo < uOff) {
      const stable = this.storage.entries(lo, Math.min(hi, uOff), maxBytes);
      for (const e of stable) {
        size += entryBytes(e);
        out.push(e);
      }
      if (out.length < Math.min(hi, uOff) - lo) return out;
    }
    if (hi > uOff) {
      const ue = this.unstable.entries;
      for (let i = Math.max(lo, uOff); i < hi; i++) {
        const e = ue[i - uOff]!;
        size += entryBytes(e);
        if (out.length > 0 && size > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }

  /** Entries from `lo` to the end, or null when lo is compacted (send a snapshot instead). */
  entriesFrom(lo: number, maxBytes: number): Entry[] | null {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  hasNextCommittedEnts(): boolean {
    if (this.unstable.snapshot) return false;
    return this.committed > this.applying;
  }

  nextCommittedEnts(): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, this.maxCommittedBytesPerReady) ?? [];
  }

  /** The snapshot to send to a follower whose next entry is compacted away. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  appliedTo(i: number): void {
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
  }

  /** The highest index known to be persisted locally. */
  stableLastIndex(): number {
    if (this.unstable.snapshot) return 0;
    return Math.min(this.lastIndex(), this.unstable.offset - 1);
  }
}
