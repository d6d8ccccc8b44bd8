// The contract between the agent's task controllers and an executor: what a task asks for (in
// Docker's ContainerSpec shape, PascalCase, durations in nanoseconds, as the store keeps it) and
// the lifecycle calls that drive one container. The runc executor implements it; the agent's tests
// may implement it in process, but nothing that ships defaults to such a test executor.

// ------------------------------------------------------------------------------- task input

export interface BindOptions {
  readonly Propagation?: 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';
}

export interface VolumeOptions {
  /** Do not copy the image's files at the target into a new, empty volume. */
  readonly NoCopy?: boolean;
  readonly Labels?: Readonly<Record<string, string>>;
}

export interface TmpfsOptions {
  readonly SizeBytes?: number;
  /** Octal permission bits as a number (e.g. 0o1777). */
  readonly Mode?: number;
}

export interface MountSpec {
  /** Default `volume`, as Docker's. */
  readonly Type?: 'bind' | 'volume' | 'tmpfs' | 'npipe' | 'cluster';
  /** bind: a host path; volume: a volume name (empty: an anonymous volume removed with the task). */
  readonly Source?: string;
  readonly Target: string;
  readonly ReadOnly?: boolean;
  readonly BindOptions?: BindOptions;
  readonly VolumeOptions?: VolumeOptions;
  readonly TmpfsOptions?: TmpfsOptions;
}

export interface FileTarget {
  /** A secret's file name under /run/secrets, a config's path (relative: under /), or an absolute path. */
  readonly Name: string;
  /** Numeric, as strings (Docker's shape). */
  readonly UID: string;
  readonly GID: string;
  readonly Mode: number;
}

export interface SecretReference {
  readonly File?: FileTarget;
  readonly SecretID: string;
  readonly SecretName: string;
}

export interface ConfigReference {
  readonly File?: FileTarget;
  readonly Runtime?: Readonly<Record<string, never>>;
  readonly ConfigID: string;
  readonly ConfigName: string;
}

export interface HealthConfig {
  /** [] = inherit the image's; ["NONE"]; ["CMD", prog, args…]; ["CMD-SHELL", "command"]. */
  readonly Test?: readonly string[];
  /** Nanoseconds; 0 or absent = inherit the image's, else Docker's default. */
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly StartPeriod?: number;
  readonly Retries?: number;
}

export interface ContainerSpec {
  readonly Image: string;
  readonly Labels?: Readonly<Record<string, string>>;
  /** Replaces the image's ENTRYPOINT (and then drops its CMD). */
  readonly Command?: readonly string[];
  /** Replaces the image's CMD. */
  readonly Args?: readonly string[];
  readonly Hostname?: string;
  /** `KEY=value`; wins over the image's value of the same key. */
  readonly Env?: readonly string[];
  readonly Dir?: string;
  /** `name`, `uid`, `name:group`, `uid:gid`; names resolved in the image's /etc/passwd and /etc/group. */
  readonly User?: string;
  /** Supplementary groups (names or numbers). */
  readonly Groups?: readonly string[];
  readonly ReadOnly?: boolean;
  readonly Mounts?: readonly MountSpec[];
  /** Default: the image's STOPSIGNAL, else SIGTERM. */
  readonly StopSignal?: string;
  /** Nanoseconds; default 10 s. */
  readonly StopGracePeriod?: number;
  readonly Healthcheck?: HealthConfig;
  /** Extra /etc/hosts lines, `IP host…` (or Docker's `host:IP`). */
  readonly Hosts?: readonly string[];
  readonly DNSConfig?: { readonly Nameservers?: readonly string[]; readonly Search?: readonly string[]; readonly Options?: readonly string[] };
  readonly Secrets?: readonly SecretReference[];
  readonly Configs?: readonly ConfigReference[];
  readonly Sysctls?: Readonly<Record<string, string>>;
}

export interface ResourceLimits {
  /** 1e9 = one CPU; becomes a CFS quota of NanoCPUs / 1e9 × period. */
  readonly NanoCPUs?: number;
  readonly MemoryBytes?: number;
  /** Maximum number of processes (pids.max); 0 or absent = unlimited. */
  readonly Pids?: number;
}

export interface TaskSpec {
  readonly ContainerSpec?: ContainerSpec;
  readonly Resources?: { readonly Limits?: ResourceLimits; readonly Reservations?: ResourceLimits };
}

/** Where the agent gets secret and config payloads from its assignment set. */
export interface DependencyGetter {
  secret(id: string): Uint8Array | undefined;
  config(id: string): Uint8Array | undefined;
}

/** Everything the executor needs to run one task. */
export interface TaskDescriptor {
  /** The task ID; also the container's ID and default hostname. `[A-Za-z0-9][A-Za-z0-9_.-]*`, ≤ 64. */
  readonly taskId: string;
  readonly spec: TaskSpec;
  readonly serviceId?: string;
  /**
   * A network namespace the caller made (the overlay): `/run/netns/NAME`. Absent: runc makes a new,
   * loopback-only namespace for the container (lo up), which ends with the container.
   */
  readonly networkNamespacePath?: string;
  /**
   * The container's /etc/resolv.conf content (the overlay's embedded DNS). Absent: built from the
   * spec's DNSConfig when it has one, else the image's own file is left alone.
   */
  readonly resolvConf?: string;
  /** Docker's `X-Registry-Auth` value for the pull. */
  readonly registryAuth?: string;
  readonly dependencies?: DependencyGetter;
}

// ------------------------------------------------------------------------------ observed state

/**
 * absent: nothing on disk; prepared: bundle, rootfs and namespace ready, no process; running: the
 * container's init is alive; exited: it ended (exit status known); removed: everything is gone.
 */
export type ContainerState = 'absent' | 'prepared' | 'running' | 'exited' | 'removed';

export type HealthStatus = 'none' | 'starting' | 'healthy' | 'unhealthy';

export interface HealthProbeResult {
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** The probe's exit code; -1 when it timed out or could not run. */
  readonly exitCode: number;
  /** First bytes of its output. */
  readonly output: string;
}

export interface HealthReport {
  readonly status: HealthStatus;
  readonly failingStreak: number;
  /** The last few probes, oldest first. */
  readonly log: readonly HealthProbeResult[];
}

export interface ExitStatus {
  /** COMPLETE for exit code 0, FAILED otherwise (and for an unhealthy container). */
  readonly state: 'complete' | 'failed';
  /** The init's exit code, 128+N for signal N; undefined when unknown (unhealthy while running, or lost). */
  readonly exitCode: number | undefined;
  /** The memory cgroup saw an OOM kill while the task ran. */
  readonly oomKilled: boolean;
  /** The container is still running but its healthcheck failed `Retries` times. */
  readonly unhealthy: boolean;
  /** `task: non-zero exit (N)`, with a note for OOM kills; '' when COMPLETE. */
  readonly message: string;
  readonly finishedAtMs: number;
}

export interface TaskInspect {
  readonly taskId: string;
  readonly state: ContainerState;
  /** The container init's PID in the host's namespace while running. */
  readonly pid: number | undefined;
  readonly exitCode: number | undefined;
  readonly oomKilled: boolean;
  readonly health: HealthReport;
  readonly startedAtMs: number | undefined;
  readonly finishedAtMs: number | undefined;
  /** The image's ID (config digest) once prepared. */
  readonly imageId: string | undefined;
  /** Where stdout/stderr go: JSON lines `{ts, stream, line}` (`log`, rotated to `log.1`…). */
  readonly logPath: string | undefined;
  /** True when this executor process found the container running and re-attached to it. */
  readonly adopted: boolean;
}

export type TaskEvent =
  | { readonly type: 'started'; readonly taskId: string; readonly pid: number }
  | { readonly type: 'health'; readonly taskId: string; readonly status: HealthStatus }
  | { readonly type: 'exited'; readonly taskId: string; readonly status: ExitStatus };

// ---------------------------------------------------------------------------------- interfaces

/**
 * Drives one task's container. Calls are idempotent where the agent may repeat them after a restart:
 * prepare() on a prepared or running task and start() on a running one resolve at once; remove() of
 * a removed task too.
 */
export interface TaskController {
  readonly taskId: string;
  /** Pull the image, mount the root, make the namespace, secrets, mounts and the OCI bundle. */
  prepare(signal?: AbortSignal): Promise<void>;
  /** Start the container's process; resolves once it runs (its PID is known). */
  start(): Promise<void>;
  /**
   * Resolves when the container exits, or when its healthcheck makes it unhealthy (then the caller
   * shuts it down). Never rejects for a non-zero exit: that is an ExitStatus with state failed.
   */
  wait(): Promise<ExitStatus>;
  /** Stop signal, then SIGKILL after the stop grace period; resolves when the process is gone. */
  shutdown(): Promise<void>;
  /** SIGKILL now; resolves when the process is gone. */
  terminate(): Promise<void>;
  /** Deletes the container, its mounts, cgroup, namespace (if ours), secrets and bundle. Logs stay until removeLogs. */
  remove(options?: { readonly removeLogs?: boolean }): Promise<void>;
  inspect(): TaskInspect;
  /** Subscribes to this task's events; returns the unsubscribe function. */
  onEvent(listener: (event: TaskEvent) => void): () => void;
}

export interface ReconcileResult {
  /** Tasks kept (adopted or already known). */
  readonly kept: readonly string[];
  /** Tasks whose containers were stopped and removed. */
  readonly removed: readonly string[];
}

export interface Executor {
  /** The controller of a task: the same object for the same task ID, adopted state included. */
  controller(task: TaskDescriptor): TaskController;
  /** Task IDs this executor holds containers for (running, prepared or exited, not removed). */
  taskIds(): readonly string[];
  /** Removes every container whose task is not in `wantedTaskIds` (after a restart, tasks no longer assigned). */
  reconcile(wantedTaskIds: Iterable<string>): Promise<ReconcileResult>;
  /** Stops watching (health checks, log readers). Containers keep running; a new executor adopts them. */
  close(): Promise<void>;
}
