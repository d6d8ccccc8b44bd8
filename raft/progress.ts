// The leader's view of one follower: how much of the log it holds, and how fast to send more.
// probe: one append per heartbeat until the follower's position is known;
// replicate: optimistic pipelining, bounded by the in-flight window;
// snapshot: paused while the follower installs a snapshot.
import type { NodeId } from './types.js';

/** A bounded window of unacknowledged appends: (last index, bytes) per message. */
export class Inflights {
  private readonly idx: number[] = [];
  private readonly bytes: number[] = [];
  private head = 0;
  private totalBytes = 0;

  constructor(readonly maxCount: number, readonly maxBytes: number) {}

  get count(): number {
    return this.idx.length - this.head;
  }

  add(lastIndex: number, sizeBytes: number): void {
    this.idx.push(lastIndex);
    this.bytes.push(sizeBytes);
    this.totalBytes += sizeBytes;
  }

  /** Frees every message whose last index is ≤ `index`. */
  freeLE(index: number): void {
    while (this.head < this.idx.length && this.idx[this.head]! <= index) {
      this.totalBytes -= this.bytes[this.head]!;
      this.head++;
    }
    this.compactIfEmpty();
  }

  freeFirstOne(): void {
    if (this.head < this.idx.length) {
      this.totalBytes -= this.bytes[this.head]!;
      this.head++;
    }
    this.compactIfEmpty();
  }

  full(): boolean {
    return this.count >= this.maxCount || (this.maxBytes > 0 && this.totalBytes >= this.maxBytes);
  }

  reset(): void {
    this.idx.length = 0;
    this.bytes.length = 0;
    this.head = 0;
    this.totalBytes = 0;
  }

  private compactIfEmpty(): void {
    if (this.head === this.idx.length) this.reset();
    else if (this.head > 1024) {
      this.idx.splice(0, this.head);
      this.bytes.splice(0, this.head);
      this.head = 0;
    }
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = true;
  /** In probe: an append is out and unanswered, wait for a response or a heartbeat. */
  probeSent = false;
  readonly inflights: Inflights;

  constructor(readonly id: NodeId, next: number, public isLearner: boolean, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.reset('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.reset('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.reset('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.reset('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  private reset(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** An acknowledgement up to n: returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append after `rejected`; `matchHint` is where the follower's log may match.
   * Returns false for a stale rejection (one answering an append we no longer have in flight).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Bookkeeping after sending an append whose last entry is `lastIndex` (0 entries: lastIndex = next-1). */
  sentEntries(entryCount: number, lastIndex: number, sizeBytes: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, sizeBytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }
}
