// shoald's worker side: the node's Agent (worker/agent) over the runc executor (worker/executor)
// with the daemon's image store (worker/image: `--registry-mirror`, `--insecure-registry`).
// Layout under the daemon's data root:
//   worker/certificates/   a worker node's identity (from the CA join flow with a worker token)
//   worker/state.json      the managers a worker joined through (it restarts from these)
//   agent/                 the agent's task database (agent/worker/tasks.db) and the executor
//                          (agent/executor, runc root agent/executor/runc)
//   images/                the image store
// A manager runs the same agent with its manager certificate, so its Node stays ready and it can
// run tasks. Stopping the daemon removes the containers (dockerd without live-restore does the
// same); the restarted agent reports the lost tasks and the orchestrators replace them.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

import type { Logger } from 'pino';

import { loadIdentity, saveIdentity, type NodeIdentity } from '../../../ca/identity.js';
import { joinCluster, renewNodeCertificate } from '../../../ca/join.js';
import { desiredFromSession, NodeCertificates, withTlsInfo } from '../../../ca/node-certificates.js';
import { WORKER_ROLE } from '../../../ca/roles.js';
import { Agent } from '../../../worker/agent/agent.js';
import { ImageGarbageCollector } from '../../../worker/executor/image-gc.js';
import { RuncExecutor } from '../../../worker/executor/runc-executor.js';
import { ImageStore } from '../../../worker/image/store.js';
import { LogPublisher } from '../../../worker/logs/publisher.js';
import { WorkerNetworks } from '../../../worker/network/worker-networks.js';
import type { NodeDescription } from '../../../manager/store/types.js';

export const WORKER_DIR = 'worker';
export const AGENT_DIR = 'agent';
const STATE = 'state.json';

export class WorkerJoinError extends Error {
  readonly code = 'ERR_WORKER_JOIN';
}

export interface NodeAgentOptions {
  /** The daemon's data root. */
  readonly dataRoot: string;
  readonly identity: NodeIdentity;
  /**
   * Where the certificate lives when this agent renews it itself (a worker: worker/certificates):
   * on schedule, on a role change and on a root rotation its dispatcher session reports. Absent on a
   * manager, whose Manager renews and hands each new identity to setIdentity().
   */
  readonly certificatesDir?: string;
  readonly managers: readonly string[];
  readonly hostname: string;
  readonly description: NodeDescription;
  readonly registryMirrors: readonly string[];
  readonly insecureRegistries: readonly string[];
  readonly logger: Logger;
}

/** Where the executor keeps runc's state for a daemon data root. */
export function runcRootOf(dataRoot: string): string {
  return path.join(dataRoot, AGENT_DIR, 'executor', 'runc');
}

export class NodeAgent {
  /** Overlay networks of this node's tasks (worker/network). */
  private network: WorkerNetworks | null = null;
  /** This node's certificate renewal, when the agent does it (a worker). */
  private certs: NodeCertificates | null = null;
  /** Removes images no task of this node holds (worker/executor/image-gc.ts). */
  private imageGc: ImageGarbageCollector | null = null;
  private description: NodeDescription = {};

  private constructor(
    public identity: NodeIdentity,
    private readonly agent: Agent,
    private readonly executor: RuncExecutor,
    private readonly logger: Logger,
    /** Serves `service logs` and `shoal exec` for this node's tasks (worker/logs). */
    private readonly logs: LogPublisher,
  ) {}

  get nodeId(): string {
    return this.identity.nodeId;
  }

  /** A new identity (a renewed certificate): the agent's next session, opened at once, uses and reports it. */
  setIdentity(identity: NodeIdentity): void {
    this.identity = identity;
    this.agent.setIdentity(identity, withTlsInfo(this.description, identity));
  }

  static async start(o: NodeAgentOptions): Promise<NodeAgent> {
    const agentDir = path.join(o.dataRoot, AGENT_DIR);
    await mkdir(agentDir, { recursive: true, mode: 0o700 });
    const images = await ImageStore.open({
      root: path.join(o.dataRoot, 'images'),
      registryMirrors: o.registryMirrors,
      insecureRegistries: o.insecureRegistries,
    });
    const tag = o.hostname.replace(/[^a-zA-Z0-9-]/g, '-').slice(0, 24);
    const executor = await RuncExecutor.open({
      dataRoot: path.join(agentDir, 'executor'),
      images,
      logger: o.logger.child({ component: 'executor' }),
      cgroupParent: `shoal-${tag}`,
      netnsPrefix: `shoal-${tag}`,
    });
    // Overlay networks: namespaces shoal-<tag>-… like the executor's (`lab down` sweeps them).
    const network = new WorkerNetworks({ hostTag: tag, nodeId: o.identity.nodeId, logger: o.logger.child({ component: 'network' }) });
    let started: Agent | null = null;
    let self: NodeAgent | null = null;
    const certs =
      o.certificatesDir === undefined
        ? null
        : new NodeCertificates({
            identity: o.identity,
            certificatesDir: o.certificatesDir,
            // At the manager the session is with (the leader), else the first one known.
            renew: (current) => renewNodeCertificate({ address: started?.manager ?? started?.knownManagers[0] ?? o.managers[0] ?? '', identity: current }),
            logger: o.logger.child({ component: 'certificates' }),
          });
    try {
      const agent = await Agent.start({
        ...(certs !== null ? { onSessionMessage: (msg) => certs.setDesired(desiredFromSession(msg)) } : {}),
        network,
        dataRoot: agentDir,
        identity: o.identity,
        managers: o.managers,
        executor,
        description: withTlsInfo(o.description, o.identity),
        logger: o.logger.child({ component: 'agent' }),
        backoffInitialMs: 100,
        backoffMaxMs: 2000,
      });
      const logs = new LogPublisher({
        nodeId: o.identity.nodeId,
        // Read per connection: after a renewal the publisher connects with the node's current identity.
        material: {
          get keyPem() {
            return (self?.identity ?? o.identity).keyPem;
          },
          get certChainPem() {
            return (self?.identity ?? o.identity).certChainPem;
          },
          get trustBundlePem() {
            return (self?.identity ?? o.identity).trustBundlePem;
          },
        },
        clusterId: o.identity.clusterId,
        manager: () => agent.manager,
        logsDir: executor.logsDir,
        runc: { root: executor.runc.root, binary: executor.runc.binary },
        tasks: () => agent.assignedTasks(),
        logger: o.logger,
      });
      logs.start();
      const node = new NodeAgent(o.identity, agent, executor, o.logger, logs);
      self = node;
      node.network = network;
      node.description = o.description;
      started = agent;
      node.certs = certs;
      node.imageGc = new ImageGarbageCollector({ images, inUse: () => executor.imagesInUse(), logger: o.logger.child({ component: 'image-gc' }) });
      node.imageGc.start();
      certs?.onChange((identity) => node.setIdentity(identity));
      certs?.start();
      return node;
    } catch (err) {
      await network.close().catch(() => undefined);
      await executor.close();
      throw err;
    }
  }

  /** Stops the agent and removes every container it ran (daemon stop, swarm leave). */
  async stop(): Promise<void> {
    await this.imageGc?.stop();
    await this.certs?.stop();
    this.logs.close();
    await this.agent.close();
    try {
      await this.executor.reconcile([]);
    } catch (err) {
      this.logger.warn({ err }, 'could not remove every container');
    }
    await this.network?.close().catch((err: unknown) => this.logger.warn({ err }, 'could not remove every overlay network'));
    await this.executor.close();
  }
}

/** A worker's join: the CA flow (root digest check, CSR, certificate), then the identity is kept. */
export async function joinAsWorker(dataRoot: string, remote: string, token: string): Promise<NodeIdentity> {
  const identity = await joinCluster({ address: remote, token });
  if (identity.role !== WORKER_ROLE) throw new WorkerJoinError(`expected a worker certificate, got role ${identity.role}`);
  const dir = path.join(dataRoot, WORKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await saveIdentity(path.join(dir, 'certificates'), identity);
  await writeFile(path.join(dir, STATE), JSON.stringify({ managers: [remote] }), { mode: 0o600 });
  return identity;
}

/** A worker's persisted identity and managers, or null when this node is not a worker. */
export async function loadWorker(dataRoot: string): Promise<{ identity: NodeIdentity; managers: string[] } | null> {
  const dir = path.join(dataRoot, WORKER_DIR);
  let state: { managers?: unknown };
  try {
    state = JSON.parse(await readFile(path.join(dir, STATE), 'utf8')) as { managers?: unknown };
  } catch {
    return null;
  }
  const managers = Array.isArray(state.managers) ? state.managers.filter((m): m is string => typeof m === 'string') : [];
  return { identity: await loadIdentity(path.join(dir, 'certificates')), managers };
}

/** Forgets the worker identity and the agent's database (after leave). */
export async function wipeWorker(dataRoot: string): Promise<void> {
  await rm(path.join(dataRoot, WORKER_DIR), { recursive: true, force: true });
  await rm(path.join(dataRoot, AGENT_DIR, 'worker'), { recursive: true, force: true });
}
