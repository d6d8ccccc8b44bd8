// Docker's rules for combining the image config with the spec: argv, env, cwd, stop signal, healthcheck.
import { describe, expect, it } from 'vitest';
import { DEFAULT_PATH, healthcheckPlan, HEALTH_DEFAULTS, processArgs, processCwd, processEnv, stopSignal } from './process-spec.js';

describe('processArgs', () => {
  const image = { entrypoint: ['/ep', 'a'], cmd: ['c1', 'c2'] } as const;
  it('runs ENTRYPOINT + CMD when the spec sets neither', () => {
    expect(processArgs(image, {})).toEqual(['/ep', 'a', 'c1', 'c2']);
  });
  it('Args replace CMD only', () => {
    expect(processArgs(image, { Args: ['x'] })).toEqual(['/ep', 'a', 'x']);
  });
  it('Command replaces ENTRYPOINT and drops the image CMD', () => {
    expect(processArgs(image, { Command: ['/bin/true'] })).toEqual(['/bin/true']);
    expect(processArgs(image, { Command: ['/bin/echo'], Args: ['y'] })).toEqual(['/bin/echo', 'y']);
  });
  it('treats empty lists as absent, and an image without either gives nothing', () => {
    expect(processArgs(image, { Command: [], Args: [] })).toEqual(['/ep', 'a', 'c1', 'c2']);
    expect(processArgs({ entrypoint: undefined, cmd: ['sh'] }, {})).toEqual(['sh']);
    expect(processArgs({ entrypoint: undefined, cmd: undefined }, {})).toEqual([]);
  });
});

describe('processEnv', () => {
  it('keeps the image order, lets the spec win in place, appends new keys, adds PATH and HOSTNAME', () => {
    expect(processEnv(['A=1', 'B=2'], ['B=3', 'C=4'], 'h1')).toEqual(['HOSTNAME=h1', `${DEFAULT_PATH}`, 'A=1', 'B=3', 'C=4']);
  });
  it('keeps PATH and HOSTNAME when set, and values containing =', () => {
    expect(processEnv(['PATH=/bin'], ['HOSTNAME=x', 'Q=a=b'], 'h')).toEqual(['PATH=/bin', 'HOSTNAME=x', 'Q=a=b']);
  });
  it('drops entries without = (no client environment to read them from)', () => {
    expect(processEnv(['PATH=/bin'], ['LONELY'], 'h')).toEqual(['HOSTNAME=h', 'PATH=/bin']);
  });
});

describe('processCwd and stopSignal', () => {
  it('prefers spec Dir, then WORKDIR, then /', () => {
    expect(processCwd('/img', '/spec')).toBe('/spec');
    expect(processCwd('/img', '')).toBe('/img');
    expect(processCwd('', undefined)).toBe('/');
    expect(processCwd('rel', undefined)).toBe('/rel');
  });
  it('prefers the spec, then the image, then SIGTERM, normalized', () => {
    expect(stopSignal('SIGQUIT', 'usr1')).toBe('SIGUSR1');
    expect(stopSignal('SIGQUIT', undefined)).toBe('SIGQUIT');
    expect(stopSignal(undefined, '')).toBe('SIGTERM');
    expect(stopSignal(undefined, '9')).toBe('9');
  });
});

describe('healthcheckPlan', () => {
  const img = { test: ['CMD-SHELL', 'curl -f localhost'], intervalNs: 5e9, timeoutNs: 0, startPeriodNs: 0, startIntervalNs: 0, retries: 0 };
  it('inherits the image test and fills zero fields from the image, then Docker defaults', () => {
    expect(healthcheckPlan(img, undefined)).toEqual({ argv: ['/bin/sh', '-c', 'curl -f localhost'], intervalMs: 5000, timeoutMs: HEALTH_DEFAULTS.timeoutMs, startPeriodMs: 0, retries: 3 });
  });
  it('a spec test replaces the image test; its durations win', () => {
    expect(healthcheckPlan(img, { Test: ['CMD', 'true'], Interval: 1e9, Retries: 5 })).toEqual({ argv: ['true'], intervalMs: 1000, timeoutMs: 30_000, startPeriodMs: 0, retries: 5 });
  });
  it('NONE or no test at all disables it; malformed tests are refused', () => {
    expect(healthcheckPlan(img, { Test: ['NONE'] })).toBeUndefined();
    expect(healthcheckPlan(undefined, undefined)).toBeUndefined();
    expect(() => healthcheckPlan(undefined, { Test: ['CMD'] })).toThrow(/no program/);
    expect(() => healthcheckPlan(undefined, { Test: ['CMD-SHELL', 'a', 'b'] })).toThrow(/one command string/);
    expect(() => healthcheckPlan(undefined, { Test: ['RUN', 'x'] })).toThrow(/NONE, CMD or CMD-SHELL/);
  });
});
