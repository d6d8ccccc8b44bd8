// The healthcheck state machine (Docker's rules) over a scripted probe: the probe here stands in for
// `runc exec`, which the executor's integration tests run for real.
import { describe, expect, it } from 'vitest';
import { HealthMonitor } from './health.js';
import type { HealthStatus } from './types.js';

async function run(results: number[], opts: { retries: number; startPeriodMs: number }, stopWhen: (statuses: HealthStatus[]) => boolean): Promise<{ statuses: HealthStatus[]; monitor: HealthMonitor }> {
  const statuses: HealthStatus[] = [];
  let i = 0;
  const monitor = new HealthMonitor(
    { argv: ['probe'], intervalMs: 5, timeoutMs: 100, startPeriodMs: opts.startPeriodMs, retries: opts.retries },
    Date.now(),
    async () => ({ exitCode: results[Math.min(i++, results.length - 1)] as number, output: '' }),
    (s) => statuses.push(s),
  );
  monitor.start();
  for (let n = 0; n < 400 && !stopWhen(statuses) && i < results.length + 5; n++) await new Promise((r) => setTimeout(r, 5));
  await monitor.stop();
  return { statuses, monitor };
}

describe('HealthMonitor', () => {
  it('needs Retries failures in a row to turn unhealthy; a success resets the streak', async () => {
    const { statuses, monitor } = await run([1, 0, 1, 1, 1], { retries: 3, startPeriodMs: 0 }, (s) => s.includes('unhealthy'));
    expect(statuses).toEqual(['healthy', 'unhealthy']);
    expect(monitor.report().failingStreak).toBe(3);
    expect(monitor.report().log.length).toBeLessThanOrEqual(5);
  });

  it('ignores failures during the start period while still starting', async () => {
    const { statuses, monitor } = await run([1, 1, 1, 1, 1, 1], { retries: 1, startPeriodMs: 60_000 }, () => false);
    expect(statuses).toEqual([]);
    expect(monitor.report()).toMatchObject({ status: 'starting', failingStreak: 0 });
  });
});
