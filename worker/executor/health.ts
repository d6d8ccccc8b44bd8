// Healthchecks as Docker runs them: a probe (`runc exec` of CMD or /bin/sh -c CMD-SHELL) every
// interval, killed after timeout; `Retries` failures in a row make the container unhealthy, a success
// makes it healthy; failures during the start period do not count until a first success.
import type { HealthcheckPlan } from './process-spec.js';
import type { HealthProbeResult, HealthReport, HealthStatus } from './types.js';

const LOG_ENTRIES = 5;
const OUTPUT_MAX_CHARS = 4096;

export type ProbeRunner = (argv: readonly string[], timeoutMs: number, outputMaxChars: number) => Promise<{ exitCode: number; output: string }>;

export class HealthMonitor {
  private status: HealthStatus = 'starting';
  private failingStreak = 0;
  private readonly log: HealthProbeResult[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly plan: HealthcheckPlan,
    private readonly startedAtMs: number,
    private readonly probe: ProbeRunner,
    private readonly onStatus: (status: HealthStatus) => void,
  ) {}

  start(): void {
    this.schedule(this.plan.intervalMs);
  }

  report(): HealthReport {
    return { status: this.status, failingStreak: this.failingStreak, log: [...this.log] };
  }

  /** Stops probing; waits for a probe in flight (bounded by its timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.inFlight = this.runOnce().finally(() => {
        this.inFlight = undefined;
        this.schedule(this.plan.intervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async runOnce(): Promise<void> {
    const startedAtMs = Date.now();
    const { exitCode, output } = await this.probe(this.plan.argv, this.plan.timeoutMs, OUTPUT_MAX_CHARS).catch((err: unknown) => ({
      exitCode: -1,
      output: err instanceof Error ? err.message : String(err),
    }));
    if (this.stopped) return;
    const endedAtMs = Date.now();
    this.log.push({ startedAtMs, endedAtMs, exitCode, output });
    if (this.log.length > LOG_ENTRIES) this.log.shift();
    if (exitCode === 0) {
      this.failingStreak = 0;
      this.set('healthy');
      return;
    }
    const inStartPeriod = this.status === 'starting' && startedAtMs < this.startedAtMs + this.plan.startPeriodMs;
    if (inStartPeriod) return;
    this.failingStreak++;
    if (this.failingStreak >= this.plan.retries) this.set('unhealthy');
  }

  private set(status: HealthStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.onStatus(status);
  }
}
