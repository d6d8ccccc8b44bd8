// When a node renews its certificate: at a random moment between 50% and 80% of the certificate's
// lifetime, and at once when the role the cluster wants differs from the role the certificate proves.
// decideRenewal is the pure rule; RenewalScheduler applies it with an injected clock, randomness and
// a RoleSource (the store/dispatcher drives that later; a callback subscription now).
import type { Logger } from 'pino';

import type { NodeRole } from './roles.js';

export const RENEWAL_WINDOW_START = 0.5;
export const RENEWAL_WINDOW_END = 0.8;
/** setTimeout cannot wait longer than 2^31-1 ms (~24.8 days); longer waits are re-armed in steps. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
export const DEFAULT_RETRY_DELAY_MS = 1_000;
export const DEFAULT_MAX_RETRY_DELAY_MS = 5 * 60_000;

/** What renewal needs to know about a certificate. NodeIdentity has this shape. */
export interface CertificateTimes {
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly role: NodeRole;
}

/** Where the role the cluster wants for this node comes from. `subscribe` returns an unsubscribe. */
export interface RoleSource {
  subscribe(listener: (role: NodeRole) => void): () => void;
}

export type RenewalReason = 'due' | 'role-changed' | 'requested' | 'retry';

export type RenewalDecision =
  | { readonly kind: 'renew-now'; readonly reason: 'due' | 'role-changed' }
  | { readonly kind: 'renew-at'; readonly atMs: number };

/** The moment in [50%, 80%] of the lifetime picked by `random` ∈ [0, 1). */
export function renewalTime(cert: CertificateTimes, random: number): number {
  const lifetimeMs = cert.notAfterMs - cert.notBeforeMs;
  const fraction = RENEWAL_WINDOW_START + (RENEWAL_WINDOW_END - RENEWAL_WINDOW_START) * Math.min(Math.max(random, 0), 1);
  return cert.notBeforeMs + lifetimeMs * fraction;
}

/** The rule. `random` must stay the same for one certificate, so the chosen moment does not move. */
export function decideRenewal(cert: CertificateTimes, desiredRole: NodeRole | null, nowMs: number, random: number): RenewalDecision {
  if (desiredRole !== null && desiredRole !== cert.role) return { kind: 'renew-now', reason: 'role-changed' };
  const atMs = renewalTime(cert, random);
  return atMs <= nowMs ? { kind: 'renew-now', reason: 'due' } : { kind: 'renew-at', atMs };
}

export interface Clock {
  now(): number;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface RenewalSchedulerOptions<C extends CertificateTimes> {
  readonly certificate: C;
  /** Gets a new certificate (new key, CSR, RenewNodeCertificate) and installs it; returns it. */
  readonly renew: (reason: RenewalReason) => Promise<C>;
  readonly roleSource?: RoleSource;
  readonly clock?: Clock;
  /** Uniform in [0, 1); injected so tests can pin the moment. */
  readonly random?: () => number;
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly logger?: Logger;
  readonly onRenewed?: (certificate: C, reason: RenewalReason) => void;
}

export class RenewalScheduler<C extends CertificateTimes> {
  private cert: C;
  private random: number;
  private desiredRole: NodeRole | null = null;
  private timer: unknown = null;
  private inFlight = false;
  private pending: RenewalReason | null = null;
  private failures = 0;
  private stopped = true;
  private unsubscribe: (() => void) | null = null;
  private readonly clock: Clock;
  private readonly nextRandom: () => number;

  constructor(private readonly options: RenewalSchedulerOptions<C>) {
    this.cert = options.certificate;
    this.clock = options.clock ?? systemClock;
    this.nextRandom = options.random ?? Math.random;
    this.random = this.nextRandom();
  }

  get certificate(): C {
    return this.cert;
  }

  /** When the current certificate will be renewed if nothing else happens (ms since epoch). */
  get plannedRenewalMs(): number {
    return renewalTime(this.cert, this.random);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.options.roleSource?.subscribe((role) => this.onRole(role)) ?? null;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.clearTimer();
  }

  /** Renew as soon as possible (e.g. a root CA rotation started). */
  renewNow(reason: RenewalReason = 'requested'): void {
    void this.run(reason);
  }

  private onRole(role: NodeRole): void {
    this.desiredRole = role;
    if (!this.stopped) this.schedule();
  }

  private clearTimer(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
  }

  private arm(delayMs: number, then: () => void): void {
    this.clearTimer();
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      if (!this.stopped) then();
    }, Math.min(Math.max(delayMs, 0), MAX_TIMER_DELAY_MS));
  }

  private schedule(): void {
    if (this.stopped || this.inFlight) return;
    const decision = decideRenewal(this.cert, this.desiredRole, this.clock.now(), this.random);
    if (decision.kind === 'renew-now') {
      void this.run(decision.reason);
      return;
    }
    // A wait longer than the timer allows is re-armed; schedule() re-decides when it fires.
    this.arm(decision.atMs - this.clock.now(), () => this.schedule());
  }

  private async run(reason: RenewalReason): Promise<void> {
    if (this.stopped) return;
    if (this.inFlight) {
      this.pending = reason;
      return;
    }
    this.inFlight = true;
    this.clearTimer();
    let retryAfterMs: number | null = null;
    try {
      const next = await this.options.renew(reason);
      this.cert = next;
      this.random = this.nextRandom();
      this.options.logger?.info({ reason, role: next.role, notAfterMs: next.notAfterMs }, 'node certificate renewed');
      this.options.onRenewed?.(next, reason);
      if (this.desiredRole !== null && next.role !== this.desiredRole) {
        // The CA has not seen the role change yet: try again later rather than at once, forever.
        retryAfterMs = this.retryDelay();
      } else {
        this.failures = 0;
      }
    } catch (err) {
      this.options.logger?.warn({ reason, err: (err as Error).message, failures: this.failures + 1 }, 'node certificate renewal failed');
      retryAfterMs = this.retryDelay();
    } finally {
      this.inFlight = false;
    }
    if (this.stopped) return;
    const pending = this.pending;
    this.pending = null;
    if (pending !== null && retryAfterMs === null) {
      void this.run(pending);
    } else if (retryAfterMs !== null) {
      this.arm(retryAfterMs, () => void this.run('retry'));
    } else {
      this.schedule();
    }
  }

  private retryDelay(): number {
    this.failures++;
    const base = this.options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const max = this.options.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS;
    return Math.min(max, base * 2 ** Math.min(this.failures - 1, 20));
  }
}
