// How the spec and the image config combine into the container's process, exactly as Docker does:
// argv, environment, working directory, stop signal and healthcheck. Pure functions.
import type { ImageConfig, ImageHealthcheck } from '../image/index.js';
import type { ContainerSpec, HealthConfig } from './types.js';

/** Docker's PATH when neither the image nor the spec sets one. */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_STOP_SIGNAL = 'SIGTERM';
export const DEFAULT_STOP_GRACE_PERIOD_NS = 10e9;

/**
 * argv of the container's init. A spec Command replaces the image ENTRYPOINT and drops the image CMD
 * (the image's CMD was written for its own ENTRYPOINT); spec Args replace the CMD. Empty lists count
 * as absent, as in Docker. Returns [] when nothing is left to run.
 */
export function processArgs(image: Pick<ImageConfig, 'entrypoint' | 'cmd'>, spec: Pick<ContainerSpec, 'Command' | 'Args'>): string[] {
  const command = spec.Command !== undefined && spec.Command.length > 0 ? spec.Command : undefined;
  const args = spec.Args !== undefined && spec.Args.length > 0 ? spec.Args : undefined;
  const entrypoint = command ?? image.entrypoint ?? [];
  const cmd = args ?? (command !== undefined ? [] : (image.cmd ?? []));
  return [...entrypoint, ...cmd];
}

function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/**
 * The environment: the image's, then the spec's (a spec key replaces the image's value in place), then
 * Docker's additions: PATH when missing and HOSTNAME. A spec entry without `=` is dropped (Docker
 * would look it up in the client's environment, which a worker does not have).
 */
export function processEnv(imageEnv: readonly string[], specEnv: readonly string[] | undefined, hostname: string): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  const put = (entry: string): void => {
    if (!entry.includes('=')) return;
    const key = envKey(entry);
    if (key === '') return;
    if (!values.has(key)) order.push(key);
    values.set(key, entry);
  };
  for (const e of imageEnv) put(e);
  for (const e of specEnv ?? []) put(e);
  if (!values.has('PATH')) {
    order.unshift('PATH');
    values.set('PATH', DEFAULT_PATH);
  }
  if (!values.has('HOSTNAME')) {
    order.unshift('HOSTNAME');
    values.set('HOSTNAME', `HOSTNAME=${hostname}`);
  }
  return order.map((k) => values.get(k) as string);
}

/** Working directory: spec Dir, else the image's WORKDIR, else `/`. Relative paths are taken from `/`. */
export function processCwd(imageWorkingDir: string, specDir: string | undefined): string {
  const dir = specDir !== undefined && specDir !== '' ? specDir : imageWorkingDir !== '' ? imageWorkingDir : '/';
  return dir.startsWith('/') ? dir : `/${dir}`;
}

/** The signal `shutdown` sends first: spec, then image, then SIGTERM. Normalized to `SIGNAME` or a number. */
export function stopSignal(imageSignal: string | undefined, specSignal: string | undefined): string {
  const raw = specSignal !== undefined && specSignal !== '' ? specSignal : imageSignal !== undefined && imageSignal !== '' ? imageSignal : DEFAULT_STOP_SIGNAL;
  if (/^\d+$/.test(raw)) return raw;
  const upper = raw.toUpperCase();
  return upper.startsWith('SIG') ? upper : `SIG${upper}`;
}

export interface HealthcheckPlan {
  /** argv to run in the container: CMD → as given; CMD-SHELL → /bin/sh -c. */
  readonly argv: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly startPeriodMs: number;
  readonly retries: number;
}

/** Docker's defaults for a healthcheck field left at 0. */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, retries: 3 } as const;

/**
 * The healthcheck to run, or undefined for none. A spec Test (non-empty) replaces the image's; each
 * zero or absent duration or retry count falls back to the image's, then to Docker's default.
 * Throws Error with a readable message for a malformed Test.
 */
export function healthcheckPlan(image: ImageHealthcheck | undefined, spec: HealthConfig | undefined): HealthcheckPlan | undefined {
  const specTest = spec?.Test !== undefined && spec.Test.length > 0 ? spec.Test : undefined;
  const test = specTest ?? (image !== undefined && image.test.length > 0 ? image.test : undefined);
  if (test === undefined || test[0] === 'NONE') return undefined;
  let argv: readonly string[];
  if (test[0] === 'CMD') {
    argv = test.slice(1);
  } else if (test[0] === 'CMD-SHELL') {
    if (test.length !== 2) throw new Error(`healthcheck CMD-SHELL takes one command string, got ${test.length - 1}`);
    argv = ['/bin/sh', '-c', test[1] as string];
  } else {
    throw new Error(`healthcheck test must start with NONE, CMD or CMD-SHELL, got ${JSON.stringify(test[0])}`);
  }
  if (argv.length === 0) throw new Error('healthcheck CMD has no program');
  const pick = (specNs: number | undefined, imageNs: number | undefined, fallbackMs: number): number =>
    specNs !== undefined && specNs > 0 ? Math.ceil(specNs / 1e6) : imageNs !== undefined && imageNs > 0 ? Math.ceil(imageNs / 1e6) : fallbackMs;
  const retries = spec?.Retries !== undefined && spec.Retries > 0 ? spec.Retries : image !== undefined && image.retries > 0 ? image.retries : HEALTH_DEFAULTS.retries;
  return {
    argv,
    intervalMs: pick(spec?.Interval, image?.intervalNs, HEALTH_DEFAULTS.intervalMs),
    timeoutMs: pick(spec?.Timeout, image?.timeoutNs, HEALTH_DEFAULTS.timeoutMs),
    startPeriodMs: pick(spec?.StartPeriod, image?.startPeriodNs, HEALTH_DEFAULTS.startPeriodMs),
    retries,
  };
}
