// The shape every orchestrator (and the scheduler loop) shares: a reconciliation loop over the
// store's watch stream.
//
//   start ─► viewAndWatch(resync: mark everything dirty) ─┐
//            ┌────────────────────────────────────────────┘
//            ▼
//   ┌─► drain the events already applied (≤ maxEventsPerPass) → onEvent marks keys dirty
//   │   work (and not passHeld())? ─ yes ─► pass(keys) : read the store, decide, commit in as few transactions as fit
//   │     │             └─ failed: keys stay dirty; a conflict retries at once (≤ 5 times),
//   │     no                anything else after a backoff on the clock
//   │     ▼
//   └── wait for the next event, a timer (wakeAfter) or stop
//
//   a ResyncRequiredError from the watch (too old, overflow, snapshot reset) → back to the top:
//   re-list at one version and carry on.
//
// Events are only hints: a pass always reads fresh committed state, so coalescing many events
// into one pass (or seeing one twice) changes nothing but the amount of work.
import type { Logger } from 'pino';
import { NotFoundError, ResyncRequiredError, SequenceConflictError, StoreClosedError } from '../store/errors.js';
import type { MemoryStore, ReadTx } from '../store/memory-store.js';
import type { Kind } from '../store/types.js';
import type { ChangeEvent, StoreWatch } from '../store/watch.js';
import type { Clock, TimerHandle } from './clock.js';

export interface LoopOptions {
  readonly store: MemoryStore;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Most events read before a pass runs; the rest are read after it (the pass sees their state anyway). */
const MAX_EVENTS_PER_PASS = 5_000;
/** Most distinct dirty keys kept; beyond it the loop forgets them and re-lists everything. */
const MAX_DIRTY_KEYS = 100_000;
const MAX_IMMEDIATE_CONFLICT_RETRIES = 5;
const RETRY_BACKOFF_MIN_MS = 50;
const RETRY_BACKOFF_MAX_MS = 5_000;
/** Most writes one orchestrator puts in one transaction (the store allows 10,000 actions, 1.5 MiB). */
export const MAX_WRITES_PER_TX = 1_000;

export abstract class ReconcileLoop {
  protected readonly store: MemoryStore;
  protected readonly clock: Clock;
  protected readonly log: Logger;
  private readonly dirty = new Set<string>();
  private dirtyAll = false;
  private stopped = true;
  private running: Promise<void> | null = null;
  private wakeResolve: (() => void) | null = null;
  private wakeRequested = false;
  private timers = new Map<string, TimerHandle>();
  private conflictRetries = 0;
  private failures = 0;
  private passCount = 0;
  private resyncCount = 0;

  protected constructor(opts: LoopOptions, readonly name: string, private readonly kinds: readonly Kind[]) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.logger.child({ component: name });
  }

  /** Called on start and after every resync, inside the view the watch starts at: mark what needs a look. */
  protected abstract resync(tx: ReadTx): void;
  /** Turns one change into dirty keys (`markDirty`). Must be cheap and synchronous. */
  protected abstract onEvent(ev: ChangeEvent): void;
  /** Reconciles these keys (or everything when `all`). Keys it could not finish it marks dirty again. */
  protected abstract pass(keys: ReadonlySet<string>, all: boolean): Promise<void>;

  /**
   * While this returns true a due pass waits: the loop keeps reading its watch (events keep
   * marking keys dirty) and asks again after every event and every `wake()`. Default: never held.
   */
  protected passHeld(): boolean {
    return false;
  }

  /** How many times the watch lost continuity and the loop re-listed (for tests and logs). */
  get resyncs(): number {
    return this.resyncCount;
  }

  /** How many passes ran (for tests and logs). */
  get passes(): number {
    return this.passCount;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.running = this.run().catch((err: unknown) => {
      this.log.error({ err }, `${this.name} stopped on an unexpected error`);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.wake();
    await this.running;
    this.running = null;
  }

  protected get isStopped(): boolean {
    return this.stopped;
  }

  protected markDirty(key: string): void {
    if (this.dirtyAll) return;
    if (this.dirty.size >= MAX_DIRTY_KEYS) {
      this.dirty.clear();
      this.dirtyAll = true;
      return;
    }
    this.dirty.add(key);
  }

  protected markAll(): void {
    this.dirty.clear();
    this.dirtyAll = true;
  }

  /** Marks `key` dirty after `delayMs` on the clock (one timer per key: the earliest wins). */
  protected wakeAfter(key: string, delayMs: number): void {
    const existing = this.timers.get(`${key}`);
    if (existing !== undefined) existing.cancel();
    this.timers.set(
      key,
      this.clock.setTimer(delayMs, () => {
        this.timers.delete(key);
        this.markDirty(key);
        this.wake();
      }),
    );
  }

  protected wake(): void {
    this.wakeRequested = true;
    const r = this.wakeResolve;
    this.wakeResolve = null;
    r?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let watch: StoreWatch;
      try {
        [, watch] = this.store.viewAndWatch((tx) => {
          this.markAll();
          this.resync(tx);
        }, { kinds: this.kinds });
      } catch (err) {
        if (err instanceof StoreClosedError) return;
        throw err;
      }
      try {
        await this.pump(watch);
      } catch (err) {
        if (err instanceof ResyncRequiredError) {
          this.resyncCount++;
          this.log.warn({ err: err.message }, 'watch lost continuity; re-listing');
          continue;
        }
        throw err;
      } finally {
        watch.close();
      }
    }
  }

  private async pump(watch: StoreWatch): Promise<void> {
    let pending: Promise<IteratorResult<ChangeEvent, undefined>> | null = null;
    while (!this.stopped) {
      if (pending === null) {
        for (let i = 0; i < MAX_EVENTS_PER_PASS; i++) {
          const ev = watch.poll();
          if (ev === null) break;
          this.onEvent(ev);
        }
        if (this.store.closed) return;
      }
      if ((this.dirtyAll || this.dirty.size > 0) && !this.passHeld()) {
        await this.runPass();
        continue;
      }
      if (this.wakeRequested) {
        this.wakeRequested = false;
        continue;
      }
      if (pending === null) {
        pending = watch.next();
        // A rejection is read below; this only keeps it from being reported as unhandled meanwhile.
        pending.catch(() => undefined);
      }
      const woken = new Promise<'wake'>((resolve) => {
        this.wakeResolve = () => resolve('wake');
      });
      const r = await Promise.race([pending, woken]);
      this.wakeResolve = null;
      this.wakeRequested = false;
      if (r === 'wake') continue;
      pending = null;
      if (r.done === true) return;
      this.onEvent(r.value);
    }
  }

  private async runPass(): Promise<void> {
    const keys = new Set(this.dirty);
    const all = this.dirtyAll;
    this.dirty.clear();
    this.dirtyAll = false;
    this.passCount++;
    try {
      await this.pass(keys, all);
      this.conflictRetries = 0;
      this.failures = 0;
    } catch (err) {
      if (all) this.markAll();
      else for (const k of keys) this.markDirty(k);
      if (err instanceof StoreClosedError || this.stopped) {
        this.stopped = true;
        return;
      }
      const raced = err instanceof SequenceConflictError || err instanceof NotFoundError;
      if (raced && this.conflictRetries < MAX_IMMEDIATE_CONFLICT_RETRIES) {
        // Someone else changed (or deleted) an object the pass read: the next pass reads the new state.
        this.conflictRetries++;
        this.log.debug({ err: err.message }, 'pass lost a race; running again');
        return;
      }
      this.conflictRetries = 0;
      const backoffMs = Math.min(RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_MIN_MS * 2 ** Math.min(this.failures, 10));
      this.failures++;
      this.log.warn({ err, backoffMs }, 'pass failed; retrying after a backoff');
      await this.sleep(backoffMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.clock.setTimer(ms, resolve);
      const prev = this.wakeResolve;
      // stop() must not wait for the clock.
      this.wakeResolve = () => {
        t.cancel();
        prev?.();
        resolve();
      };
    });
  }
}
