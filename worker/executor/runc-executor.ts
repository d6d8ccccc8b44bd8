// The runc executor: one OCI bundle and one shim per task, under a data root of its own. Layout,
// lifecycle and adoption: README.md in this folder.
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { ImageConfig, PullOptions, RootfsMount, RootfsPlan } from '../image/index.js';
import { oomKillCount, removeCgroupTree } from './cgroups.js';
import { ExecutorError, HostSetupError, InvalidTaskSpecError, RuntimeError, TaskImageError, TaskStateError, TaskTimeoutError } from './errors.js';
import { HealthMonitor } from './health.js';
import { ImageResolver } from './image-resolver.js';
import { isMountPoint, mountsUnder, unmountIfMounted } from './host-mounts.js';
import { deleteNetns } from './netns.js';
import { buildOciConfig, type OciMount } from './oci-spec.js';
import { DEFAULT_STOP_GRACE_PERIOD_NS, healthcheckPlan, processArgs, processCwd, processEnv, stopSignal, type HealthcheckPlan } from './process-spec.js';
import { Runc, RuncCommandError, type RuncState } from './runc.js';
import { ackShim, ShimLauncher, TASK_FILES, tellShim } from './shim.js';
import { shimBinary } from './shim/build.js';
import { DEFAULT_TASK_LOG_OPTIONS, FifoLogReader, TaskLogWriter, type TaskLogOptions } from './task-log.js';
import { MountSpecError, prepareEtcFiles, prepareSecretFiles, prepareSpecMounts, removeDirs } from './task-mounts.js';
import type { ContainerState, Executor, ExitStatus, HealthReport, ReconcileResult, TaskController, TaskDescriptor, TaskEvent, TaskInspect } from './types.js';
import { resolveUser, UserLookupError, type ResolvedUser } from './user.js';

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DEFAULT_START_TIMEOUT_MS = 30_000;
/** After SIGKILL, how long a container may take to be gone before shutdown gives up. */
const KILL_WAIT_MS = 10_000;
const START_POLL_MS = 100;
/** How long a new shim may take to make and open its FIFOs. */
const SHIM_READY_TIMEOUT_MS = 30_000;
/** Safety-net poll for the shim's status file (inotify normally reports it at once). */
const EXIT_POLL_MS = 1_000;
/** After acknowledging the status, how long to wait for the log FIFOs to drain to EOF. */
const DRAIN_WAIT_MS = 5_000;
const HOSTNAME_MAX = 63;
const DEFAULT_TAG_FRESH_MS = 1_000;
const USER_CACHE_MAX = 1_024;
const RECORD_VERSION = 1;
/** How long adoption waits for an exited container's FIFOs to drain. */
const ADOPT_DRAIN_MS = 5_000;
const NO_HEALTH: HealthReport = { status: 'none', failingStreak: 0, log: [] };

/** What the executor needs from the image store (worker/image's ImageStore has it). */
export interface ImageSource {
  pull(reference: string, options?: PullOptions): Promise<{ readonly image: { readonly id: string; readonly config: ImageConfig } }>;
  get(idOrReference: string): { readonly id: string; readonly config: ImageConfig } | undefined;
  mountRootfs(imageId: string, containerDir: string): Promise<RootfsMount>;
  /** mountRootfs without the mount itself: the shim mounts it (one process fewer from the daemon). */
  planRootfs(imageId: string, containerDir: string): Promise<RootfsPlan>;
  /** Counts a root an earlier process mounted as in use again (adoption), so gc keeps its image. */
  adoptRootfs(imageId: string, containerDir: string): RootfsMount;
}

export interface RuncExecutorOptions {
  /** Everything the executor keeps: runc's root, task bundles, logs, volumes. */
  readonly dataRoot: string;
  readonly images: ImageSource;
  readonly logger?: Logger;
  readonly runcBinary?: string;
  /** Parent of every task's cgroup (`/<cgroupParent>/<taskId>`); distinct per executor sharing a host. */
  readonly cgroupParent?: string;
  /** Prefix of the loopback namespaces this executor makes (`<prefix>-<random>`). */
  readonly netnsPrefix?: string;
  readonly taskLog?: Partial<TaskLogOptions>;
  readonly startTimeoutMs?: number;
  /**
   * `always` (default) asks the registry at prepare unless the reference is pinned to a digest the
   * store has (a failed pull falls back to a local copy); `missing` pulls only what is absent.
   */
  readonly pullPolicy?: 'always' | 'missing';
  /** How long a tag the registry resolved is reused by later prepares without asking again (default 1 s; 0: never). */
  readonly tagFreshMs?: number;
}

/** What a task's directory remembers, for a later executor process. */
interface TaskRecord {
  readonly version: number;
  readonly taskId: string;
  readonly imageRef: string;
  readonly imageId: string;
  readonly cgroupsPath: string;
  /** The caller's namespace; undefined when runc made the container its own. */
  readonly netnsPath: string | undefined;
  /** Set when the namespace is ours to delete (records of executors that made one with `ip netns`). */
  readonly netnsName: string | undefined;
  readonly stopSignal: string;
  readonly stopGraceMs: number;
  readonly health: HealthcheckPlan | undefined;
  readonly anonymousVolumes: readonly string[];
  readonly secretsMounted: boolean;
  readonly preparedAtMs: number;
  startedAtMs: number | undefined;
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}


async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** runc's last error message from its JSON log (`--log-format json`). */
async function lastRuncError(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  let msg = '';
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg !== undefined) msg = entry.msg;
    } catch {
      msg = line;
    }
  }
  return msg.trim();
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

/**
 * Resolves with the first of `names` that exists in `dir` (inotify, with a slow poll as a safety
 * net), or undefined after timeoutMs or once `until` settles.
 */
async function waitForAnyFile(dir: string, names: readonly string[], timeoutMs: number, until?: Promise<unknown>): Promise<string | undefined> {
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string | undefined>((resolve) => {
      let settled = false;
      const check = async (): Promise<void> => {
        for (const n of names) {
          if (!settled && (await exists(join(dir, n)))) {
            settled = true;
            resolve(n);
            return;
          }
        }
      };
      watcher = watch(dir, (_event, filename) => {
        if (filename !== null && names.includes(filename)) void check();
      });
      watcher.on('error', () => undefined);
      poll = setInterval(() => void check(), START_POLL_MS);
      const giveUp = (): void => {
        if (settled) return;
        settled = true;
        resolve(undefined);
      };
      timer = setTimeout(giveUp, timeoutMs);
      until?.then(giveUp, giveUp);
      void check();
    });
  } finally {
    watcher?.close();
    clearInterval(poll);
    clearTimeout(timer);
  }
}

export class RuncExecutor implements Executor {
  readonly runc: Runc;
  private readonly tasks = new Map<string, RuncTask>();
  private readonly log: Logger;
  readonly cgroupParent: string;
  readonly netnsPrefix: string;
  readonly taskLogOptions: TaskLogOptions;
  readonly imageResolver: ImageResolver;
  /** @internal Forks the shims. */
  readonly launcher: ShimLauncher;
  /** Users resolved per image (the image's /etc/passwd and /etc/group decide; a new root's upper dir is empty). */
  private readonly users = new Map<string, ResolvedUser>();
  private closed = false;

  private constructor(
    readonly opts: RuncExecutorOptions,
    shimPath: string,
  ) {
    this.log = (opts.logger ?? pino({ name: 'executor', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ component: 'executor' });
    this.runc = new Runc(join(opts.dataRoot, 'runc'), opts.runcBinary ?? 'runc');
    this.cgroupParent = (opts.cgroupParent ?? 'shoal').replace(/^\/+|\/+$/g, '');
    this.netnsPrefix = opts.netnsPrefix ?? 'shoal';
    this.taskLogOptions = { ...DEFAULT_TASK_LOG_OPTIONS, ...opts.taskLog };
    this.launcher = new ShimLauncher(shimPath, this.runc.binary, this.runc.root, () => shimBinary(join(opts.dataRoot, 'shim')));
    this.imageResolver = new ImageResolver(opts.images, { pullPolicy: opts.pullPolicy ?? 'always', tagFreshMs: opts.tagFreshMs ?? DEFAULT_TAG_FRESH_MS });
  }

  get tasksDir(): string {
    return join(this.opts.dataRoot, 'tasks');
  }
  get logsDir(): string {
    return join(this.opts.dataRoot, 'logs');
  }
  get volumesDir(): string {
    return join(this.opts.dataRoot, 'volumes');
  }

  /**
   * Opens the data root and adopts what an earlier executor left: running containers are re-attached
   * (logs, exit, health), exited ones report their status, prepared ones can be started; runc
   * containers without a task directory are removed.
   */
  static async open(opts: RuncExecutorOptions): Promise<RuncExecutor> {
    // The native shim, built on first use (ShimBuildError names gcc when it cannot be built; a
    // read-only checkout builds it under the data root).
    const shimPath = await shimBinary(join(opts.dataRoot, 'shim'));
    const ex = new RuncExecutor(opts, shimPath);
    for (const d of [ex.runc.root, ex.tasksDir, ex.logsDir, ex.volumesDir]) await mkdir(d, { recursive: true, mode: 0o711 });
    await ex.adopt();
    return ex;
  }

  private async adopt(): Promise<void> {
    const runcStates = new Map((await this.runc.list()).map((s) => [s.id, s]));
    const dirs = await readdir(this.tasksDir);
    for (const id of dirs) {
      const dir = join(this.tasksDir, id);
      const record = await readFile(join(dir, TASK_FILES.record), 'utf8')
        .then((t) => JSON.parse(t) as TaskRecord)
        .catch(() => undefined);
      if (record === undefined || record.version !== RECORD_VERSION || record.taskId !== id) {
        // A prepare that died before its record was written: undo what it may have made.
        this.log.warn({ taskId: id }, 'removing a task directory without a record');
        await this.removeUnrecorded(id, dir);
        continue;
      }
      const task = new RuncTask(this, { taskId: id, spec: {} }, this.log);
      const runcState = runcStates.get(id);
      runcStates.delete(id);
      if (await task.adopt(record, runcState)) {
        this.tasks.set(id, task);
      } else {
        // A prepared bundle whose host state is gone (the host rebooted): start over at prepare.
        this.log.warn({ taskId: id }, 'discarding a prepared task whose mounts or namespace are gone');
        await this.removeUnrecorded(id, dir);
      }
    }
    for (const orphan of runcStates.values()) {
      this.log.warn({ containerId: orphan.id, status: orphan.status }, 'removing a runc container with no task directory');
      await this.runc.delete(orphan.id, true).catch((err: unknown) => this.log.error({ err }, 'runc delete of an orphan failed'));
    }
  }

  /** Undoes what a task directory without a usable record may hold: container, shim, mounts, netns, cgroup. */
  private async removeUnrecorded(id: string, dir: string): Promise<void> {
    await this.runc.delete(id, true).catch(() => undefined);
    ackShim(dir);
    const config = await readFile(join(dir, TASK_FILES.bundle, 'config.json'), 'utf8')
      .then((t) => JSON.parse(t) as { linux?: { namespaces?: { type: string; path?: string }[] } })
      .catch(() => undefined);
    const nsName = config?.linux?.namespaces?.find((n) => n.type === 'network')?.path?.split('/').pop();
    if (nsName !== undefined && nsName.startsWith(`${this.netnsPrefix}-`)) await deleteNetns(nsName).catch(() => undefined);
    for (const m of await mountsUnder(dir)) await unmountIfMounted(m).catch(() => undefined);
    await removeCgroupTree(`/${this.cgroupParent}/${id}`, `/${this.cgroupParent}/${id}`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }

  controller(task: TaskDescriptor): TaskController {
    if (this.closed) throw new TaskStateError(task.taskId, 'the executor is closed');
    if (!TASK_ID.test(task.taskId)) throw new InvalidTaskSpecError(task.taskId, 'task ID must be 1–64 letters, digits, _ . - and start with a letter or digit');
    let t = this.tasks.get(task.taskId);
    if (t === undefined) {
      t = new RuncTask(this, task, this.log);
      this.tasks.set(task.taskId, t);
    } else {
      t.updateDescriptor(task);
    }
    return t;
  }

  /** @internal A user resolved earlier in the same image. */
  cachedUser(key: string): ResolvedUser | undefined {
    return this.users.get(key);
  }

  /** @internal */
  cacheUser(key: string, user: ResolvedUser): void {
    if (this.users.size >= USER_CACHE_MAX) this.users.delete(this.users.keys().next().value as string);
    this.users.set(key, user);
  }

  /** Image IDs of the tasks this executor holds (prepared, running or exited, not yet removed): pass to the image store's gc. */
  imagesInUse(): readonly string[] {
    const ids = new Set<string>();
    for (const t of this.tasks.values()) {
      const id = t.inspect().imageId;
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  taskIds(): readonly string[] {
    return [...this.tasks.keys()];
  }

  async reconcile(wantedTaskIds: Iterable<string>): Promise<ReconcileResult> {
    const wanted = new Set(wantedTaskIds);
    const kept: string[] = [];
    const removed: string[] = [];
    for (const [id, task] of [...this.tasks]) {
      if (wanted.has(id)) {
        kept.push(id);
        continue;
      }
      this.log.info({ taskId: id }, 'removing a container whose task is no longer assigned');
      await task.remove({ removeLogs: true });
      removed.push(id);
    }
    return { kept, removed };
  }

  /** @internal */
  forget(taskId: string, task: RuncTask): void {
    if (this.tasks.get(taskId) === task) this.tasks.delete(taskId);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.tasks.values()].map((t) => t.detach()));
    this.tasks.clear();
    this.launcher.close();
  }
}

class RuncTask implements TaskController {
  private state: ContainerState = 'absent';
  private record: TaskRecord | undefined;
  private rootfsMount: RootfsMount | undefined;
  private readers: FifoLogReader[] = [];
  private health: HealthMonitor | undefined;
  private pid: number | undefined;
  private exit: ExitStatus | undefined;
  private readonly exited = deferred<ExitStatus>();
  private readonly unhealthy = deferred<ExitStatus>();
  private startSettled: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(e: TaskEvent) => void>();
  private lifecycle: Promise<unknown> = Promise.resolve();
  private adopted = false;
  private shimPid: number | undefined;
  private exitWatch: { close(): void } | undefined;
  private detached = false;
  private readonly log: Logger;

  constructor(
    private readonly ex: RuncExecutor,
    private desc: TaskDescriptor,
    parentLog: Logger,
  ) {
    this.log = parentLog.child({ taskId: desc.taskId });
  }

  get taskId(): string {
    return this.desc.taskId;
  }
  private get dir(): string {
    return join(this.ex.tasksDir, this.taskId);
  }
  private get bundleDir(): string {
    return join(this.dir, TASK_FILES.bundle);
  }
  private get logPath(): string {
    return join(this.ex.logsDir, this.taskId, 'log');
  }

  updateDescriptor(desc: TaskDescriptor): void {
    this.desc = desc;
  }

  onEvent(listener: (event: TaskEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: TaskEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.log.error({ err }, 'task event listener threw');
      }
    }
  }

  /** Runs lifecycle steps one at a time per task. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lifecycle.then(fn, fn);
    this.lifecycle = run.catch(() => undefined);
    return run;
  }

  inspect(): TaskInspect {
    return {
      taskId: this.taskId,
      state: this.state,
      pid: this.state === 'running' ? this.pid : undefined,
      exitCode: this.exit?.exitCode,
      oomKilled: this.exit?.oomKilled ?? false,
      health: this.health?.report() ?? NO_HEALTH,
      startedAtMs: this.record?.startedAtMs,
      finishedAtMs: this.exit?.finishedAtMs,
      imageId: this.record?.imageId,
      logPath: this.state === 'absent' ? undefined : this.logPath,
      adopted: this.adopted,
    };
  }

  // ------------------------------------------------------------------------------- prepare

  prepare(signal?: AbortSignal): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'prepared' || this.state === 'running' || this.state === 'exited') return;
      if (this.state === 'removed') throw new TaskStateError(this.taskId, 'cannot prepare a removed task; use a new task ID');
      const undo: (() => Promise<unknown>)[] = [];
      try {
        this.record = await this.build(undo, signal);
        this.state = 'prepared';
      } catch (err) {
        for (const step of undo.reverse()) await step().catch((e: unknown) => this.log.error({ err: e }, 'undoing a failed prepare'));
        throw err;
      }
    });
  }

  private async build(undo: (() => Promise<unknown>)[], signal: AbortSignal | undefined): Promise<TaskRecord> {
    const id = this.taskId;
    const spec = this.desc.spec.ContainerSpec;
    if (spec === undefined || spec.Image === '') throw new InvalidTaskSpecError(id, 'the task has no ContainerSpec.Image');
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    undo.push(() => rm(this.dir, { recursive: true, force: true }));
    await mkdir(join(this.ex.logsDir, id), { recursive: true, mode: 0o700 });

    const image = await this.pullImage(spec.Image, signal);
    let root: RootfsPlan;
    try {
      root = await this.ex.opts.images.planRootfs(image.id, this.bundleDir);
    } catch (err) {
      throw new TaskImageError(id, `mount the root file system of ${spec.Image}: ${errorText(err)}`, { cause: err });
    }
    this.rootfsMount = root;
    undo.push(async () => {
      await root.unmount();
      this.rootfsMount = undefined;
    });
    // The shim makes the FIFOs, mounts the root and waits for its `start` line (start() then costs a
    // write), while the rest of prepare goes on here.
    let shimPid: number;
    try {
      shimPid = await this.ex.launcher.launch({ taskDir: this.dir, containerId: id, now: false, mount: root.overlay });
    } catch (err) {
      throw new HostSetupError(id, `start the shim: ${errorText(err)}`, { cause: err });
    }
    this.shimPid = shimPid;
    const settled = waitForAnyFile(this.dir, [TASK_FILES.shimReady, TASK_FILES.shimFailed], SHIM_READY_TIMEOUT_MS);
    // Undone before the root is unmounted: a shim still mounting would otherwise mount it after.
    undo.push(async () => {
      if ((await settled) === undefined) killQuietly(shimPid);
      else ackShim(this.dir);
    });
    const shimReady = async (): Promise<void> => {
      const outcome = await settled;
      if (outcome === TASK_FILES.shimReady) return;
      const failed = (await readFile(join(this.dir, TASK_FILES.shimWhy), 'utf8').catch(() => '')).trim();
      const log = (await readFile(join(this.dir, TASK_FILES.shimLog), 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('; ');
      const why = [failed, log].filter((x) => x !== '').join(': ');
      if (outcome === undefined) throw new HostSetupError(id, `the shim did not get ready within ${SHIM_READY_TIMEOUT_MS} ms${why !== '' ? `: ${why}` : ''}`);
      if (failed.startsWith('mount')) throw new TaskImageError(id, `mount the root file system of ${spec.Image}: ${why}`);
      throw new HostSetupError(id, `the shim failed: ${why}`);
    };

    const cfg = image.config;
    const userSpec = spec.User !== undefined && spec.User !== '' ? spec.User : cfg.user;
    const userKey = `${image.id}\0${userSpec}\0${(spec.Groups ?? []).join(',')}`;
    let user = this.ex.cachedUser(userKey);
    if (user === undefined) {
      await shimReady();
      try {
        user = await resolveUser(root.rootfs, userSpec, spec.Groups ?? []);
      } catch (err) {
        if (err instanceof UserLookupError) throw new InvalidTaskSpecError(id, err.message, { cause: err });
        throw err;
      }
      this.ex.cacheUser(userKey, user);
    }
    const hostname = spec.Hostname !== undefined && spec.Hostname !== '' ? spec.Hostname : id.slice(0, HOSTNAME_MAX);
    const args = processArgs(cfg, spec);
    if (args.length === 0) throw new InvalidTaskSpecError(id, `no command: the image ${spec.Image} has no ENTRYPOINT or CMD and the spec sets no Command`);
    const env = processEnv(cfg.env, spec.Env, hostname);
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    let health: HealthcheckPlan | undefined;
    try {
      health = healthcheckPlan(cfg.healthcheck, spec.Healthcheck);
    } catch (err) {
      throw new InvalidTaskSpecError(id, errorText(err), { cause: err });
    }

    const mounts: OciMount[] = [];
    let anonymousVolumes: string[] = [];
    let secretsMounted = false;
    const secretsDir = join(this.dir, 'secrets');
    // A new volume is seeded from the image's files at its target: that needs the root mounted.
    if ((spec.Mounts ?? []).some((m) => m.Type === 'volume')) await shimReady();
    try {
      const specMounts = await prepareSpecMounts(spec, id, root.rootfs, this.ex.volumesDir);
      anonymousVolumes = specMounts.anonymousVolumes;
      undo.push(() => removeDirs(anonymousVolumes));
      mounts.push(...specMounts.mounts);
      undo.push(() => unmountIfMounted(secretsDir));
      const secretMounts = await prepareSecretFiles(spec, this.desc.dependencies, secretsDir);
      secretsMounted = secretMounts.length > 0;
      mounts.push(...secretMounts);
      mounts.push(...(await prepareEtcFiles(spec, hostname, join(this.dir, 'etc'), this.desc.resolvConf)));
    } catch (err) {
      if (err instanceof MountSpecError) throw new InvalidTaskSpecError(id, err.message, { cause: err });
      throw new HostSetupError(id, `prepare mounts: ${errorText(err)}`, { cause: err });
    }

    const netnsPath = this.desc.networkNamespacePath;

    const limits = this.desc.spec.Resources?.Limits ?? {};
    const cgroupsPath = `/${this.ex.cgroupParent}/${id}`;
    const config = buildOciConfig({
      hostname,
      args,
      env,
      cwd: processCwd(cfg.workingDir, spec.Dir),
      user,
      rootfs: 'rootfs',
      readonlyRootfs: spec.ReadOnly === true,
      mounts,
      networkNamespacePath: netnsPath,
      cgroupsPath,
      limits: { nanoCpus: limits.NanoCPUs, memoryBytes: limits.MemoryBytes, pids: limits.Pids },
      sysctls: spec.Sysctls,
    });
    await writeFile(join(this.bundleDir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
    await shimReady();

    const record: TaskRecord = {
      version: RECORD_VERSION,
      taskId: id,
      imageRef: spec.Image,
      imageId: image.id,
      cgroupsPath,
      netnsPath,
      netnsName: undefined,
      stopSignal: stopSignal(cfg.stopSignal, spec.StopSignal),
      stopGraceMs: Math.ceil((spec.StopGracePeriod ?? DEFAULT_STOP_GRACE_PERIOD_NS) / 1e6),
      health,
      anonymousVolumes,
      secretsMounted,
      preparedAtMs: Date.now(),
      startedAtMs: undefined,
    };
    await this.saveRecord(record);
    return record;
  }

  private async pullImage(ref: string, signal: AbortSignal | undefined): Promise<{ id: string; config: ImageConfig }> {
    const images = this.ex.opts.images;
    try {
      const { image, how } = await this.ex.imageResolver.resolve(ref, { registryAuth: this.desc.registryAuth, signal });
      this.log.debug({ image: ref, id: image.id, how }, 'image resolved');
      return image;
    } catch (err) {
      // Swarm's agent runs a local copy when the registry cannot be reached; so do we.
      const local = images.get(ref);
      if (local !== undefined) {
        this.log.warn({ image: ref, err: errorText(err) }, 'pull failed; using the local copy');
        return local;
      }
      throw new TaskImageError(this.taskId, errorText(err), { cause: err });
    }
  }

  private async saveRecord(record: TaskRecord): Promise<void> {
    const tmp = join(this.dir, `${TASK_FILES.record}.tmp`);
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    await rename(tmp, join(this.dir, TASK_FILES.record));
  }

  // --------------------------------------------------------------------------------- start

  start(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'running' || this.state === 'exited') return;
      if (this.state !== 'prepared' || this.record === undefined) throw new TaskStateError(this.taskId, `cannot start a task that is ${this.state}; prepare it first`);
      const settled = deferred<void>();
      this.startSettled = settled.promise;
      try {
        await this.startContainer(this.record);
      } finally {
        settled.resolve();
      }
    });
  }

  private async startContainer(record: TaskRecord): Promise<void> {
    const id = this.taskId;
    // After a restart of the host the overlay is gone: mount it again.
    if (this.rootfsMount === undefined && !(await isMountPoint(join(this.bundleDir, 'rootfs')))) {
      this.rootfsMount = await this.ex.opts.images.mountRootfs(record.imageId, this.bundleDir);
    }
    await Promise.all([TASK_FILES.pid, TASK_FILES.exit].map((f) => rm(join(this.dir, f), { force: true })));
    this.openReaders();
    if (!tellShim(this.dir, 'start')) {
      // No shim waiting (it was killed, or the host restarted): spawn one that runs at once.
      try {
        this.shimPid = await this.ex.launcher.launch({ taskDir: this.dir, containerId: id, now: true });
      } catch (err) {
        this.closeReaders();
        throw new RuntimeError(id, 'start the shim', errorText(err), { cause: err });
      }
    }
    this.state = 'running';
    this.watchExit();
    const seen = await waitForAnyFile(this.dir, [TASK_FILES.pid, TASK_FILES.exit], this.ex.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    for (const r of this.readers) r.releaseKeeper();
    const pidText = await readFile(join(this.dir, TASK_FILES.pid), 'utf8').catch(() => undefined);
    if (pidText === undefined) {
      if (seen === undefined) {
        await this.ex.runc.kill(id, 'KILL', true).catch(() => undefined);
        try {
          if (this.shimPid !== undefined) process.kill(this.shimPid, 'SIGKILL');
        } catch {
          // Gone already.
        }
        throw new TaskTimeoutError(id, `the container did not start within ${this.ex.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS} ms`);
      }
      // runc ended before the process ran: bad command, mount or limit. The readers see EOF and record the exit.
      const why = (await lastRuncError(join(this.dir, TASK_FILES.runcLog))) || (await readFile(join(this.dir, TASK_FILES.shimLog), 'utf8').catch(() => '')).trim();
      throw new RuntimeError(id, 'starting container failed', why);
    }
    this.pid = Number(pidText.trim());
    record.startedAtMs = Date.now();
    await this.saveRecord(record);
    this.log.info({ pid: this.pid }, 'container started');
    this.emit({ type: 'started', taskId: id, pid: this.pid });
    this.startHealth(record);
  }

  private openReaders(): void {
    const writer = new TaskLogWriter(this.logPath, this.ex.taskLogOptions);
    const out = new FifoLogReader(join(this.dir, TASK_FILES.stdoutFifo), 'stdout', writer, this.ex.taskLogOptions.maxLineChars);
    const err = new FifoLogReader(join(this.dir, TASK_FILES.stderrFifo), 'stderr', writer, this.ex.taskLogOptions.maxLineChars);
    this.readers = [out, err];
    const both = Promise.all([out.ended, err.ended]);
    void both.then(() => {
      if (!this.detached) void this.onContainerGone();
    });
  }

  private closeReaders(): void {
    for (const r of this.readers) r.close();
    this.readers = [];
  }

  private startHealth(record: TaskRecord): void {
    if (record.health === undefined || this.state !== 'running') return;
    const plan = record.health;
    const pidFile = join(this.dir, TASK_FILES.healthPid);
    this.health = new HealthMonitor(
      plan,
      record.startedAtMs ?? Date.now(),
      (argv, timeoutMs, outputMaxChars) => this.ex.runc.exec(this.taskId, argv, { timeoutMs, pidFile, outputMaxBytes: outputMaxChars }),
      (status) => {
        this.log.info({ health: status }, 'health changed');
        this.emit({ type: 'health', taskId: this.taskId, status });
        if (status === 'unhealthy') {
          this.unhealthy.resolve({ state: 'failed', exitCode: undefined, oomKilled: false, unhealthy: true, message: 'task: container unhealthy', finishedAtMs: Date.now() });
        }
      },
    );
    this.health.start();
  }

  /**
   * Watches for the shim's status file; once there, acknowledges it (the shim then closes the log
   * FIFOs and ends), waits for the readers to drain to EOF, and records the exit.
   */
  private watchExit(): void {
    this.exitWatch?.close();
    const exitPath = join(this.dir, TASK_FILES.exit);
    let fired = false;
    const check = async (): Promise<void> => {
      if (fired || !(await exists(exitPath))) return;
      fired = true;
      stop();
      ackShim(this.dir);
      const readers = this.readers;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(readers.map((r) => r.ended)), new Promise<void>((r) => (timer = setTimeout(r, DRAIN_WAIT_MS)))]);
      clearTimeout(timer);
      if (!this.detached) await this.onContainerGone();
    };
    const watcher = watch(this.dir, (_event, filename) => {
      if (filename === TASK_FILES.exit) void check();
    });
    watcher.on('error', () => undefined);
    const poll = setInterval(() => void check(), EXIT_POLL_MS);
    poll.unref();
    const stop = (): void => {
      watcher.close();
      clearInterval(poll);
      if (this.exitWatch === handle) this.exitWatch = undefined;
    };
    const handle = { close: stop };
    this.exitWatch = handle;
    void check();
  }

  /**
   * The container is gone: its status file was acknowledged and the logs drained, or both log FIFOs
   * reached EOF without a status (the shim was killed). Records the exit status once.
   */
  private async onContainerGone(): Promise<void> {
    await this.startSettled;
    this.exitWatch?.close();
    if (this.exit !== undefined || this.record === undefined) return;
    const record = this.record;
    await this.health?.stop();
    const exitText = await readFile(join(this.dir, TASK_FILES.exit), 'utf8').catch(() => undefined);
    const parsed = exitText === undefined ? NaN : Number(exitText.trim());
    const exitCode = Number.isInteger(parsed) ? parsed : undefined;
    const oomKilled = (await oomKillCount(record.cgroupsPath)) > 0;
    this.readers = [];
    this.setExited(exitCode, oomKilled);
  }

  private setExited(exitCode: number | undefined, oomKilled: boolean): void {
    let message = '';
    if (exitCode === undefined) message = 'task: container exited with an unknown status (its shim was killed)';
    else if (exitCode !== 0) message = `task: non-zero exit (${exitCode})`;
    if (oomKilled && message !== '') message += ': killed by the kernel OOM killer (memory limit reached)';
    const status: ExitStatus = {
      state: exitCode === 0 ? 'complete' : 'failed',
      exitCode,
      oomKilled,
      unhealthy: false,
      message,
      finishedAtMs: Date.now(),
    };
    this.exit = status;
    this.state = 'exited';
    this.log.info({ exitCode, oomKilled }, 'container exited');
    this.emit({ type: 'exited', taskId: this.taskId, status });
    this.exited.resolve(status);
  }

  // ------------------------------------------------------------------------------ adoption

  /**
   * Re-attaches to what an earlier executor left for this task. Returns false for a prepared task
   * whose root, secrets or namespace no longer exist (the caller discards it).
   */
  async adopt(record: TaskRecord, runcState: RuncState | undefined): Promise<boolean> {
    this.record = record;
    // The root an earlier process mounted stays in use: the image store's gc must keep its image.
    if (await isMountPoint(join(this.bundleDir, 'rootfs'))) this.rootfsMount = this.ex.opts.images.adoptRootfs(record.imageId, this.bundleDir);
    const exitFile = await exists(join(this.dir, TASK_FILES.exit));
    const pidFile = await exists(join(this.dir, TASK_FILES.pid));
    if (!exitFile && runcState === undefined && !pidFile) {
      const intact =
        (await isMountPoint(join(this.bundleDir, 'rootfs'))) &&
        (!record.secretsMounted || (await isMountPoint(join(this.dir, 'secrets')))) &&
        (record.netnsPath === undefined || (await exists(record.netnsPath)));
      this.state = 'prepared';
      return intact;
    }
    this.adopted = true;
    this.state = 'running';
    if (runcState !== undefined && runcState.pid > 0 && runcState.status !== 'stopped') this.pid = runcState.pid;
    // The shim (or, were it killed, the container) holds the FIFOs' write ends: EOF comes when both are gone.
    this.openReaders();
    for (const r of this.readers) r.releaseKeeper();
    this.watchExit();
    if (this.pid !== undefined) {
      this.log.info({ pid: this.pid }, 'adopted a running container');
      this.startHealth(record);
      return true;
    }
    // It ended while no executor watched: drain what it wrote, then report its status.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited.promise, new Promise<void>((r) => (timer = setTimeout(r, ADOPT_DRAIN_MS)))]);
    clearTimeout(timer);
    return true;
  }

  /** Stops watching without touching the container (executor close). */
  async detach(): Promise<void> {
    this.detached = true;
    this.exitWatch?.close();
    await this.health?.stop();
    this.closeReaders();
  }

  // ------------------------------------------------------------------------------- waiting

  wait(): Promise<ExitStatus> {
    if (this.exit !== undefined) return Promise.resolve(this.exit);
    if (this.state === 'absent' || this.state === 'prepared') return Promise.reject(new TaskStateError(this.taskId, `cannot wait for a task that is ${this.state}; start it first`));
    if (this.state === 'removed') return Promise.reject(new TaskStateError(this.taskId, 'the task was removed'));
    return Promise.race([this.exited.promise, this.unhealthy.promise]);
  }

  // ------------------------------------------------------------------------------ stopping

  private async signal(sig: string, all: boolean): Promise<void> {
    try {
      await this.ex.runc.kill(this.taskId, sig, all);
    } catch (err) {
      // Already stopped (or gone): nothing to signal.
      if (err instanceof RuncCommandError && /not running|stopped|does not exist|process already finished/i.test(err.stderr)) return;
      throw new RuntimeError(this.taskId, `runc kill ${sig}`, err instanceof RuncCommandError ? err.stderr.trim() : errorText(err), { cause: err });
    }
  }

  private async exitedWithin(ms: number): Promise<boolean> {
    if (this.exit !== undefined) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    try {
      return await Promise.race([this.exited.promise.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  shutdown(): Promise<void> {
    return this.stop(false);
  }

  terminate(): Promise<void> {
    return this.stop(true);
  }

  private async stop(now: boolean): Promise<void> {
    await this.startSettled;
    if (this.state !== 'running' || this.record === undefined) return;
    if (!now) {
      await this.signal(this.record.stopSignal, false);
      if (await this.exitedWithin(this.record.stopGraceMs)) return;
      this.log.info({ graceMs: this.record.stopGraceMs }, 'stop grace period over: SIGKILL');
    }
    await this.signal('KILL', true);
    if (!(await this.exitedWithin(KILL_WAIT_MS))) throw new TaskTimeoutError(this.taskId, `the container was still running ${KILL_WAIT_MS} ms after SIGKILL`);
  }

  // -------------------------------------------------------------------------------- remove

  remove(options: { readonly removeLogs?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'removed') return;
      if (this.state === 'running') await this.stop(true);
      await this.health?.stop();
      this.exitWatch?.close();
      ackShim(this.dir);
      this.closeReaders();
      const record = this.record;
      const problems: string[] = [];
      const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          problems.push(`${what}: ${errorText(err)}`);
        }
      };
      await step('runc delete', () => this.ex.runc.delete(this.taskId, true));
      if (record?.secretsMounted === true) await step('unmount secrets', () => unmountIfMounted(join(this.dir, 'secrets')));
      await step('unmount root', async () => {
        if (this.rootfsMount !== undefined) await this.rootfsMount.unmount();
        // Adopted: the store holds no handle for a mount an earlier process made.
        await unmountIfMounted(join(this.bundleDir, 'rootfs'));
      });
      for (const m of await mountsUnder(this.dir)) await step(`unmount ${m}`, () => unmountIfMounted(m));
      if (record?.netnsName !== undefined) {
        const name = record.netnsName;
        await step('delete netns', () => deleteNetns(name));
      }
      if (record !== undefined) {
        await step('remove anonymous volumes', () => removeDirs(record.anonymousVolumes));
        await step('remove cgroup', async () => {
          const left = await removeCgroupTree(record.cgroupsPath, record.cgroupsPath);
          if (left.length > 0) throw new Error(`still in use: ${left.join(', ')}`);
        });
      }
      await step('remove task directory', () => rm(this.dir, { recursive: true, force: true }));
      if (options.removeLogs === true) await step('remove logs', () => rm(join(this.ex.logsDir, this.taskId), { recursive: true, force: true }));
      this.state = 'removed';
      this.ex.forget(this.taskId, this);
      if (problems.length > 0) throw new ExecutorError('ERR_TASK_HOST', this.taskId, `remove left things behind: ${problems.join('; ')}`);
    });
  }
}
