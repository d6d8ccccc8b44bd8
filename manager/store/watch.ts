// Change events and the watch stream.
//
// Every applied change becomes one ChangeEvent in a bounded ring shared by all subscribers
// (`ChangeRing`, default 10,000 events). A subscriber is only a cursor into that ring, so a slow
// one costs no memory: when the ring overwrites an event it had not read yet, its next read
// fails with WatchOverflowError (resync). A watch may start from any version the ring still
// covers; older versions fail with TooOldError. When a snapshot from the leader replaces the
// whole store, every open watch fails with WatchResetError. All three are ResyncRequiredError:
// the subscriber re-lists and watches again from `store.version`.
//
// Events come in apply order, i.e. Raft log order; events of one transaction share a version
// (the entry's index) and come in the transaction's action order.
import { TooOldError, WatchOverflowError, WatchResetError } from './errors.js';
import type { Kind, ObjectByKind } from './types.js';

export type ChangeAction = 'create' | 'update' | 'delete';

export type ChangeEvent = {
  [K in Kind]: {
    readonly kind: K;
    readonly action: ChangeAction;
    /** The Raft index of the transaction (the new Version.Index of a created/updated object). */
    readonly version: number;
    /** The object after the change; for a delete, the object as it was. */
    readonly object: ObjectByKind[K];
    /** For an update, the object before it. */
    readonly old?: ObjectByKind[K];
  };
}[Kind];

export interface WatchOptions {
  /** Only these kinds (default: all). */
  readonly kinds?: readonly Kind[];
  /** Only these actions (default: all). */
  readonly actions?: readonly ChangeAction[];
  /** Any further test; runs synchronously while the subscriber reads. */
  readonly filter?: (ev: ChangeEvent) => boolean;
  /**
   * Deliver every change with a version greater than this one. Default: the store's current
   * version (only future changes). Throws TooOldError when the ring no longer covers it.
   */
  readonly sinceVersion?: number;
}

export class ChangeRing {
  private readonly buf: (ChangeEvent | undefined)[];
  /** Sequence number the next event gets. */
  private headSeq = 0;
  /** Events before this sequence number were dropped by a reset. */
  private resetSeq = 0;
  /** Every change at or before this version may be missing from the ring. */
  private coveredAfter: number;

  constructor(readonly capacity: number, baseVersion: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`watch ring capacity must be a positive integer, got ${capacity}`);
    this.buf = new Array<ChangeEvent | undefined>(capacity);
    this.coveredAfter = baseVersion;
  }

  get head(): number {
    return this.headSeq;
  }

  get tail(): number {
    return Math.max(this.resetSeq, this.headSeq - this.capacity);
  }

  /** Changes after this version are all in the ring. */
  get oldestVersion(): number {
    return this.coveredAfter;
  }

  push(ev: ChangeEvent): void {
    const slot = this.headSeq % this.capacity;
    const evicted = this.buf[slot];
    if (evicted !== undefined && this.headSeq - this.capacity >= this.resetSeq) {
      this.coveredAfter = Math.max(this.coveredAfter, evicted.version);
    }
    this.buf[slot] = ev;
    this.headSeq++;
  }

  at(seq: number): ChangeEvent {
    if (seq < this.tail || seq >= this.headSeq) throw new RangeError(`watch ring: sequence ${seq} outside [${this.tail}, ${this.headSeq})`);
    return this.buf[seq % this.capacity]!;
  }

  /** The sequence number of the first event with a version greater than `version`. */
  firstAfter(version: number): number {
    let lo = this.tail;
    let hi = this.headSeq;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.at(mid).version <= version) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Forgets every event (the store was replaced): only changes after `version` will be held. */
  reset(version: number): void {
    this.buf.fill(undefined);
    this.resetSeq = this.headSeq;
    this.coveredAfter = version;
  }
}

/** What a watch reads from: the store's ring and its reset counter. */
export interface WatchSource {
  readonly ring: ChangeRing;
  /** Bumped each time a snapshot replaces the store. */
  readonly generation: number;
  readonly closed: boolean;
  readonly lastResetVersion: number;
  attach(w: StoreWatch): void;
  detach(w: StoreWatch): void;
}

export class StoreWatch implements AsyncIterableIterator<ChangeEvent> {
  private cursor: number;
  private readonly generation: number;
  private done = false;
  /** Pending next() calls waiting for a change (normally one: for-await calls next() one at a time). */
  private wakers: (() => void)[] = [];
  private lastVersion: number;
  private readonly kinds: ReadonlySet<Kind> | null;
  private readonly actions: ReadonlySet<ChangeAction> | null;

  constructor(private readonly source: WatchSource, private readonly opts: WatchOptions, currentVersion: number) {
    const since = opts.sinceVersion ?? currentVersion;
    if (!Number.isSafeInteger(since) || since < 0) throw new RangeError(`watch: sinceVersion must be a non-negative integer, got ${since}`);
    const ring = source.ring;
    if (since < ring.oldestVersion) throw new TooOldError(since, ring.oldestVersion);
    this.cursor = ring.firstAfter(since);
    this.lastVersion = since;
    this.generation = source.generation;
    this.kinds = opts.kinds === undefined ? null : new Set(opts.kinds);
    this.actions = opts.actions === undefined ? null : new Set(opts.actions);
    source.attach(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ChangeEvent> {
    return this;
  }

  /** The version of the last event delivered (or the starting version). */
  get version(): number {
    return this.lastVersion;
  }

  /**
   * The next matching event, waiting for one if needed. Resolves `done` once closed; rejects
   * with a ResyncRequiredError (and closes) when continuity is lost.
   */
  async next(): Promise<IteratorResult<ChangeEvent, undefined>> {
    for (;;) {
      const ev = this.poll();
      if (ev !== null) return { done: false, value: ev };
      if (this.done) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        this.wakers.push(resolve);
      });
    }
  }

  /**
   * The next matching event already applied, or null when there is none yet (or the watch is
   * closed). Throws a ResyncRequiredError when continuity is lost.
   */
  poll(): ChangeEvent | null {
    if (this.done || this.source.closed) {
      this.close();
      return null;
    }
    const ring = this.source.ring;
    if (this.source.generation !== this.generation) {
      this.close();
      throw new WatchResetError(this.source.lastResetVersion);
    }
    if (this.cursor < ring.tail) {
      this.close();
      throw new WatchOverflowError(this.lastVersion, ring.capacity);
    }
    // Bounded by the ring's capacity.
    while (this.cursor < ring.head) {
      const ev = ring.at(this.cursor++);
      if (this.kinds !== null && !this.kinds.has(ev.kind)) continue;
      if (this.actions !== null && !this.actions.has(ev.action)) continue;
      if (this.opts.filter !== undefined && !this.opts.filter(ev)) continue;
      this.lastVersion = ev.version;
      return ev;
    }
    return null;
  }

  async return(): Promise<IteratorResult<ChangeEvent, undefined>> {
    this.close();
    return { done: true, value: undefined };
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.source.detach(this);
    this.notify();
  }

  /**
   * Called by the store after it pushed `events` (one applied transaction) to the ring, the
   * first at sequence `fromSeq`. A watch that had read everything before them and wants none of
   * their kinds moves past them without waking its reader (what its next poll would do anyway):
   * one write should not wake every subscriber of other kinds.
   */
  changed(fromSeq: number, events: readonly ChangeEvent[]): void {
    const kinds = this.kinds;
    if (kinds !== null && !this.done && this.cursor === fromSeq && fromSeq >= this.source.ring.tail) {
      let wanted = false;
      for (const ev of events) {
        if (kinds.has(ev.kind)) {
          wanted = true;
          break;
        }
      }
      if (!wanted) {
        this.cursor = fromSeq + events.length;
        return;
      }
    }
    this.notify();
  }

  /** Called by the store after it applied changes, was reset or closed. */
  notify(): void {
    if (this.wakers.length === 0) return;
    const ws = this.wakers;
    this.wakers = [];
    for (const w of ws) w();
  }
}
