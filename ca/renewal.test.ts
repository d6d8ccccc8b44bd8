// The renewal rule and scheduler on an injected clock: no waiting, every step visible.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { decideRenewal, MAX_TIMER_DELAY_MS, RenewalScheduler, renewalTime, type CertificateTimes, type Clock, type RoleSource } from './renewal.js';
import type { NodeRole } from './roles.js';

/** A manual clock: timers fire only when the test advances time. */
class ManualClock implements Clock {
  private nowMs: number;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  constructor(startMs: number) {
    this.nowMs = startMs;
  }
  now(): number {
    return this.nowMs;
  }
  setTimer(fn: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.nowMs + delayMs, fn, id });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  get pending(): number {
    return this.timers.length;
  }
  /** Moves time forward, firing due timers in order (bounded: at most 1000 firings). */
  async advanceTo(targetMs: number): Promise<void> {
    for (let fired = 0; fired < 1000; fired++) {
      const due = this.timers.filter((t) => t.at <= targetMs).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.nowMs = Math.max(this.nowMs, due.at);
      due.fn();
      await flush();
    }
    this.nowMs = targetMs;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const DAY_MS = 24 * 3600 * 1000;
const cert = (notBeforeMs: number, lifetimeMs: number, role: NodeRole = 'swarm-worker'): CertificateTimes => ({
  notBeforeMs,
  notAfterMs: notBeforeMs + lifetimeMs,
  role,
});

class TestRoleSource implements RoleSource {
  private listener: ((role: NodeRole) => void) | null = null;
  subscribe(listener: (role: NodeRole) => void): () => void {
    this.listener = listener;
    return () => (this.listener = null);
  }
  emit(role: NodeRole): void {
    this.listener?.(role);
  }
}

describe('decideRenewal', () => {
  it('always picks a moment between 50% and 80% of the lifetime', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 3600_000, max: 3650 * DAY_MS }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (start, lifetime, random) => {
        const at = renewalTime(cert(start, lifetime), random);
        expect(at).toBeGreaterThanOrEqual(start + 0.5 * lifetime);
        expect(at).toBeLessThanOrEqual(start + 0.8 * lifetime);
      }),
      { numRuns: 300 },
    );
  });

  it('renews at once when the wanted role differs, and when the moment has passed', () => {
    const c = cert(0, 100 * DAY_MS);
    expect(decideRenewal(c, 'swarm-manager', 1, 0.5)).toEqual({ kind: 'renew-now', reason: 'role-changed' });
    expect(decideRenewal(c, 'swarm-worker', 1, 0.5)).toEqual({ kind: 'renew-at', atMs: 65 * DAY_MS });
    expect(decideRenewal(c, null, 65 * DAY_MS, 0.5)).toEqual({ kind: 'renew-now', reason: 'due' });
  });
});

describe('RenewalScheduler', () => {
  it('renews at the chosen moment of a 90-day certificate (longer than one timer can wait) and then plans the next', async () => {
    const clock = new ManualClock(0);
    const reasons: string[] = [];
    const times: number[] = [];
    const scheduler = new RenewalScheduler({
      certificate: cert(0, 90 * DAY_MS),
      clock,
      random: () => 0, // renew exactly at 50%
      renew: async (reason) => {
        reasons.push(reason);
        times.push(clock.now());
        return cert(clock.now(), 90 * DAY_MS);
      },
    });
    scheduler.start();
    expect(45 * DAY_MS).toBeGreaterThan(MAX_TIMER_DELAY_MS);
    await clock.advanceTo(45 * DAY_MS - 1);
    expect(reasons).toEqual([]);
    await clock.advanceTo(45 * DAY_MS);
    expect(reasons).toEqual(['due']);
    expect(times).toEqual([45 * DAY_MS]);
    expect(scheduler.plannedRenewalMs).toBe(90 * DAY_MS);
    scheduler.stop();
    expect(clock.pending).toBe(0);
  });

  it('renews at once on a role change and retries with backoff while the CA still returns the old role', async () => {
    const clock = new ManualClock(0);
    const roles = new TestRoleSource();
    let caRole: NodeRole = 'swarm-worker';
    const calls: number[] = [];
    const scheduler = new RenewalScheduler({
      certificate: cert(0, 90 * DAY_MS),
      clock,
      roleSource: roles,
      retryDelayMs: 1000,
      renew: async () => {
        calls.push(clock.now());
        return cert(clock.now(), 90 * DAY_MS, caRole);
      },
    });
    scheduler.start();
    roles.emit('swarm-worker');
    await flush();
    expect(calls).toEqual([]);
    roles.emit('swarm-manager');
    await flush();
    expect(calls).toEqual([0]); // at once
    await clock.advanceTo(999);
    expect(calls).toEqual([0]); // not in a tight loop
    caRole = 'swarm-manager';
    await clock.advanceTo(1000);
    expect(calls).toEqual([0, 1000]);
    expect(scheduler.certificate.role).toBe('swarm-manager');
    await clock.advanceTo(10 * DAY_MS);
    expect(calls).toEqual([0, 1000]);
    scheduler.stop();
  });

  it('backs off after failures, doubling up to the cap', async () => {
    const clock = new ManualClock(0);
    const calls: number[] = [];
    const scheduler = new RenewalScheduler({
      certificate: cert(-100, 100),
      clock,
      retryDelayMs: 100,
      maxRetryDelayMs: 400,
      renew: async () => {
        calls.push(clock.now());
        throw new Error('manager unreachable');
      },
    });
    scheduler.start();
    await flush();
    await clock.advanceTo(1500);
    expect(calls).toEqual([0, 100, 300, 700, 1100, 1500]);
    scheduler.stop();
  });
});
