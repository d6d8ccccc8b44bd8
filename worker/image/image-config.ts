// The parts of an image's config blob that the executor needs, typed and validated.
import { isSha256Digest } from './digest.js';

export interface ImageHealthcheck {
  /** ["NONE"], ["CMD", ...], or ["CMD-SHELL", "cmd"]; Docker's shapes. */
  readonly test: readonly string[];
  /** Nanoseconds, as in the config blob; 0 = default. */
  readonly intervalNs: number;
  readonly timeoutNs: number;
  readonly startPeriodNs: number;
  readonly startIntervalNs: number;
  readonly retries: number;
}

export interface ImageConfig {
  readonly entrypoint: readonly string[] | undefined;
  readonly cmd: readonly string[] | undefined;
  readonly env: readonly string[];
  readonly user: string;
  readonly workingDir: string;
  readonly healthcheck: ImageHealthcheck | undefined;
  readonly stopSignal: string | undefined;
  /** Keys like `80/tcp`. */
  readonly exposedPorts: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly volumes: readonly string[];
}

export interface ParsedImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly variant: string | undefined;
  readonly config: ImageConfig;
  /** Uncompressed layer digests, bottom layer first. */
  readonly diffIds: readonly string[];
}

function strings(v: unknown, what: string): readonly string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`${what} must be a list of strings`);
  return v as string[];
}

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new Error(`${what} must be a string`);
  return v;
}

function num(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what} must be a number`);
  return v;
}

function keys(v: unknown, what: string): readonly string[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be an object`);
  return Object.keys(v);
}

/** Parses the config blob (Docker and OCI share the shape); throws Error naming the bad field. */
export function parseImageConfig(raw: Buffer): ParsedImageConfig {
  const doc = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null) throw new Error('config is not a JSON object');
  const rootfs = doc.rootfs as { type?: unknown; diff_ids?: unknown } | undefined;
  if (rootfs === undefined || rootfs.type !== 'layers') throw new Error('config has no rootfs of type "layers"');
  const diffIds = strings(rootfs.diff_ids, 'rootfs.diff_ids') ?? [];
  for (const d of diffIds) if (!isSha256Digest(d)) throw new Error(`rootfs.diff_ids holds ${JSON.stringify(d)}, not a sha256 digest`);
  const c = (doc.config ?? {}) as Record<string, unknown>;
  const hc = c.Healthcheck as Record<string, unknown> | undefined | null;
  const labels = (c.Labels ?? {}) as Record<string, unknown>;
  const labelOut: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') labelOut[k] = v;
  return {
    architecture: str(doc.architecture, 'architecture') ?? '',
    os: str(doc.os, 'os') ?? '',
    variant: str(doc.variant, 'variant'),
    diffIds,
    config: {
      entrypoint: strings(c.Entrypoint, 'config.Entrypoint'),
      cmd: strings(c.Cmd, 'config.Cmd'),
      env: strings(c.Env, 'config.Env') ?? [],
      user: str(c.User, 'config.User') ?? '',
      workingDir: str(c.WorkingDir, 'config.WorkingDir') ?? '',
      healthcheck:
        hc === undefined || hc === null
          ? undefined
          : {
              test: strings(hc.Test, 'config.Healthcheck.Test') ?? [],
              intervalNs: num(hc.Interval, 'config.Healthcheck.Interval'),
              timeoutNs: num(hc.Timeout, 'config.Healthcheck.Timeout'),
              startPeriodNs: num(hc.StartPeriod, 'config.Healthcheck.StartPeriod'),
              startIntervalNs: num(hc.StartInterval, 'config.Healthcheck.StartInterval'),
              retries: num(hc.Retries, 'config.Healthcheck.Retries'),
            },
      stopSignal: str(c.StopSignal, 'config.StopSignal'),
      exposedPorts: keys(c.ExposedPorts, 'config.ExposedPorts'),
      labels: labelOut,
      volumes: keys(c.Volumes, 'config.Volumes'),
    },
  };
}
