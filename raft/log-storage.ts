// The stable part of the Raft log, as the core reads it. The core never writes here: the
// driver writes what a Ready hands it (to disk, and to this in-memory view), then advances.
import type { ConfState, Entry, HardState, Snapshot } from './types.js';
import { EMPTY_HARD_STATE } from './types.js';

export class CompactedError extends Error {
  readonly code = 'ERR_RAFT_COMPACTED';
  constructor(readonly index: number, readonly firstIndex: number) {
    super(`raft log: index ${index} is compacted (first available index is ${firstIndex})`);
  }
}

export class UnavailableError extends Error {
  readonly code = 'ERR_RAFT_UNAVAILABLE';
  constructor(readonly index: number, readonly lastIndex: number) {
    super(`raft log: index ${index} is beyond the last index ${lastIndex}`);
  }
}

/** Read-only view of the persisted log, hard state and snapshot. */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most `maxBytes` of data but always at least one when lo < hi. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; valid for firstIndex()-1 (the snapshot's index) through lastIndex(). */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export function entryBytes(e: Entry): number {
  return e.data.byteLength + 24;
}

/**
 * The in-memory stable log. Durable storage loads into one of these on open and keeps it in
 * step with what it writes; tests use it alone. ents[0] is a dummy holding the snapshot's
 * (index, term), so term(firstIndex()-1) always answers.
 */
export class MemoryStorage implements LogStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  private ents: Entry[];

  constructor(confState: ConfState = { voters: [], learners: [] }) {
    this.snap = { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) };
    this.ents = [{ index: 0, term: 0, type: 'normal', data: new Uint8Array(0) }];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  hard(): HardState {
    return this.hardState;
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  term(i: number): number {
    const off = this.offset;
    if (i < off) throw new CompactedError(i, off + 1);
    if (i - off >= this.ents.length) throw new UnavailableError(i, this.lastIndex());
    return this.ents[i - off]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset;
    if (lo <= off) throw new CompactedError(lo, off + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - off]!;
      size += entryBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Appends entries, truncating any existing entries at or after the first new index. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const off = this.offset;
    if (first <= off) {
      // Entries already covered by the snapshot are dropped.
      const skip = off + 1 - first;
      if (skip >= entries.length) return;
      entries = entries.slice(skip);
    }
    const at = entries[0]!.index - off;
    if (at > this.ents.length) {
      throw new Error(`raft log: append at ${entries[0]!.index} leaves a gap after last index ${this.lastIndex()}`);
    }
    this.ents.length = at;
    for (const e of entries) this.ents.push(e);
  }

  /** Replaces the whole log with a snapshot (a follower installing one from its leader). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Records the application's snapshot at `index` (≤ applied); does not compact. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) return this.snap;
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Drops entries before `index`; entry `index` becomes the dummy. */
  compact(index: number): void {
    const off = this.offset;
    if (index <= off) return;
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    const dummy = this.ents[index - off]!;
    this.ents = [{ index: dummy.index, term: dummy.term, type: 'normal', data: new Uint8Array(0) }, ...this.ents.slice(index - off + 1)];
  }
}
