// A creation burst in progress: the replicated orchestrator says so while a scale-up of more than
// one pass's worth of tasks is still being committed, and the scheduler loop lets the new pending
// tasks gather until it ends, so that the burst is placed in one pass (one assignment message per
// node instead of one per creation round).
//
//   replicated orchestrator:  hold() ── pass 1 commits ── pass 2 commits ── … ── release()
//   scheduler loop:           tasks pending, burst held → wait (reading its watch) ─► release → pass
//
// Nothing waits on a clock here: the orchestrator releases the burst the moment the commits of its
// last creation pass have landed (a lone task's burst ends with its one commit), and the scheduler
// loop bounds how long it defers to a burst (`SchedulerLoopOptions.maxBurstHoldMs`).
export class CreationBurst {
  private held = false;
  private readonly listeners = new Set<() => void>();
  private count = 0;

  /** True while a burst is being committed. */
  get active(): boolean {
    return this.held;
  }

  /** Bursts begun so far (tests, logs). */
  get bursts(): number {
    return this.count;
  }

  hold(): void {
    if (this.held) return;
    this.held = true;
    this.count++;
  }

  /** Ends the burst (no-op when none is held) and tells every listener. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    for (const fn of [...this.listeners]) fn();
  }

  /** `fn` runs on every release; the returned function unsubscribes. */
  onRelease(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }
}
