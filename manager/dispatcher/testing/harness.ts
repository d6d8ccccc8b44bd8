// Managers with dispatchers for tests and benchmarks: a StoreCluster (real Raft, LevelDB, loopback
// TCP), a cluster CA, and on chosen members a cluster gRPC server (mTLS, per-call authorization)
// with the dispatcher mounted through registerDispatcher — as the manager runtime mounts it.
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import { ClusterCA } from '../../../ca/cluster-ca.js';
import { newNodeId } from '../../../ca/ids.js';
import type { NodeIdentity } from '../../../ca/identity.js';
import { InMemoryNodeRegistry } from '../../../ca/node-registry.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../../../ca/roles.js';
import { DispatcherClient } from '../../../proto/gen/shoal/dispatcher.js';
import { createClusterServer, type ClusterServer } from '../../../proto/grpc/server.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials } from '../../../proto/grpc/tls.js';
import { newId } from '../../store/ids.js';
import type { MemoryStore } from '../../store/memory-store.js';
import { StoreCluster, waitFor } from '../../store/testing/cluster.js';
import type { Task, TaskState } from '../../store/types.js';
import { registerDispatcher, type Dispatcher, type DispatcherConfig, type ManagerPeer } from '../dispatcher.js';

export { waitFor };

/** A task of no service on `nodeId`, in `state`, wanted running (with `extra` fields), as stored. */
export async function createNodeTask(store: MemoryStore, nodeId: string, state: TaskState, extra: Partial<Task> = {}): Promise<Task> {
  const { result } = await store.update((tx) =>
    tx.create('task', {
      ID: newId(),
      Spec: { ContainerSpec: { Image: 'busybox' } },
      ServiceID: '',
      Slot: 1,
      NodeID: nodeId,
      Status: { Timestamp: new Date().toISOString(), State: state, Message: state },
      DesiredState: 'running',
      ...extra,
    }),
  );
  return store.get('task', result.ID)!;
}

export interface DispatchManager {
  /** The StoreCluster member ID. */
  readonly memberId: number;
  readonly identity: NodeIdentity;
  server: ClusterServer | null;
  dispatcher: Dispatcher | null;
  addr: string;
}

export interface DispatchClusterOptions {
  /** Store members (1 or 3). */
  readonly size: number;
  /** Members that run a cluster server with a dispatcher (default: all). */
  readonly dispatchersOn?: readonly number[];
  readonly config?: Partial<DispatcherConfig>;
  readonly logger?: Logger;
}

export class DispatchCluster {
  readonly managers = new Map<number, DispatchManager>();
  readonly registry = new InMemoryNodeRegistry();
  private readonly logger: Logger;

  private constructor(
    readonly stores: StoreCluster,
    readonly ca: ClusterCA,
    private readonly opts: DispatchClusterOptions,
  ) {
    this.logger = opts.logger ?? pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
  }

  static async start(opts: DispatchClusterOptions): Promise<DispatchCluster> {
    const stores = await StoreCluster.start({ size: opts.size });
    let c: DispatchCluster | undefined;
    try {
      const ca = await ClusterCA.create({ nowMs: Date.now() });
      c = new DispatchCluster(stores, ca, opts);
      for (const id of opts.dispatchersOn ?? stores.ids) {
        const identity = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
        c.registry.addNode(identity.nodeId, MANAGER_ROLE, identity.certChainPem);
        c.managers.set(id, { memberId: id, identity, server: null, dispatcher: null, addr: '' });
        await c.startDispatcher(id);
      }
      await stores.waitLeader();
      return c;
    } catch (err) {
      if (c !== undefined) await c.close();
      else await stores.close();
      throw err;
    }
  }

  get clusterId(): string {
    return this.ca.clusterId;
  }

  manager(memberId: number): DispatchManager {
    const m = this.managers.get(memberId);
    if (m === undefined) throw new Error(`no dispatcher on member ${memberId}`);
    return m;
  }

  /** Managers whose dispatcher runs, as workers reach them. */
  peers(): ManagerPeer[] {
    return [...this.managers.values()].filter((m) => m.dispatcher !== null).map((m) => ({ nodeId: m.identity.nodeId, addr: m.addr }));
  }

  /** The member that leads now (waits for one). */
  async leaderId(): Promise<number> {
    const rs = await this.stores.waitLeader();
    return Number(rs.node.id);
  }

  async startDispatcher(memberId: number): Promise<DispatchManager> {
    const m = this.manager(memberId);
    const server = createClusterServer({ material: m.identity, clusterId: this.ca.clusterId, removed: this.registry, logger: this.logger });
    const dispatcher = registerDispatcher(server.server, {
      store: this.stores.rs(memberId).store,
      leadership: {
        isLeader: () => this.stores.member(memberId).rs?.isLeader ?? false,
        leader: () => {
          const leader = this.stores.running().find((rs) => rs.isLeader);
          if (leader === undefined) return null;
          const lm = this.managers.get(Number(leader.node.id));
          return lm === undefined || lm.dispatcher === null ? null : { nodeId: lm.identity.nodeId, addr: lm.addr };
        },
      },
      managers: () => this.peers(),
      rootCaPem: () => this.ca.rootCertificates().rootPem,
      ...(this.opts.config !== undefined ? { config: this.opts.config } : {}),
      logger: this.logger.child({ component: 'dispatcher', member: memberId }),
    });
    const port = await server.listen(m.addr === '' ? '127.0.0.1:0' : m.addr);
    m.server = server;
    m.dispatcher = dispatcher;
    m.addr = `127.0.0.1:${port}`;
    return m;
  }

  /** Stops the member's dispatcher and closes its server (its store member keeps running). */
  async stopDispatcher(memberId: number): Promise<void> {
    const m = this.manager(memberId);
    m.dispatcher?.stop();
    m.dispatcher = null;
    const server = m.server;
    m.server = null;
    if (server !== null) {
      // Streams stay open until cancelled: force them closed at once.
      server.server.forceShutdown();
      await server.close(100);
    }
  }

  /** A worker certificate for a new node of this cluster. */
  async workerIdentity(): Promise<NodeIdentity> {
    const identity = await this.ca.issueLocalIdentity(newNodeId(), WORKER_ROLE, Date.now());
    this.registry.addNode(identity.nodeId, WORKER_ROLE, identity.certChainPem);
    return identity;
  }

  /** A raw Dispatcher client with a node's certificate (for tests that act as a node). */
  client(addr: string, identity: NodeIdentity): DispatcherClient {
    return new DispatcherClient(addr, clusterChannelCredentials(identity, this.ca.clusterId), { ...CLUSTER_CHANNEL_OPTIONS });
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.managers.keys()].map((id) => this.stopDispatcher(id)));
    await this.stores.close();
  }
}

export type { grpc };
