// The swarm plugin: shoald's manager role. It owns the node's Manager (manager/manager.ts) under
// <dataRoot>/swarm — reopened at start when that holds state, made by `POST /swarm/init` and
// `/swarm/join`, dropped by `/swarm/leave` — serves the Control gRPC service on the cluster port,
// and answers the Docker API's swarm endpoints (routes.ts) through the ControlApi, forwarding
// writes from a follower to the leader (backend.ts). `/info` and `/_ping` report its state.
import { access, rm } from 'node:fs/promises';
import path from 'node:path';

import type { Logger } from 'pino';

import { ControlApi } from '../../../manager/controlapi/control-api.js';
import { KeyManagerError } from '../../../manager/keymanager/errors.js';
import { Manager, STATE_FILE, type ServiceRegistration } from '../../../manager/manager.js';
import { INACTIVE_SWARM, type SwarmInfo } from '../swarm-status.js';
import type { DaemonContext, DaemonPlugin } from '../plugins.js';
import { ControlBackend } from './backend.js';
import { describeImplementation, localDescription, NODE_DESCRIPTION_SERVICE, recordDescription, sendDescription } from './describe.js';
import { mapSwarmError } from './errors.js';
import { registerSwarmRoutes } from './routes.js';
import { clusterInfo } from './shapes.js';
import { joinAsWorker, loadWorker, NodeAgent, WORKER_DIR, wipeWorker } from '../worker/node-agent.js';
import type { NodeIdentity } from '../../../ca/identity.js';

const DESCRIBE_EVERY_MS = 1000;

export class SwarmPlugin implements DaemonPlugin {
  readonly name = 'swarm';
  private ctxRef: DaemonContext | null = null;
  private log: Logger | null = null;
  private managerRef: Manager | null = null;
  private backendRef: ControlBackend | null = null;
  /** Set while init/join/leave runs: a second one is refused. */
  busy: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private describing = false;
  private restartError: string | null = null;
  /** The node's agent: a worker's, or the one a manager runs with its manager certificate. */
  private agentRef: NodeAgent | null = null;
  private agentStarting: Promise<void> | null = null;
  /** Set on a worker node (no Manager): the managers it knows. */
  private workerManagers: string[] | null = null;
  /** An autolocked manager reopened without its key: serves nothing until `unlock` (swarm unlock). */
  private lockedFlag = false;

  get ctx(): DaemonContext {
    if (this.ctxRef === null) throw new Error('swarm plugin not started');
    return this.ctxRef;
  }

  get logger(): Logger {
    return this.log!;
  }

  get manager(): Manager | null {
    return this.managerRef;
  }

  get backend(): ControlBackend | null {
    return this.backendRef;
  }

  /** This node's worker agent when it is a worker (not a manager). */
  get worker(): NodeAgent | null {
    return this.managerRef === null ? this.agentRef : null;
  }

  get inSwarm(): boolean {
    return this.managerRef !== null || this.workerManagers !== null || this.lockedFlag;
  }

  /** True while this node's manager is autolocked and waits for `swarm unlock`. */
  get locked(): boolean {
    return this.lockedFlag;
  }

  /**
   * `swarm unlock`: reopens the manager with the key. A wrong key throws the key manager's
   * InvalidUnlockKeyError and the node stays locked.
   */
  async unlock(unlockKey: string): Promise<void> {
    if (!this.lockedFlag) throw new Error('swarm is not locked');
    const m = await Manager.restart({ dataRoot: this.dataRoot, unlockKey, ...this.managerOptions() });
    this.lockedFlag = false;
    this.attach(m);
    this.logger.info({ nodeId: m.nodeId }, 'manager unlocked');
  }

  /** `swarm leave --force` on a locked manager: its state is forgotten unopened. */
  async forgetLocked(): Promise<void> {
    await rm(this.dataRoot, { recursive: true, force: true });
    this.lockedFlag = false;
  }

  get dataRoot(): string {
    return path.join(this.ctx.options.dataRoot, 'swarm');
  }

  async start(ctx: DaemonContext): Promise<void> {
    this.ctxRef = ctx;
    this.log = ctx.logger.child({ component: 'swarm' });
    ctx.api.addErrorMapper(mapSwarmError);
    ctx.setSwarmStatusSource({ swarmInfo: () => this.swarmInfo() });
    registerSwarmRoutes(ctx.api, this);
    if (await exists(path.join(this.dataRoot, STATE_FILE))) {
      this.logger.info({ dataRoot: this.dataRoot }, 'reopening the manager from its data root');
      try {
        this.attach(await Manager.restart({ dataRoot: this.dataRoot, ...this.managerOptions() }));
      } catch (err) {
        if (err instanceof KeyManagerError && err.code === 'ERR_KEYMANAGER_LOCKED') {
          // Autolock: nothing is served until `swarm unlock` gives the key (/info: locked).
          this.lockedFlag = true;
          this.logger.warn('the manager is locked (autolock): run swarm unlock with the unlock key');
          return;
        }
        // The daemon still serves (info, leave --force…); /info reports the error as dockerd does.
        this.restartError = `could not reopen the manager from ${this.dataRoot}: ${(err as Error).message}`;
        this.logger.error({ err }, this.restartError);
      }
    } else {
      try {
        const w = await loadWorker(this.ctx.options.dataRoot);
        if (w !== null) {
          this.logger.info({ nodeId: w.identity.nodeId }, 'restarting the worker agent from its identity');
          this.workerManagers = w.managers;
          await this.startAgent(w.identity, w.managers);
        }
      } catch (err) {
        this.restartError = `could not restart the worker agent: ${(err as Error).message}`;
        this.logger.error({ err }, this.restartError);
      }
    }
  }

  async stop(): Promise<void> {
    await this.stopAgent();
    const m = this.detach();
    if (m !== null) await m.close();
  }

  /** Starts this node's agent (worker or manager identity) over the runc executor. */
  async startAgent(identity: NodeIdentity, managers: readonly string[]): Promise<void> {
    const o = this.ctx.options;
    this.agentRef = await NodeAgent.start({
      dataRoot: o.dataRoot,
      identity,
      // A worker's agent renews its certificate itself; a manager's follows the Manager's (attach).
      ...(this.managerRef === null ? { certificatesDir: path.join(o.dataRoot, WORKER_DIR, 'certificates') } : {}),
      managers,
      hostname: o.hostname,
      description: localDescription(o.hostname),
      registryMirrors: o.registryMirrors,
      insecureRegistries: o.insecureRegistries,
      logger: this.logger,
    });
  }

  /** Stops the agent (its containers are removed). */
  async stopAgent(): Promise<void> {
    if (this.agentStarting !== null) await this.agentStarting.catch(() => undefined);
    const a = this.agentRef;
    this.agentRef = null;
    if (a !== null) await a.stop();
  }

  /** `swarm join` with a worker token: the CA join flow, the identity kept, the agent started. */
  async joinWorker(remote: string, token: string): Promise<string> {
    const dataRoot = this.ctx.options.dataRoot;
    const identity = await joinAsWorker(dataRoot, remote, token);
    try {
      await this.startAgent(identity, [remote]);
    } catch (err) {
      await wipeWorker(dataRoot);
      throw err;
    }
    this.workerManagers = [remote];
    this.logger.info({ nodeId: identity.nodeId, remote }, 'joined the swarm as a worker');
    return identity.nodeId;
  }

  /** A worker's `swarm leave`: the agent stops, its containers go, the identity is forgotten. */
  async leaveWorker(): Promise<void> {
    await this.stopAgent();
    await wipeWorker(this.ctx.options.dataRoot);
    this.workerManagers = null;
  }

  /** Options every Manager entry point gets: the services the cluster port serves, the logger. */
  managerOptions(): { services: (m: Manager) => readonly ServiceRegistration[]; logger: Logger } {
    return {
      logger: this.logger.child({ component: 'manager' }),
      // Control and Dispatcher come from the manager itself (manager/leader-services.ts).
      services: () => [
        { definition: NODE_DESCRIPTION_SERVICE, implementation: describeImplementation(() => this.managerRef) },
      ],
    };
  }

  /** Takes a running Manager as this node's. */
  attach(m: Manager): void {
    this.restartError = null;
    this.managerRef = m;
    m.onIdentityChange((identity) => this.agentRef?.setIdentity(identity));
    // The manager's own control API (with its quorum checks on demotion); a manager built without
    // leader services gets a plain one.
    const api = m.leaderServices?.control ?? new ControlApi({ store: m.store, update: (fn) => m.update(fn), logger: this.logger.child({ component: 'controlapi' }) });
    this.backendRef = new ControlBackend(m, api);
    this.timer = setInterval(() => void this.describeSelf(), DESCRIBE_EVERY_MS);
    void this.describeSelf();
    // The manager also runs an agent with its manager certificate: its Node stays ready and runs tasks.
    if (this.agentRef === null && this.agentStarting === null) {
      this.agentStarting = this.startAgent(m.identity, [m.addr])
        .catch((err: unknown) => this.logger.error({ err }, 'could not start the agent of this manager'))
        .finally(() => {
          this.agentStarting = null;
        });
    }
  }

  /** Forgets the Manager (after leave, or at stop); returns it. */
  detach(): Manager | null {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const m = this.managerRef;
    this.managerRef = null;
    this.backendRef = null;
    return m;
  }

  /** Makes sure this node's Node object carries its hostname, platform and engine version. */
  private async describeSelf(): Promise<void> {
    const m = this.managerRef;
    if (m === null || this.describing) return;
    this.describing = true;
    try {
      const want = localDescription(this.ctx.options.hostname);
      const node = m.store.get('node', m.nodeId);
      if (node === undefined || node.Description?.Hostname === want.Hostname) return;
      const s = m.status();
      if (s.role === 'leader') await recordDescription(m, m.nodeId, want);
      else if (s.leader !== null) {
        const addr = m.membership.addrOf(s.leader);
        if (addr !== null) await sendDescription(m, addr, want);
      }
    } catch (err) {
      this.logger.debug({ err }, 'could not record the node description yet');
    } finally {
      this.describing = false;
    }
  }

  swarmInfo(): SwarmInfo {
    const m = this.managerRef;
    const w = this.agentRef;
    if (m === null && w !== null && this.workerManagers !== null) {
      return {
        NodeID: w.nodeId,
        NodeAddr: '',
        LocalNodeState: 'active',
        ControlAvailable: false,
        Error: '',
        RemoteManagers: this.workerManagers.map((a) => ({ NodeID: '', Addr: a })),
      };
    }
    if (m === null) {
      if (this.lockedFlag) return { ...INACTIVE_SWARM, LocalNodeState: 'locked' };
      if (this.restartError !== null) return { ...INACTIVE_SWARM, LocalNodeState: 'error', Error: this.restartError };
      return this.busy === 'join' ? { ...INACTIVE_SWARM, LocalNodeState: 'pending' } : INACTIVE_SWARM;
    }
    let nodes;
    try {
      nodes = m.store.find('node');
    } catch {
      return INACTIVE_SWARM;
    }
    const managers = nodes.filter((n) => n.Spec.Role === 'manager' && n.ManagerStatus !== undefined);
    const cluster = this.backendRef?.api.listClusters()[0];
    return {
      NodeID: m.nodeId,
      NodeAddr: hostOf(m.addr),
      LocalNodeState: 'active',
      ControlAvailable: true,
      Error: '',
      RemoteManagers: managers.map((n) => ({ NodeID: n.ID, Addr: n.ManagerStatus?.Addr ?? '' })),
      Nodes: nodes.length,
      Managers: managers.length,
      ...(cluster !== undefined ? { Cluster: clusterInfo(cluster) } : {}),
    };
  }
}

export function hostOf(addr: string): string {
  const i = addr.lastIndexOf(':');
  return i < 0 ? addr : addr.slice(0, i);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
