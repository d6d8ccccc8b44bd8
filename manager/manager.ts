// The manager runtime: one swarm manager in one process.
//
// Owns the node's identity (<dataRoot>/certificates, ca/identity.ts), the cluster port (one gRPC
// server with mutual TLS and per-call authorization: CA, Raft, RaftMembership, plus services
// registered through `services` — the seam for Control and Dispatcher), the Raft node
// (DurableLog in <dataRoot>/raft sealed under the DEK from a DekSource), the replicated store,
// the CA server (its ClusterCA rebuilt from the store's Cluster object), and the membership
// loop (manager/membership). Entry points are the swarm commands:
//
//   Manager.init       swarm init                 new root CA, own certificate, Raft bootstrapped
//                                                 with itself, Cluster + Node objects in the store
//   Manager.join       swarm join --token (mgr)   CA join flow → certificate → RaftMembership.Join
//                                                 on the leader → learner → voter once caught up
//   Manager.restart    daemon restart             reopen from <dataRoot>
//   Manager.forceNewCluster  swarm init --force-new-cluster
//   m.leave / m.demote / m.remove                 refuse when quorum would be lost unless forced
import { mkdir, readFile, rm, writeFile, rename, access } from 'node:fs/promises';
import path from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import { caServiceImplementation } from '../ca/ca-server.js';
import { ClusterCA } from '../ca/cluster-ca.js';
import type { CertExpiryOptions } from '../ca/expiry.js';
import { KEY_FILE, loadIdentity, saveIdentity, type NodeIdentity } from '../ca/identity.js';
import { newNodeId } from '../ca/ids.js';
import { joinCluster } from '../ca/join.js';
import { MANAGER_ROLE } from '../ca/roles.js';
import { CAService, type CAServer } from '../proto/gen/shoal/ca.js';
import { RaftMembershipService, RaftService, type JoinRequest, type JoinResponse, type RaftMembershipServer, type RaftServer } from '../proto/gen/shoal/raft.js';
import { createClusterServer, type ClusterServer } from '../proto/grpc/server.js';
import { ProposalRejectedError, type RaftNode } from '../raft/node.js';
import { GrpcTransport } from '../raft/transport/grpc.js';
import type { DekSource, KeyRuntime } from './dek.js';
import { KeyManagerDekSource } from './keymanager/key-manager.js';
import { followRaftSettings } from './membership/raft-settings.js';
import { ManagerError, NoLeaderError, NotLeaderError, managerErrorFromGrpc } from './errors.js';
import { identitySaver, ManagerCertificates, tlsInfoOfCA, type ManagerCertificatesOptions } from './certificates.js';
import type { IdentityChange } from '../ca/node-certificates.js';
import { clusterOf, StoreNodeRegistry, type ManagedCluster } from './membership/cluster-state.js';
import { initialAllocation } from './allocator/init.js';
import { LeaderServices, methodPaths, type LeaderServicesOptions } from './leader-services.js';
import { forceNewCluster } from './membership/force-new-cluster.js';
import { Membership, upsertManagerNode, type MemberInfo, type RemovalAction } from './membership/membership.js';
import { callMembership, LeaderRouter, leaveMetadata, raftMembershipService, resolveAddressHandler } from './membership/service.js';
import { ReplicatedStore, type MemoryStore, type Tx, type UpdateResult } from './store/index.js';

export const STATE_FILE = 'manager.json';
export const RAFT_DIR = 'raft';
export const CERTIFICATES_DIR = 'certificates';
export const DEFAULT_LISTEN_ADDR = '0.0.0.0:2377';

export interface ManagerTuning {
  /** Raft tick (default 100 ms) and election/heartbeat ticks (10/1). */
  readonly tickMs?: number;
  readonly electionTick?: number;
  readonly heartbeatTick?: number;
  readonly snapshotIntervalEntries?: number;
  readonly snapshotKeepEntries?: number;
  readonly proposeTimeoutMs?: number;
  /** Snapshot chunk size on the Raft transport (default 1 MiB). */
  readonly chunkSizeBytes?: number;
  /** How often the membership loop runs (default: 2 ticks). */
  readonly reconcileMs?: number;
}

/** A gRPC service to serve on the cluster port (the seam for Control, Dispatcher, Logs). */
export interface ServiceRegistration {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export type ServiceSeam = (manager: Manager) => readonly ServiceRegistration[];

export interface ManagerBaseOptions extends ManagerTuning {
  readonly dataRoot: string;
  /** host:port to listen on (default 0.0.0.0:2377; port 0 picks one, kept for restarts). */
  readonly listenAddr?: string;
  /** host:port other managers reach this one at (default: the listen address with the bound port). */
  readonly advertiseAddr?: string;
  /** Where the DEK lives. Default: the key manager (manager/keymanager, autolock and rotation). */
  readonly dekSource?: (dataRoot: string) => DekSource;
  readonly services?: ServiceSeam;
  /**
   * The Control and Dispatcher services on the cluster port, and the orchestrators + scheduler
   * while this manager leads (manager/leader-services.ts). Default on; `false` turns all of it off
   * (tests of Raft/membership alone). A Control service registered through `services` is kept and
   * this one is then not registered.
   */
  readonly leaderServices?: boolean | LeaderServicesOptions;
  /** Certificate renewal, role changes and root CA rotation at runtime (manager/certificates.ts). */
  readonly certificates?: ManagerCertificatesOptions;
  readonly logger?: Logger;
}

export interface InitOptions extends ManagerBaseOptions {
  readonly certExpiry?: CertExpiryOptions;
  readonly clusterName?: string;
  /** `--default-addr-pool` (default 10.0.0.0/8) and `--default-addr-pool-mask-length` (default 24). */
  readonly defaultAddrPool?: readonly string[];
  readonly subnetSize?: number;
}

export interface JoinOptions extends ManagerBaseOptions {
  /** host:port of any manager of the swarm. */
  readonly remoteAddr: string;
  readonly token: string;
  /** How long to wait to become a voter (default 60 s). */
  readonly joinTimeoutMs?: number;
}

export type RestartOptions = Omit<ManagerBaseOptions, 'listenAddr' | 'advertiseAddr'> & {
  /** `swarm unlock`: the key of an autolocked manager (without it a locked one throws LockedError). */
  readonly unlockKey?: string;
};

function dekSourceOf(o: ManagerBaseOptions): DekSource {
  return o.dekSource !== undefined ? o.dekSource(o.dataRoot) : new KeyManagerDekSource(o.dataRoot, { tlsKeyFile: path.join(o.dataRoot, CERTIFICATES_DIR, KEY_FILE), ...(o.logger !== undefined ? { logger: o.logger } : {}) });
}

/** The node's identity; its key decrypted by the key source under autolock. */
async function loadManagerIdentity(dataRoot: string, keys: DekSource): Promise<NodeIdentity> {
  const identity = await loadIdentity(path.join(dataRoot, CERTIFICATES_DIR));
  return keys.loadTlsKey !== undefined ? { ...identity, keyPem: await keys.loadTlsKey() } : identity;
}

interface StateFile {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly listenAddr: string;
  readonly advertiseAddr: string;
}

export interface ManagerStatus {
  readonly nodeId: string;
  readonly role: string;
  readonly leader: string | null;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new ManagerError('JOIN_FAILED', `address ${addr} has no port (want host:port)`);
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function writeState(dataRoot: string, state: StateFile): Promise<void> {
  const file = path.join(dataRoot, STATE_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

async function readState(dataRoot: string): Promise<StateFile> {
  try {
    return JSON.parse(await readFile(path.join(dataRoot, STATE_FILE), 'utf8')) as StateFile;
  } catch (err) {
    throw new ManagerError('NOT_INITIALIZED', `${dataRoot} holds no manager state (${(err as Error).message}); run init or join first`);
  }
}

async function ensureFresh(dataRoot: string): Promise<void> {
  await mkdir(dataRoot, { recursive: true, mode: 0o700 });
  if (await exists(path.join(dataRoot, STATE_FILE))) {
    throw new ManagerError('ALREADY_INITIALIZED', `${dataRoot} already belongs to a swarm; leave it first (or restart the manager from it)`);
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** How often a follower's read barrier checks that the leader it asked is still the leader. */
const READ_BARRIER_POLL_MS = 50;

export class Manager {
  private rs: ReplicatedStore | null = null;
  private membershipImpl: Membership | null = null;
  private router: LeaderRouter | null = null;
  private membershipService: RaftMembershipServer | null = null;
  private clusterCA: ClusterCA | null = null;
  private caVersion = -1;
  private caLoading = false;
  private timer: NodeJS.Timeout | null = null;
  private keyRuntime: KeyRuntime | null = null;
  private raftSettings: KeyRuntime | null = null;
  private closing: Promise<void> | null = null;
  private advertise = '';
  private certs: ManagerCertificates | null = null;
  private currentIdentity: NodeIdentity;
  private readonly identityListeners = new Set<(identity: NodeIdentity, change: IdentityChange) => void>();
  private readonly registry: StoreNodeRegistry;
  private readonly leaderSvc: LeaderServices | null;
  readonly transport: GrpcTransport;
  readonly server: ClusterServer;
  readonly logger: Logger;
  readonly electionTimeoutMs: number;

  private constructor(
    readonly dataRoot: string,
    identity: NodeIdentity,
    private readonly opts: ManagerBaseOptions,
    private readonly dekSource: DekSource,
  ) {
    this.currentIdentity = identity;
    this.logger = (opts.logger ?? pino({ name: 'manager', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ nodeId: identity.nodeId });
    this.electionTimeoutMs = (opts.tickMs ?? 100) * (opts.electionTick ?? 10);
    this.registry = new StoreNodeRegistry(() => this.rs?.store ?? null);
    this.transport = new GrpcTransport({
      id: identity.nodeId,
      clusterId: identity.clusterId,
      material: identity,
      logger: this.logger,
      ...(opts.chunkSizeBytes !== undefined ? { chunkSizeBytes: opts.chunkSizeBytes } : {}),
    });
    this.server = createClusterServer({ material: identity, clusterId: identity.clusterId, removed: this.registry, logger: this.logger.child({ component: 'cluster-server' }) });
    this.leaderSvc = opts.leaderServices === false ? null : new LeaderServices(this, opts.leaderServices === true || opts.leaderServices === undefined ? {} : opts.leaderServices);
  }

  // ---------------------------------------------------------------------------- entry points

  /** `swarm init`. */
  static async init(o: InitOptions): Promise<Manager> {
    // Checked before anything is made: a bad pool leaves no state behind.
    const networking = initialAllocation(o.defaultAddrPool, o.subnetSize);
    await ensureFresh(o.dataRoot);
    const ca = await ClusterCA.create({ nowMs: Date.now(), ...(o.certExpiry !== undefined ? { expiry: o.certExpiry } : {}) });
    const identity = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    await saveIdentity(path.join(o.dataRoot, CERTIFICATES_DIR), identity);
    const dekSource = dekSourceOf(o);
    const dek = await dekSource.create();
    const m = new Manager(o.dataRoot, identity, o, dekSource);
    m.clusterCA = ca;
    try {
      await m.boot(o.listenAddr ?? DEFAULT_LISTEN_ADDR, o.advertiseAddr, dek, [identity.nodeId]);
      await m.waitFor('this manager to lead the new swarm', () => m.isLeader, 10 * m.electionTimeoutMs + 5000);
      const caData = await ca.export();
      await m.store.update((tx) => {
        const cluster: Omit<ManagedCluster, 'ID' | 'Version' | 'CreatedAt' | 'UpdatedAt'> = {
          Spec: {
            Name: o.clusterName ?? 'default',
            Raft: { SnapshotInterval: o.snapshotIntervalEntries ?? 10_000, LogEntriesForSlowFollowers: o.snapshotKeepEntries ?? 500, ElectionTick: o.electionTick ?? 10, HeartbeatTick: o.heartbeatTick ?? 1 },
            CAConfig: { NodeCertExpiry: ca.expiryPolicy.expiryMs * 1_000_000 },
          },
          JoinTokens: { Worker: ca.joinTokens.worker, Manager: ca.joinTokens.manager },
          ShoalCA: caData,
          TLSInfo: tlsInfoOfCA(caData),
          RemovedNodes: [],
        };
        tx.create('cluster', { ...cluster, ...networking.cluster, ID: identity.clusterId });
        tx.create('network', networking.ingress);
        upsertManagerNode(tx, identity.nodeId, m.advertise, true);
      });
      m.caVersion = m.store.version;
      return m;
    } catch (err) {
      await m.close();
      throw err;
    }
  }

  /** `swarm join --token <manager token> <remoteAddr>`. */
  static async join(o: JoinOptions): Promise<Manager> {
    await ensureFresh(o.dataRoot);
    const identity = await joinCluster({ address: o.remoteAddr, token: o.token });
    if (identity.role !== MANAGER_ROLE) {
      throw new ManagerError('WRONG_TOKEN_ROLE', 'this is a worker join token; joining as a manager needs the manager token (docker swarm join-token manager)');
    }
    await saveIdentity(path.join(o.dataRoot, CERTIFICATES_DIR), identity);
    const dekSource = dekSourceOf(o);
    const dek = await dekSource.create();
    const m = new Manager(o.dataRoot, identity, o, dekSource);
    try {
      await m.boot(o.listenAddr ?? DEFAULT_LISTEN_ADDR, o.advertiseAddr, dek, undefined);
      let res: JoinResponse;
      try {
        res = await callMembership<JoinRequest, JoinResponse>(o.remoteAddr, identity, identity.clusterId, 'join', { addr: m.advertise }, new grpc.Metadata());
      } catch (err) {
        throw managerErrorFromGrpc(err as grpc.ServiceError);
      }
      m.transport.setPeers(new Map(res.members.filter((x) => x.nodeId !== identity.nodeId && x.addr !== '').map((x) => [x.nodeId, x.addr])));
      const timeoutMs = o.joinTimeoutMs ?? 60_000;
      await m.waitFor('this manager to be promoted to voter', () => m.raft.status().voters.map(String).includes(identity.nodeId), timeoutMs);
      await m.waitFor("the cluster's CA to replicate here", () => m.clusterCA !== null, timeoutMs);
      return m;
    } catch (err) {
      await m.close();
      await m.wipe();
      throw err;
    }
  }

  /** Reopens a manager from its data root (daemon restart). */
  static async restart(o: RestartOptions): Promise<Manager> {
    const state = await readState(o.dataRoot);
    const dekSource = dekSourceOf(o);
    const dek = await dekSource.load(o.unlockKey);
    const identity = await loadManagerIdentity(o.dataRoot, dekSource);
    const m = new Manager(o.dataRoot, identity, o, dekSource);
    try {
      await m.boot(state.listenAddr, state.advertiseAddr, dek, undefined);
      return m;
    } catch (err) {
      await m.close();
      throw err;
    }
  }

  /**
   * `swarm init --force-new-cluster`: this manager's log becomes a one-manager cluster with all
   * committed state; other managers can join it again.
   */
  static async forceNewCluster(o: RestartOptions): Promise<Manager> {
    const state = await readState(o.dataRoot);
    const dekSource = dekSourceOf(o);
    const dek = await dekSource.load(o.unlockKey);
    const identity = await loadManagerIdentity(o.dataRoot, dekSource);
    const logger = (o.logger ?? pino({ name: 'manager', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ nodeId: identity.nodeId });
    await forceNewCluster(path.join(o.dataRoot, RAFT_DIR), new Uint8Array(dek), identity.nodeId, logger);
    const m = new Manager(o.dataRoot, identity, o, dekSource);
    try {
      await m.boot(state.listenAddr, state.advertiseAddr, dek, undefined);
      await m.waitFor('this manager to lead the forced cluster', () => m.isLeader, 10 * m.electionTimeoutMs + 5000);
      return m;
    } catch (err) {
      await m.close();
      throw err;
    }
  }

  // ------------------------------------------------------------------------------- accessors

  /** This node's TLS identity now (renewals replace it: manager/certificates.ts). */
  get identity(): NodeIdentity {
    return this.currentIdentity;
  }

  /** Renewal, role change and root rotation at runtime (null before boot and after close). */
  get certificates(): ManagerCertificates | null {
    return this.certs;
  }

  /** Hears every new identity (renewed certificate, trust bundle changed), e.g. to move an agent's session onto it. */
  onIdentityChange(listener: (identity: NodeIdentity, change: IdentityChange) => void): () => void {
    this.identityListeners.add(listener);
    return () => this.identityListeners.delete(listener);
  }

  /** Installs a new identity for new connections: the cluster port's credentials and the Raft transport's. */
  applyIdentity(identity: NodeIdentity, change: IdentityChange): void {
    this.currentIdentity = identity;
    this.server.credentials.update(identity);
    this.transport.updateMaterial(identity);
    this.logger.info({ change, role: identity.role, notAfterMs: identity.notAfterMs }, 'node identity installed');
    for (const listener of this.identityListeners) listener(identity, change);
  }

  storeOrNull(): MemoryStore | null {
    return this.rs?.store ?? null;
  }

  /** The leader's address (this manager's own when it leads), or null when none is known. */
  leaderAddr(): string | null {
    const leader = this.rs?.node.status().leader ?? null;
    if (leader === null || this.membershipImpl === null) return null;
    return String(leader) === this.nodeId ? this.advertise : this.membershipImpl.addrOf(String(leader));
  }

  get nodeId(): string {
    return this.identity.nodeId;
  }

  get clusterId(): string {
    return this.identity.clusterId;
  }

  /** The address other managers reach this one at. */
  get addr(): string {
    return this.advertise;
  }

  get store(): MemoryStore {
    if (this.rs === null) throw new ManagerError('CLOSED', 'manager is not running');
    return this.rs.store;
  }

  get raft(): RaftNode {
    if (this.rs === null) throw new ManagerError('CLOSED', 'manager is not running');
    return this.rs.node;
  }

  get membership(): Membership {
    if (this.membershipImpl === null) throw new ManagerError('CLOSED', 'manager is not running');
    return this.membershipImpl;
  }

  get isLeader(): boolean {
    return this.rs !== null && this.rs.node.status().role === 'leader';
  }

  /** Control API, dispatcher, and the leader's orchestrators + scheduler (null when turned off). */
  get leaderServices(): LeaderServices | null {
    return this.leaderSvc;
  }

  /** Where this manager's DEK lives (the key manager by default: `keys.keyManager`). */
  get keys(): DekSource {
    return this.dekSource;
  }

  /** The CA as of the store's Cluster object (null until it has replicated here). */
  get ca(): ClusterCA | null {
    return this.clusterCA;
  }

  status(): ManagerStatus {
    const s = this.raft.status();
    return {
      nodeId: this.nodeId,
      role: s.role,
      leader: s.leader === null ? null : String(s.leader),
      term: s.term,
      commit: s.commit,
      applied: s.applied,
      voters: s.voters.map(String),
      learners: s.learners.map(String),
    };
  }

  members(): MemberInfo[] {
    return this.membership.members();
  }

  /**
   * A store write that must happen on the leader: fails at once with NoLeaderError when no leader
   * is known and NotLeaderError (naming the leader) on a follower, instead of waiting.
   */
  async update<T>(fn: (tx: Tx) => T): Promise<UpdateResult<T>> {
    this.requireLeader();
    try {
      return await this.store.update(fn);
    } catch (err) {
      if (err instanceof ProposalRejectedError && err.reason === 'notLeader') this.requireLeader();
      throw err;
    }
  }

  /**
   * A read barrier for the control API on a follower: resolves once this manager's store has
   * applied everything the leader had committed when the call was made (Raft ReadIndex), so an
   * answer read here is never older than the leader's — the object a client just created through
   * this follower is there. Swarmkit forwards such reads to the leader; this gives the same view
   * without moving the data. The leader reads its own store (no round).
   * Fails with NoLeaderError when no leader is known, when the leader changes before it answers
   * (an election: the caller retries, as with a write), or when it does not answer in time.
   */
  async readBarrier(): Promise<void> {
    const node = this.raft;
    const s = node.status();
    if (s.role === 'leader') return;
    if (s.leader === null) throw new NoLeaderError();
    const lead = s.leader;
    let timer: NodeJS.Timeout | undefined;
    const leaderChanged = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const now = node.status().leader;
        if (now !== lead) reject(new NoLeaderError(`the leader changed (${String(lead)} → ${now === null ? 'none' : String(now)}) before it confirmed this manager's view; retry`));
      }, READ_BARRIER_POLL_MS);
    });
    try {
      await Promise.race([node.readIndex(), leaderChanged]);
    } catch (err) {
      if (err instanceof ManagerError) throw err;
      throw new NoLeaderError(`this manager could not confirm its view with the leader ${String(lead)}: ${(err as Error).message}`);
    } finally {
      clearInterval(timer);
    }
  }

  /** Throws NoLeaderError / NotLeaderError unless this manager leads. */
  requireLeader(): void {
    const s = this.raft.status();
    if (s.role === 'leader') return;
    if (s.leader === null) throw new NoLeaderError();
    const leader = String(s.leader);
    throw new NotLeaderError(leader, this.membership.addrOf(leader));
  }

  // ------------------------------------------------------------------------------ membership

  /** `docker node demote`: the manager leaves Raft and becomes a worker. */
  async demote(nodeId: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.membershipAction(nodeId, 'demote', opts.force ?? false);
  }

  /** `docker node rm` of a manager: leaves Raft, its Node object goes, its certificate is refused from now on. */
  async remove(nodeId: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.membershipAction(nodeId, 'remove', opts.force ?? false);
  }

  /** `docker swarm leave` on a manager: leaves Raft, stops, and forgets the swarm (data root cleared). */
  async leave(opts: { force?: boolean } = {}): Promise<void> {
    const force = opts.force ?? false;
    const voters = this.raft.status().voters.map(String);
    if (voters.length <= 1) {
      if (!force) throw new ManagerError('LAST_MANAGER', 'this is the last manager: leaving would destroy the swarm and its state; use --force to leave anyway');
    } else {
      await this.membershipAction(this.nodeId, 'leave', force);
    }
    await this.close();
    await this.wipe();
  }

  private async membershipAction(target: string, action: RemovalAction, force: boolean): Promise<void> {
    for (let hop = 0; hop < 3; hop++) {
      const leader = this.router!.leader();
      if (leader === null) {
        const outcome = await this.membership.removeMember(target, action, force);
        if (outcome.done) return;
        continue;
      }
      await this.router!.forward(leader.addr, 'leave', { node: { raftId: target, nodeId: target, addr: '' } }, leaveMetadata(action, force));
      return;
    }
    throw new ManagerError('TIMEOUT', `could not ${action} ${target}: leadership kept moving; retry`);
  }

  // ------------------------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.closing === null) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.certs?.stop();
    await this.leaderSvc?.close();
    await Promise.allSettled([this.keyRuntime?.stop(), this.raftSettings?.stop()]);
    const rs = this.rs;
    this.rs = null;
    this.membershipImpl = null;
    await Promise.allSettled([rs !== null ? rs.close() : this.transport.close(), this.server.close(500)]);
  }

  /** Forgets the swarm: Raft log, certificates, DEK, state file. */
  private async wipe(): Promise<void> {
    await rm(path.join(this.dataRoot, RAFT_DIR), { recursive: true, force: true });
    await rm(path.join(this.dataRoot, CERTIFICATES_DIR), { recursive: true, force: true });
    await rm(path.join(this.dataRoot, STATE_FILE), { force: true });
    await this.dekSource.destroy();
  }

  private async waitFor(what: string, cond: () => boolean, limitMs: number): Promise<void> {
    const deadline = performance.now() + limitMs;
    while (!cond()) {
      if (this.closing !== null) throw new ManagerError('CLOSED', `manager closed while waiting for ${what}`);
      if (performance.now() > deadline) throw new ManagerError('TIMEOUT', `timed out after ${limitMs} ms waiting for ${what}`);
      await sleep(10);
    }
  }

  /** Cluster port first (its port goes into the state file), then the Raft node and store, then the loops. */
  private async boot(listenAddr: string, advertiseAddr: string | undefined, dek: Uint8Array, peers: readonly string[] | undefined): Promise<void> {
    this.registerServices();
    const port = await this.server.listen(listenAddr);
    const { host } = splitHostPort(listenAddr);
    const bound = `${host}:${port}`;
    if (advertiseAddr === undefined && (host === '0.0.0.0' || host === '::' || host === '[::]')) {
      throw new ManagerError('JOIN_FAILED', `listening on ${listenAddr} needs an advertise address other managers can reach`);
    }
    this.advertise = advertiseAddr ?? bound;
    await writeState(this.dataRoot, { nodeId: this.nodeId, clusterId: this.clusterId, listenAddr: bound, advertiseAddr: this.advertise });
    const o = this.opts;
    const withDek = <T>(open: (k: Uint8Array) => Promise<T>): Promise<T> => (this.dekSource.withDek !== undefined ? this.dekSource.withDek(open) : open(dek));
    this.rs = await withDek((dek) => ReplicatedStore.open({
      id: this.nodeId,
      ...(peers !== undefined ? { peers } : {}),
      dir: path.join(this.dataRoot, RAFT_DIR),
      dek,
      transport: this.transport,
      ...(o.snapshotIntervalEntries !== undefined ? { snapshotIntervalEntries: o.snapshotIntervalEntries } : {}),
      ...(o.snapshotKeepEntries !== undefined ? { snapshotKeepEntries: o.snapshotKeepEntries } : {}),
      ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}),
      ...(o.electionTick !== undefined ? { electionTick: o.electionTick } : {}),
      ...(o.heartbeatTick !== undefined ? { heartbeatTick: o.heartbeatTick } : {}),
      ...(o.proposeTimeoutMs !== undefined ? { proposeTimeoutMs: o.proposeTimeoutMs } : {}),
      onFatal: (err) => this.logger.error({ err }, 'raft node stopped on a fatal error'),
      logger: this.logger,
    }));
    const rs = this.rs;
    this.keyRuntime = this.dekSource.start?.({ store: rs.store, rotateLogKey: (k) => rs.node.rotateKey(k), logger: this.logger }) ?? null;
    this.raftSettings = followRaftSettings(rs.store, rs.node, this.logger.child({ component: 'raft-settings' }), { intervalEntries: o.snapshotIntervalEntries ?? 10_000, keepEntries: o.snapshotKeepEntries ?? 500 });
    const membership = new Membership({
      selfId: this.nodeId,
      selfAddr: this.advertise,
      node: this.rs.node,
      store: this.rs.store,
      transport: this.transport,
      electionTimeoutMs: this.electionTimeoutMs,
      logger: this.logger.child({ component: 'membership' }),
    });
    this.membershipImpl = membership;
    const serviceOptions = {
      selfId: this.nodeId,
      clusterId: this.clusterId,
      material: () => this.identity,
      node: this.rs.node,
      store: this.rs.store,
      membership,
      logger: this.logger.child({ component: 'raft-membership' }),
    };
    this.router = new LeaderRouter(serviceOptions);
    this.membershipService = raftMembershipService(serviceOptions);
    this.loadClusterCA();
    this.leaderSvc?.attach();
    this.certs = new ManagerCertificates(this, path.join(this.dataRoot, CERTIFICATES_DIR), { save: identitySaver(this.dekSource), ...o.certificates });
    this.certs.start();
    const reconcileMs = o.reconcileMs ?? 2 * (o.tickMs ?? 100);
    this.timer = setInterval(() => {
      this.loadClusterCA();
      void membership.reconcile();
    }, reconcileMs);
  }

  /** Rebuilds the ClusterCA when the Cluster object changed (join, restart, token rotation later). */
  private loadClusterCA(): void {
    const rs = this.rs;
    if (rs === null || this.caLoading) return;
    const cluster = clusterOf(rs.store);
    if (cluster?.ShoalCA === undefined || cluster.Version.Index === this.caVersion) return;
    this.caLoading = true;
    const version = cluster.Version.Index;
    ClusterCA.restore(cluster.ShoalCA)
      .then((ca) => {
        if (version <= this.caVersion) return; // a fresher one was installed meanwhile
        this.clusterCA = ca;
        this.caVersion = version;
      })
      .catch((err: unknown) => this.logger.error({ err }, "could not rebuild the CA from the store's cluster object"))
      .finally(() => {
        this.caLoading = false;
      });
  }

  /**
   * Brings the ClusterCA up to the store's Cluster object before a join is answered, so that a
   * follower never accepts a join token (or serves a root) that the cluster already rotated out in
   * the window before its periodic rebuild.
   */
  private async freshClusterCA(): Promise<void> {
    const rs = this.rs;
    if (rs === null) return;
    const cluster = clusterOf(rs.store);
    if (cluster?.ShoalCA === undefined || cluster.Version.Index <= this.caVersion) return;
    const version = cluster.Version.Index;
    const ca = await ClusterCA.restore(cluster.ShoalCA);
    if (version <= this.caVersion) return;
    this.clusterCA = ca;
    this.caVersion = version;
  }

  private registerServices(): void {
    const unavailable = (what: string): Partial<grpc.StatusObject> => ({ code: grpc.status.UNAVAILABLE, details: `this manager is still starting (${what} not ready)` });
    const ca = caServiceImplementation({ ca: () => this.clusterCA!, registry: this.registry, logger: this.logger.child({ component: 'ca-server' }) });
    const guarded: CAServer = {
      getRootCaCertificate: (call, cb) => {
        void this.freshClusterCA().then(
          () => (this.clusterCA === null ? cb(unavailable('CA')) : ca.getRootCaCertificate(call, cb)),
          (err: unknown) => cb({ code: grpc.status.INTERNAL, details: `could not rebuild the CA: ${(err as Error).message}` }),
        );
      },
      issueNodeCertificate: (call, cb) => {
        void this.freshClusterCA().then(
          () => (this.clusterCA === null ? cb(unavailable('CA')) : ca.issueNodeCertificate(call, cb)),
          (err: unknown) => cb({ code: grpc.status.INTERNAL, details: `could not rebuild the CA: ${(err as Error).message}` }),
        );
      },
      renewNodeCertificate: (call, cb) => (this.clusterCA === null || this.certs === null ? cb(unavailable('CA')) : this.certs.recordingRenewal(ca.renewNodeCertificate)(call, cb)),
      nodeCertificateStatus: (call, cb) => (this.clusterCA === null ? cb(unavailable('CA')) : ca.nodeCertificateStatus(call, cb)),
    };
    this.server.server.addService(CAService, guarded);
    const raft: RaftServer = {
      streamRaftMessage: this.transport.streamHandler,
      resolveAddress: (call, cb) => (this.membershipImpl === null ? cb(unavailable('raft')) : resolveAddressHandler(this.membershipImpl)(call, cb)),
    };
    this.server.server.addService(RaftService, raft);
    const membership: RaftMembershipServer = {
      join: (call, cb) => (this.membershipService === null ? cb(unavailable('raft')) : this.membershipService.join(call, cb)),
      leave: (call, cb) => (this.membershipService === null ? cb(unavailable('raft')) : this.membershipService.leave(call, cb)),
    };
    this.server.server.addService(RaftMembershipService, membership);
    const taken = new Set<string>();
    for (const s of this.opts.services?.(this) ?? []) {
      this.server.server.addService(s.definition, s.implementation);
      for (const p of methodPaths(s.definition)) taken.add(p);
    }
    for (const s of this.leaderSvc?.registrations() ?? []) {
      if (methodPaths(s.definition).some((p) => taken.has(p))) continue;
      this.server.server.addService(s.definition, s.implementation);
    }
  }
}
