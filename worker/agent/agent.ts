// The worker agent: one per node. It keeps a session with the leader's dispatcher over mutual TLS
// (its worker or manager certificate), holds the node's assignment set in LevelDB, runs one
// TaskRunner per assigned task over the Executor, and reports observed task states in batches.
//
//   Agent.start()  open <dataRoot>/worker/tasks.db → resume a TaskRunner per saved task → session loop
//   session loop   pick a manager (a follower's redirect first, else the next of the list)
//                  → Session stream: first message = session ID, managers, heartbeat period
//                    (or a follower's redirect: go to leader_addr at once)
//                  → Assignments stream: COMPLETE then INCREMENTAL (chunks joined on `more`)
//                  → Heartbeat every period; the reporter sends through this session
//                  any stream error, failed heartbeat or closed manager ends the session; the
//                  loop waits (exponential, bounded, jittered backoff; reset once a session has
//                  delivered its complete set) and tries the next manager. Task runners are never
//                  touched by a failover: containers keep running and statuses queue meanwhile.
import os from 'node:os';

import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import { decodeObjectJson, encodeJson } from '../../manager/dispatcher/wire.js';
import { taskStateRank } from '../../manager/dispatcher/task-transitions.js';
import type { Config, Node, NodeDescription, Secret, Task, TaskStatus } from '../../manager/store/types.js';
import {
  AssignmentsMessage_Type,
  AssignmentsRequest,
  DispatcherClient,
  DispatcherService,
  type SessionMessage,
} from '../../proto/gen/shoal/dispatcher.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, type TlsMaterial } from '../../proto/grpc/tls.js';
import type { DependencyGetter, Executor } from '../executor/types.js';
import type { NetworkPeers } from '../../manager/dispatcher/network-peers.js';
import type { TaskNetworks } from '../network/worker-networks.js';
import { AgentDb } from './agent-db.js';
import { readAssignments, type ReadAssignments, type ReadChange } from './assignment-reader.js';
import { AgentError } from './errors.js';
import { NodeChannel } from './node-channel.js';
import { StatusReporter } from './reporter.js';
import { TaskRunner, type TaskRunnerDeps } from './task-runner.js';

export interface AgentIdentity extends TlsMaterial {
  readonly nodeId: string;
  readonly clusterId: string;
}

export interface AgentOptions {
  /** The node's data root; the agent keeps <dataRoot>/worker/tasks.db. */
  readonly dataRoot: string;
  readonly identity: AgentIdentity;
  /** Managers to try first (host:port), e.g. the join address; the session adds the cluster's list. */
  readonly managers: readonly string[];
  readonly executor: Executor;
  /** What the node says about itself (default: this host's name, platform, CPUs, memory). */
  readonly description?: NodeDescription;
  readonly logger?: Logger;
  /** Reconnect backoff: first wait, doubled per failure up to the maximum (± 20 % jitter). */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Status reports wait at most this long to be batched (default 50 ms). */
  readonly statusBatchMs?: number;
  /**
   * How long a task's ACCEPTED, PREPARING or STARTING status waits for the next one before it is
   * reported anyway (default 500 ms; 0: every step is reported): a task that starts within it is
   * reported once.
   */
  readonly statusTransientHoldMs?: number;
  /** Most status updates per UpdateTaskStatus call. */
  readonly statusMaxBatch?: number;
  /** Deadline of unary calls and of the session's first message. */
  readonly callTimeoutMs?: number;
  /** Hears every session message (the Node object, the cluster's root CAs): certificate renewal follows them. */
  readonly onSessionMessage?: (message: SessionMessage) => void;
  /** Overlay networks of tasks (worker/network); absent: tasks get loopback-only namespaces. */
  readonly network?: TaskNetworks;
  /**
   * Heartbeats and status batches over the session's NodeStream (default true); false: the unary
   * Heartbeat and UpdateTaskStatus calls (also used whenever a manager has no NodeStream).
   */
  readonly nodeStream?: boolean;
}

const DEFAULTS = {
  backoffInitialMs: 100,
  backoffMaxMs: 8000,
  statusBatchMs: 50,
  statusTransientHoldMs: 500,
  statusMaxBatch: 500,
  callTimeoutMs: 10_000,
};

/**
 * The session's channel: no grpc-js retry layer (its per-message buffering of every stream write;
 * a failed call ends the session and the session loop reconnects, which is the agent's own retry)
 * and no channelz bookkeeping (per-message counters and timestamps nobody reads here): both were
 * work on every heartbeat and status batch of every agent.
 */
const AGENT_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.enable_retries': 0, 'grpc.enable_channelz': 0 };

/** Consecutive follower redirects followed without waiting, before backoff applies again. */
const MAX_FREE_REDIRECTS = 3;
const JITTER = 0.2;

export function defaultNodeDescription(): NodeDescription {
  const arch = os.arch();
  return {
    Hostname: os.hostname(),
    Platform: { OS: os.platform(), Architecture: arch === 'x64' ? 'x86_64' : arch === 'arm64' ? 'aarch64' : arch },
    Resources: { NanoCPUs: os.availableParallelism() * 1e9, MemoryBytes: os.totalmem() },
    Engine: { EngineVersion: 'shoal' },
  };
}

function base64Bytes(data: string | undefined): Uint8Array {
  return Buffer.from(data ?? '', 'base64');
}

/**
 * A task's JSON from an assignment message, parsed where it lies in the message's buffer (no copy
 * of the bytes first); it must be an object with a string `ID`.
 */
function parseObjectJson<T extends Task>(what: string, bytes: Buffer): T {
  const o: unknown = JSON.parse(bytes.toString('utf8'));
  if (typeof o !== 'object' || o === null || typeof (o as { ID?: unknown }).ID !== 'string') {
    throw new TypeError(`${what}: expected a JSON object with a string ID`);
  }
  return o as T;
}

export interface AgentCounters {
  readonly heartbeats: number;
  readonly statusCalls: number;
  readonly statusItems: number;
  readonly assignmentMessages: number;
  /** Changes (tasks, secrets, configs, network views) those messages carried. */
  readonly assignmentItems: number;
  readonly dbBatches: number;
  readonly dbOps: number;
}

interface ActiveSession {
  readonly addr: string;
  readonly client: DispatcherClient;
  readonly sessionId: string;
  /** Heartbeats and status batches of this session. */
  readonly channel: NodeChannel;
}

/** Ends a session attempt; `redirect` names the leader a follower pointed at. */
class SessionEnded extends Error {
  constructor(message: string, readonly redirect: string | null = null, readonly resetSession = false) {
    super(message);
  }
}

export class Agent {
  private readonly log: Logger;
  private opts: typeof DEFAULTS & AgentOptions;
  private readonly runners = new Map<string, TaskRunner>();
  private readonly tasks = new Map<string, Task>();
  private readonly secrets = new Map<string, Secret>();
  private readonly configs = new Map<string, Config>();
  private readonly reporter: StatusReporter;
  private readonly dependencies: DependencyGetter;
  /** What every TaskRunner of this agent is handed (one object for all of them). */
  private readonly runnerDeps: TaskRunnerDeps;
  private managerAddrs: string[];
  private nextManager = 0;
  private redirectTo: string | null = null;
  private sessionId = '';
  private active: ActiveSession | null = null;
  private closed = false;
  private loop: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private endCurrent: ((err: SessionEnded) => void) | null = null;
  private reconciled = false;
  /** Sessions that delivered a complete assignment set, for tests and status. */
  sessionsEstablished = 0;
  /** Calls and items sent, assignment messages applied (for status and the load tool). */
  private readonly sent = { heartbeats: 0, statusCalls: 0, statusItems: 0, assignmentMessages: 0, assignmentItems: 0 };

  private constructor(
    opts: AgentOptions,
    private readonly db: AgentDb,
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'agent', nodeId: opts.identity.nodeId });
    this.managerAddrs = [...new Set(opts.managers)];
    this.reporter = new StatusReporter({
      batchMs: this.opts.statusBatchMs,
      maxBatch: this.opts.statusMaxBatch,
      transientHoldMs: this.opts.statusTransientHoldMs,
      logger: this.log,
    });
    this.dependencies = {
      secret: (id) => {
        const s = this.secrets.get(id);
        return s === undefined ? undefined : base64Bytes(s.Spec.Data);
      },
      config: (id) => {
        const c = this.configs.get(id);
        return c === undefined ? undefined : base64Bytes(c.Spec.Data);
      },
    };
    this.runnerDeps = {
      executor: this.opts.executor,
      dependencies: this.dependencies,
      logger: this.log,
      ...(this.opts.network !== undefined ? { network: this.opts.network } : {}),
      report: (taskId, s) => {
        this.db.writeStatus(taskId, s);
        this.reporter.report(taskId, s);
      },
    };
  }

  /** Opens the local database, resumes saved tasks and starts the session loop. */
  static async start(opts: AgentOptions): Promise<Agent> {
    const db = await AgentDb.open(opts.dataRoot);
    let agent: Agent;
    try {
      const state = await db.load();
      const managers = [...new Set([...opts.managers, ...state.managers])];
      if (managers.length === 0) throw new AgentError('ERR_AGENT_NO_MANAGERS', 'agent: no manager address is known; give at least one (the join address)');
      agent = new Agent({ ...opts, managers }, db);
      for (const s of state.secrets.values()) agent.secrets.set(s.ID, s);
      for (const c of state.configs.values()) agent.configs.set(c.ID, c);
      for (const t of state.tasks.values()) agent.addRunner(t, state.statuses.get(t.ID) ?? t.Status, undefined);
    } catch (err) {
      await db.close();
      throw err;
    }
    agent.log.info({ tasks: agent.runners.size, managers: agent.managerAddrs }, 'agent: started');
    agent.loop = agent.runSessions();
    return agent;
  }

  get nodeId(): string {
    return this.opts.identity.nodeId;
  }

  /** The manager this agent has a session with now, or null. */
  get manager(): string | null {
    return this.active?.addr ?? null;
  }

  get knownManagers(): readonly string[] {
    return this.managerAddrs;
  }

  /** The task's last observed status on this node. */
  taskStatus(taskId: string): TaskStatus | undefined {
    return this.runners.get(taskId)?.status;
  }

  /** What this agent sent and wrote so far: heartbeats, status calls and items, assignment messages, LevelDB batches and ops. */
  get counters(): AgentCounters {
    return { ...this.sent, dbBatches: this.db.counters.batches, dbOps: this.db.counters.ops };
  }

  taskIds(): string[] {
    return [...this.runners.keys()];
  }

  /** The tasks assigned to this node now (worker/logs matches log subscriptions of services with them). */
  assignedTasks(): readonly Task[] {
    return [...this.tasks.values()];
  }

  /**
   * A renewed certificate or new trust bundle (and the description reporting it): the current session
   * ends and the next one, opened at once, uses them.
   */
  setIdentity(identity: AgentIdentity, description?: NodeDescription): void {
    this.opts = { ...this.opts, identity, ...(description !== undefined ? { description } : {}) };
    this.reconnect();
  }

  /** Ends the current session and tries the next manager now (tests, operator action). */
  reconnect(): void {
    this.endCurrent?.(new SessionEnded('reconnect requested'));
  }

  /**
   * Stops the agent: ends the session, stops driving tasks (their containers keep running; the next
   * agent on this data root resumes them), writes what is queued and closes the database.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endCurrent?.(new SessionEnded('agent closing'));
    this.wake?.();
    this.reporter.close();
    for (const r of this.runners.values()) r.close();
    await this.loop;
    await this.db.close();
  }

  // ---------------------------------------------------------------------------- tasks

  /** `json`: the task's JSON as received, saved as is (absent: resumed from the database, nothing to save). */
  private addRunner(task: Task, status: TaskStatus, json: Uint8Array | undefined): TaskRunner {
    this.tasks.set(task.ID, task);
    const runner = new TaskRunner(task, status, this.runnerDeps);
    this.runners.set(task.ID, runner);
    if (json !== undefined) this.db.writeOne(this.db.putTask(task, json));
    else runner.restoreNetwork();
    runner.kick();
    return runner;
  }

  private upsertTask(task: Task, json: Uint8Array): void {
    const runner = this.runners.get(task.ID);
    if (runner === undefined) {
      this.addRunner(task, task.Status, json);
      return;
    }
    this.tasks.set(task.ID, task);
    this.db.writeOne(this.db.putTask(task, json));
    // The manager's copy may be behind what we observed (reports in flight) or ahead of a status
    // this node lost; report ours again whenever the manager does not have it yet.
    const ours = runner.status;
    if (taskStateRank(ours.State) > taskStateRank(task.Status.State) || (ours.State === task.Status.State && ours.Message !== task.Status.Message)) {
      this.reporter.report(task.ID, ours);
    }
    runner.update(task);
  }

  private removeTask(taskId: string): void {
    const runner = this.runners.get(taskId);
    this.runners.delete(taskId);
    this.tasks.delete(taskId);
    this.reporter.forget(taskId);
    this.db.write(this.db.delTask(taskId));
    if (runner !== undefined) void runner.remove();
  }

  private applyAssignments(type: AssignmentsMessage_Type, changes: readonly ReadChange[]): void {
    const seenTasks = new Set<string>();
    const seenSecrets = new Set<string>();
    const seenConfigs = new Set<string>();
    const seenNetworks: string[] = [];
    for (const c of changes) {
      const remove = c.remove;
      switch (c.kind) {
        case 'taskJson': {
          const t = parseObjectJson<Task>('task_json', c.json);
          if (remove) this.removeTask(t.ID);
          else {
            seenTasks.add(t.ID);
            this.upsertTask(t, c.json);
          }
          break;
        }
        case 'secretJson': {
          const s = decodeObjectJson<Secret>('secret_json', c.json);
          if (remove) {
            this.secrets.delete(s.ID);
            this.db.write([this.db.delSecret(s.ID)]);
          } else {
            seenSecrets.add(s.ID);
            this.secrets.set(s.ID, s);
            this.db.write([this.db.putSecret(s)]);
          }
          break;
        }
        case 'configJson': {
          const cf = decodeObjectJson<Config>('config_json', c.json);
          if (remove) {
            this.configs.delete(cf.ID);
            this.db.write([this.db.delConfig(cf.ID)]);
          } else {
            seenConfigs.add(cf.ID);
            this.configs.set(cf.ID, cf);
            this.db.write([this.db.putConfig(cf)]);
          }
          break;
        }
        case 'networkJson': {
          const v = JSON.parse(c.json.toString('utf8')) as NetworkPeers;
          if (typeof v.ID !== 'string') throw new TypeError('network_json: expected a JSON object with a string ID');
          if (remove) this.opts.network?.removeView(v.ID);
          else {
            seenNetworks.push(v.ID);
            this.opts.network?.setView(v);
          }
          break;
        }
        default:
          break;
      }
    }
    if (type !== AssignmentsMessage_Type.TYPE_COMPLETE) return;
    this.opts.network?.completeSet(seenNetworks, [...seenTasks]);
    // A complete set replaces ours: whatever it does not list is no longer assigned here.
    for (const id of [...this.runners.keys()]) if (!seenTasks.has(id)) this.removeTask(id);
    for (const id of [...this.secrets.keys()]) {
      if (seenSecrets.has(id)) continue;
      this.secrets.delete(id);
      this.db.write([this.db.delSecret(id)]);
    }
    for (const id of [...this.configs.keys()]) {
      if (seenConfigs.has(id)) continue;
      this.configs.delete(id);
      this.db.write([this.db.delConfig(id)]);
    }
    if (!this.reconciled) {
      // Once per process: containers the executor holds for tasks no longer assigned are removed.
      this.reconciled = true;
      this.opts.executor.reconcile(this.runners.keys()).then(
        (r) => {
          if (r.removed.length > 0) this.log.info({ removed: r.removed }, 'agent: removed containers of tasks no longer assigned');
        },
        (err: unknown) => this.log.warn({ err }, 'agent: executor reconcile failed'),
      );
    }
  }

  // ---------------------------------------------------------------------------- sessions

  private setManagers(msg: SessionMessage): void {
    const addrs = msg.managers.map((m) => m.addr).filter((a) => a !== '');
    if (addrs.length === 0) return;
    const merged = [...new Set(addrs)];
    if (JSON.stringify(merged) === JSON.stringify(this.managerAddrs)) return;
    this.managerAddrs = merged;
    this.db.write([this.db.putManagers(merged)]);
  }

  private pickManager(): string {
    if (this.redirectTo !== null) {
      const r = this.redirectTo;
      this.redirectTo = null;
      return r;
    }
    const addr = this.managerAddrs[this.nextManager % this.managerAddrs.length]!;
    this.nextManager = (this.nextManager + 1) % this.managerAddrs.length;
    return addr;
  }

  private async runSessions(): Promise<void> {
    let failures = 0;
    let freeRedirects = 0;
    // Runs until close(); every iteration is one session attempt followed by a bounded wait.
    while (!this.closed) {
      const addr = this.pickManager();
      const established = this.sessionsEstablished;
      let redirected = false;
      try {
        await this.runSession(addr);
      } catch (err) {
        if (err instanceof SessionEnded) {
          if (err.resetSession) this.sessionId = '';
          if (err.redirect !== null) {
            this.redirectTo = err.redirect;
            redirected = true;
          }
        }
        if (!this.closed) this.log.info({ manager: addr, reason: (err as Error).message }, 'agent: session ended');
      }
      if (this.closed) break;
      if (this.sessionsEstablished > established) failures = 0;
      if (redirected && freeRedirects < MAX_FREE_REDIRECTS) {
        freeRedirects++;
        continue;
      }
      freeRedirects = 0;
      const baseMs = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.min(failures, 30));
      failures++;
      const waitMs = baseMs * (1 - JITTER + Math.random() * 2 * JITTER);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** One session with one manager; resolves never, rejects when it ends (with SessionEnded when understood). */
  private async runSession(addr: string): Promise<void> {
    const client = new DispatcherClient(addr, clusterChannelCredentials(this.opts.identity, this.opts.identity.clusterId), {
      ...CLUSTER_CHANNEL_OPTIONS,
      ...AGENT_CHANNEL_OPTIONS,
    });
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    const heartbeat: { current: NodeJS.Timeout | null } = { current: null };
    const channel: { current: NodeChannel | null } = { current: null };
    try {
      await new Promise<void>((_resolve, reject) => {
        let finished = false;
        const fail = (err: Error): void => {
          if (finished) return;
          finished = true;
          reject(err);
        };
        this.endCurrent = fail;
        if (this.closed) {
          fail(new SessionEnded('agent closing'));
          return;
        }
        const description = this.opts.description ?? defaultNodeDescription();
        const session = client.session({ sessionId: this.sessionId, descriptionJson: encodeJson(description) });
        calls.push(session);
        const firstTimer = setTimeout(() => fail(new SessionEnded(`manager ${addr} did not open the session within ${this.opts.callTimeoutMs} ms`)), this.opts.callTimeoutMs);
        let opened = false;
        session.on('data', (msg: SessionMessage) => {
          this.setManagers(msg);
          this.opts.onSessionMessage?.(msg);
          if (msg.nodeJson.byteLength > 0 && this.opts.network !== undefined) {
            // The address managers see this node at is where other nodes' VXLAN tunnels come to.
            const addr = (JSON.parse(Buffer.from(msg.nodeJson).toString('utf8')) as Node).Status?.Addr;
            if (addr !== undefined) this.opts.network.setLocalAddress(addr);
          }
          if (msg.leaderAddr !== '' || msg.sessionId === '') {
            clearTimeout(firstTimer);
            fail(new SessionEnded(`manager ${addr} is not the leader`, msg.leaderAddr !== '' && msg.leaderAddr !== addr ? msg.leaderAddr : null));
            return;
          }
          if (opened) return; // later messages: manager list (handled above) and node changes
          opened = true;
          clearTimeout(firstTimer);
          if (msg.sessionId !== this.sessionId) this.log.info({ manager: addr, sessionId: msg.sessionId }, 'agent: session opened');
          this.sessionId = msg.sessionId;
          const nodeChannel = new NodeChannel(
            client,
            msg.sessionId,
            this.opts.callTimeoutMs,
            (err) => fail(new SessionEnded(`node stream: ${err.details || err.message}`, null, err.code === grpc.status.NOT_FOUND)),
            this.opts.nodeStream !== false,
          );
          channel.current = nodeChannel;
          const active: ActiveSession = { addr, client, sessionId: msg.sessionId, channel: nodeChannel };
          this.openAssignments(active, calls, fail);
          this.startHeartbeat(active, heartbeat, fail);
        });
        session.on('error', (err: grpc.ServiceError) => {
          clearTimeout(firstTimer);
          fail(new SessionEnded(`session stream: ${err.details || err.message}`, null, err.code === grpc.status.NOT_FOUND));
        });
        session.on('end', () => {
          clearTimeout(firstTimer);
          fail(new SessionEnded('session stream ended'));
        });
      });
    } finally {
      this.endCurrent = null;
      if (heartbeat.current !== null) clearTimeout(heartbeat.current);
      channel.current?.close();
      if (this.active?.client === client) {
        this.active = null;
        this.reporter.setSender(null);
      }
      for (const c of calls) c.cancel();
      client.close();
    }
  }

  private openAssignments(active: ActiveSession, calls: grpc.ClientReadableStream<unknown>[], fail: (err: Error) => void): void {
    // Read by hand (assignment-reader.ts): per change only its kind, action and JSON bytes.
    const stream = active.client.makeServerStreamRequest<AssignmentsRequest, ReadAssignments>(
      DispatcherService.assignments.path,
      DispatcherService.assignments.requestSerialize,
      readAssignments,
      { sessionId: active.sessionId },
    );
    calls.push(stream);
    let pending: ReadChange[] | null = null;
    let pendingType: AssignmentsMessage_Type | null = null;
    stream.on('data', (msg: ReadAssignments) => {
      pendingType ??= msg.type;
      if (msg.more) {
        pending = pending === null ? msg.changes : pending.concat(msg.changes);
        return;
      }
      const type = pendingType;
      const changes = pending === null ? msg.changes : pending.concat(msg.changes);
      pending = null;
      pendingType = null;
      this.sent.assignmentMessages++;
      this.sent.assignmentItems += changes.length;
      try {
        this.applyAssignments(type, changes);
      } catch (err) {
        fail(new SessionEnded(`bad assignments message: ${(err as Error).message}`));
        return;
      }
      if (type === AssignmentsMessage_Type.TYPE_COMPLETE && this.active?.client !== active.client) {
        // The session is usable from here on: statuses flow, the backoff resets.
        this.active = active;
        this.sessionsEstablished++;
        this.reporter.setSender((updates) => this.sendStatuses(active, updates));
      }
    });
    stream.on('error', (err: grpc.ServiceError) => fail(new SessionEnded(`assignments stream: ${err.details || err.message}`, null, err.code === grpc.status.NOT_FOUND)));
    stream.on('end', () => fail(new SessionEnded('assignments stream ended')));
  }

  /** Heartbeats until the session ends; `timer` holds the pending one so that the session can cancel it. */
  private startHeartbeat(active: ActiveSession, timer: { current: NodeJS.Timeout | null }, fail: (err: Error) => void): void {
    const beat = (): void => {
      timer.current = null;
      this.sent.heartbeats++;
      active.channel.heartbeat().then(
        (res) => {
          if (this.endCurrent !== fail) return;
          timer.current = setTimeout(beat, Math.max(1, res.periodMs));
        },
        (err: { readonly code?: number; readonly details?: string; readonly message: string }) =>
          fail(new SessionEnded(`heartbeat: ${err.details || err.message}`, null, err.code === grpc.status.NOT_FOUND)),
      );
    };
    // The first heartbeat goes out at once: it proves the session and fetches the jittered period.
    beat();
  }

  private async sendStatuses(
    active: ActiveSession,
    updates: readonly { readonly taskId: string; readonly status: TaskStatus }[],
  ): Promise<readonly { readonly taskId: string; readonly reason: string }[]> {
    this.sent.statusCalls++;
    this.sent.statusItems += updates.length;
    const res = await active.channel.updateTaskStatus(updates);
    return res.refused;
  }
}
