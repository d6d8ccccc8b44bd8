// The control API as a plain class over the store: what `docker service create`, `node update`,
// `swarm update`… do on a manager. The gRPC service (grpc.ts) and the daemon's Docker API
// handlers both call it, so every check lives here and both surfaces refuse alike.
//
// Reads are synchronous and answer committed state. Writes validate first (nothing proposed for
// a bad spec), then commit one store transaction through `deps.update` (the runtime's
// leader-checking write) and return the object as committed. Updates carry the version the
// caller read: a stale one fails with "update out of sequence" and changes nothing.
import { pino, type Logger } from 'pino';

import {
  byDesiredState,
  byNodeId,
  byReferencedConfig,
  byReferencedNetwork,
  byReferencedSecret,
  byServiceId,
  NotFoundError,
  SequenceConflictError,
  type Config,
  type Kind,
  type Labels,
  type MemoryStore,
  type Network,
  type Node,
  type NodeRole,
  type ObjectByKind,
  type PortConfig,
  type ReadTx,
  type Secret,
  type Service,
  type ServiceSpec,
  type Task,
  type TaskState,
  type Tx,
} from '../store/index.js';
import { generateUnlockKey } from '../keymanager/unlock-key.js';
import { AllocationState, AllocatorError, needsIngress } from '../allocator/index.js';
import { isAlive } from '../orchestrator/task-state.js';
import { ControlError, invalid, precondition, toControlError } from './errors.js';
import { clusterCASeam, type CAChangeResult, type ClusterCASeam, type MembershipSeam, type StoreWrite, type StoredCluster } from './seams.js';
import {
  modeKind,
  portKey,
  validateConfigSpec,
  validateLabelsOnlyUpdate,
  validateNetworkSpec,
  validateNodeSpec,
  validateSecretSpec,
  validateServiceSpec,
  validateSwarmSpec,
} from './validate.js';

export interface ControlDeps {
  readonly store: MemoryStore;
  /** The write path (default `store.update`); the runtime passes its leader-checking update. */
  readonly update?: StoreWrite;
  /** Join tokens and certificate expiry (default: `clusterCASeam`, over the Cluster object's CA data). */
  readonly ca?: ClusterCASeam;
  readonly membership?: MembershipSeam;
  /** Makes unlock keys (default: keymanager's generateUnlockKey). */
  readonly newUnlockKey?: () => string;
  readonly logger?: Logger;
}

/** Filters shared by every list (swarmkit's): any of the names / prefixes, all of the labels. */
export interface ListFilters {
  readonly names?: readonly string[];
  readonly namePrefixes?: readonly string[];
  readonly idPrefixes?: readonly string[];
  /** `key` → `value`; an empty value matches any object that has the label. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface NodeFilters extends ListFilters {
  readonly roles?: readonly NodeRole[];
}

export interface TaskFilters extends ListFilters {
  readonly serviceIds?: readonly string[];
  readonly nodeIds?: readonly string[];
  readonly desiredStates?: readonly TaskState[];
}

export interface ClusterRotation {
  readonly workerToken?: boolean;
  readonly managerToken?: boolean;
  readonly unlockKey?: boolean;
}

const INGRESS_LABEL = 'com.docker.swarm.internal';

function checkVersion(version: unknown): number {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw invalid(`an update needs the version the object was read at (its Version.Index), got ${JSON.stringify(version)}`);
  }
  return version;
}

function checkRef(kind: Kind, ref: unknown): string {
  if (typeof ref !== 'string' || ref === '') throw invalid(`${kind} ID must be provided`);
  return ref;
}

export function redactSecret(s: Secret): Secret {
  if (s.Spec.Data === undefined) return s;
  const { Data: _data, ...spec } = s.Spec;
  return { ...s, Spec: spec };
}

export function redactCluster(c: StoredCluster): StoredCluster {
  const { ShoalCA: _ca, ManagerUnlockKey: _key, RemovedNodes: _removed, ...rest } = c;
  return rest;
}

function nameOf(kind: Kind, o: ObjectByKind[Kind]): string | undefined {
  if (kind === 'node') {
    const n = o as Node;
    return n.Spec.Name ?? n.Description?.Hostname;
  }
  if (kind === 'task') return undefined;
  return (o as { Spec: { Name?: string } }).Spec.Name;
}

function labelsOf(kind: Kind, o: ObjectByKind[Kind]): Labels | undefined {
  if (kind === 'task') return (o as Task).Labels;
  return (o as { Spec: { Labels?: Labels } }).Spec.Labels;
}

function matchLabels(have: Labels | undefined, want: Readonly<Record<string, string>> | undefined): boolean {
  if (want === undefined) return true;
  for (const [k, v] of Object.entries(want)) {
    const got = have?.[k];
    if (got === undefined || (v !== '' && got !== v)) return false;
  }
  return true;
}

function matchCommon(kind: Kind, o: ObjectByKind[Kind], f: ListFilters): boolean {
  const name = nameOf(kind, o) ?? '';
  if (f.names !== undefined && f.names.length > 0 && !f.names.some((n) => n.toLowerCase() === name.toLowerCase())) return false;
  if (f.namePrefixes !== undefined && f.namePrefixes.length > 0 && !f.namePrefixes.some((p) => name.toLowerCase().startsWith(p.toLowerCase()))) return false;
  if (f.idPrefixes !== undefined && f.idPrefixes.length > 0 && !f.idPrefixes.some((p) => o.ID.startsWith(p))) return false;
  return matchLabels(labelsOf(kind, o), f.labels);
}

function byCreation<T extends { readonly CreatedAt: string; readonly ID: string }>(a: T, b: T): number {
  return a.CreatedAt < b.CreatedAt ? -1 : a.CreatedAt > b.CreatedAt ? 1 : a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0;
}

export class ControlApi {
  private readonly store: MemoryStore;
  private readonly write: StoreWrite;
  private readonly ca: ClusterCASeam;
  private readonly newUnlockKey: () => string;
  private readonly log: Logger;
  /** Network creates, one at a time (see createNetwork). */
  private networkCreates: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ControlDeps) {
    this.store = deps.store;
    this.write = deps.update ?? ((fn) => deps.store.update(fn));
    this.ca = deps.ca ?? clusterCASeam;
    this.newUnlockKey = deps.newUnlockKey ?? generateUnlockKey;
    this.log = deps.logger ?? pino({ name: 'controlapi', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' });
  }

  // ------------------------------------------------------------------------------ plumbing

  private read<T>(fn: (tx: ReadTx) => T): T {
    try {
      return fn(this.store);
    } catch (err) {
      throw toControlError(err);
    }
  }

  private async commit<T>(what: string, fn: (tx: Tx) => T): Promise<{ result: T; version: number }> {
    try {
      return await this.write(fn);
    } catch (err) {
      const e = toControlError(err);
      this.log.debug({ err: e, what }, 'control write refused');
      throw e;
    }
  }

  /** The object as committed at `version` (the store stamps Version.Index on apply). */
  private committed<K extends Kind>(kind: K, id: string, version: number): ObjectByKind[K] {
    const o = this.store.get(kind, id);
    if (o !== undefined) return o;
    // Deleted again between commit and this read: answer what was committed.
    throw new ControlError('ERR_CONTROL_NOT_FOUND', `${kind} ${id} not found (it was removed right after version ${version})`);
  }

  private list<K extends Kind>(kind: K, f: ListFilters, base?: readonly ObjectByKind[K][]): ObjectByKind[K][] {
    const objects = base ?? this.store.find(kind);
    return objects.filter((o) => matchCommon(kind, o, f)).sort(byCreation);
  }

  private lookup<K extends Kind>(kind: K, ref: unknown): ObjectByKind[K] {
    const r = checkRef(kind, ref);
    return this.read((tx) => tx.lookup(kind, r));
  }

  // ------------------------------------------------------------------------------ services

  getService(ref: string): Service {
    return this.lookup('service', ref);
  }

  listServices(filters: ListFilters = {}): Service[] {
    return this.list('service', filters);
  }

  async createService(specInput: unknown): Promise<Service> {
    const spec = validateServiceSpec(specInput);
    this.read((tx) => this.checkServiceRefs(tx, spec, null));
    const { result, version } = await this.commit('create service', (tx) => {
      this.checkServiceRefs(tx, spec, null);
      return tx.create('service', { Spec: spec });
    });
    this.log.info({ service: result.ID, name: spec.Name, version }, 'service created');
    return this.committed('service', result.ID, version);
  }

  /**
   * `service update`: the whole new spec, at the version read. With `rollback`, the spec sent is
   * ignored and the previous one is restored (`docker service rollback`).
   */
  async updateService(ref: string, version: number, specInput: unknown, opts: { readonly rollback?: boolean } = {}): Promise<Service> {
    checkVersion(version);
    const cur = this.lookup('service', ref);
    let spec: ServiceSpec;
    if (opts.rollback === true) {
      if (cur.PreviousSpec === undefined) throw precondition(`service ${cur.Spec.Name} does not have a previous spec`);
      spec = cur.PreviousSpec;
    } else {
      spec = validateServiceSpec(specInput);
    }
    if (modeKind(spec.Mode) !== modeKind(cur.Spec.Mode)) {
      throw invalid(`service mode change is not allowed (${modeKind(cur.Spec.Mode)} → ${modeKind(spec.Mode)}); remove the service and create it again`);
    }
    const { version: v } = await this.commit('update service', (tx) => {
      const now = tx.get('service', cur.ID);
      if (now === undefined) throw new NotFoundError('service', ref);
      this.checkServiceRefs(tx, spec, cur.ID);
      const { UpdateStatus: _status, ...rest } = now;
      // A rollback runs as one (swarmkit's manual rollback): the updater uses RollbackConfig and
      // ends in rollback_completed; a plain update starts afresh (no UpdateStatus).
      const rollbackStatus = opts.rollback === true ? { UpdateStatus: { State: 'rollback_started' as const, StartedAt: new Date().toISOString(), Message: 'manually requested rollback' } } : {};
      return tx.update('service', { ...rest, ...rollbackStatus, Version: { Index: version }, PreviousSpec: now.Spec, Spec: spec });
    });
    return this.committed('service', cur.ID, v);
  }

  async removeService(ref: string): Promise<void> {
    const cur = this.lookup('service', ref);
    await this.commit('remove service', (tx) => tx.delete('service', cur.ID));
  }

  /** Store-dependent checks of a service spec: referenced networks/secrets/configs exist, ports are free. */
  private checkServiceRefs(tx: ReadTx, spec: ServiceSpec, selfId: string | null): void {
    const attachments = [...(spec.TaskTemplate.Networks ?? []), ...(spec.Networks ?? [])];
    for (const att of attachments) {
      const net = this.findNetwork(tx, att.Target);
      if (net === undefined) throw invalid(`network ${att.Target} not found (service ${spec.Name} attaches to it in Networks)`);
      if (net.Spec.Ingress === true || net.Spec.Labels?.[INGRESS_LABEL] !== undefined) {
        throw invalid(`Service cannot be explicitly attached to the ingress network ${JSON.stringify(net.Spec.Name)}`);
      }
    }
    // swarmkit's check (controlapi CreateService/UpdateService): the routing mesh needs `ingress`.
    if ((spec.EndpointSpec?.Ports ?? []).some((p) => (p.PublishMode ?? 'ingress') === 'ingress')) {
      const ingress = tx.find('network').some((n) => n.Spec.Ingress === true || n.Spec.Labels?.[INGRESS_LABEL] !== undefined);
      if (!ingress) throw precondition('service needs ingress network, but no ingress network is present');
    }
    const container = spec.TaskTemplate.ContainerSpec;
    const missingSecrets = (container?.Secrets ?? []).filter((s) => tx.get('secret', s.SecretID) === undefined).map((s) => `${s.SecretName} (${s.SecretID})`);
    if (missingSecrets.length > 0) throw invalid(`secret not found: ${missingSecrets.join(', ')}`);
    const missingConfigs = (container?.Configs ?? []).filter((c) => tx.get('config', c.ConfigID) === undefined).map((c) => `${c.ConfigName} (${c.ConfigID})`);
    if (missingConfigs.length > 0) throw invalid(`config not found: ${missingConfigs.join(', ')}`);
    this.checkPortConflicts(tx, spec, selfId);
  }

  private findNetwork(tx: ReadTx, target: string): Network | undefined {
    try {
      return tx.lookup('network', target);
    } catch {
      return undefined;
    }
  }

  /** A published port is taken cluster-wide by an ingress port, and on every node by a host port of the same number. */
  private checkPortConflicts(tx: ReadTx, spec: ServiceSpec, selfId: string | null): void {
    const wanted = new Map<string, PortConfig>();
    for (const p of spec.EndpointSpec?.Ports ?? []) if ((p.PublishedPort ?? 0) > 0) wanted.set(portKey(p), p);
    if (wanted.size === 0) return;
    for (const svc of tx.find('service')) {
      if (svc.ID === selfId) continue;
      for (const p of [...(svc.Spec.EndpointSpec?.Ports ?? []), ...(svc.Endpoint?.Ports ?? [])]) {
        const mine = wanted.get(portKey(p));
        if (mine === undefined) continue;
        const theirMode = p.PublishMode ?? 'ingress';
        const myMode = mine.PublishMode ?? 'ingress';
        if (theirMode === 'host' && myMode === 'host') continue; // the scheduler keeps host ports apart per node
        throw invalid(
          `port '${p.PublishedPort}' is already in use by service '${svc.Spec.Name}' (${svc.ID}) as ${theirMode === 'ingress' ? 'an ingress' : 'a host-published'} port`,
        );
      }
    }
  }

  // --------------------------------------------------------------------------------- tasks

  getTask(ref: string): Task {
    return this.lookup('task', ref);
  }

  listTasks(filters: TaskFilters = {}): Task[] {
    // Start from the narrowest index the filters allow, then apply every filter.
    let base: Task[] | undefined;
    if (filters.serviceIds !== undefined && filters.serviceIds.length > 0) base = filters.serviceIds.flatMap((id) => this.store.find('task', byServiceId(id)));
    else if (filters.nodeIds !== undefined && filters.nodeIds.length > 0) base = filters.nodeIds.flatMap((id) => this.store.find('task', byNodeId(id)));
    else if (filters.desiredStates !== undefined && filters.desiredStates.length > 0) base = filters.desiredStates.flatMap((s) => this.store.find('task', byDesiredState(s)));
    const { names, ...common } = filters;
    return this.list('task', common, base).filter(
      (t) =>
        (filters.serviceIds === undefined || filters.serviceIds.length === 0 || filters.serviceIds.includes(t.ServiceID)) &&
        (filters.nodeIds === undefined || filters.nodeIds.length === 0 || filters.nodeIds.includes(t.NodeID)) &&
        (filters.desiredStates === undefined || filters.desiredStates.length === 0 || filters.desiredStates.includes(t.DesiredState)) &&
        (names === undefined || names.length === 0 || names.includes(this.taskName(t))),
    );
  }

  /** `web.1` (replicated) or `web.<node ID>` (global), as `docker service ps` names tasks. */
  private taskName(t: Task): string {
    const svc = this.store.get('service', t.ServiceID)?.Spec.Name ?? t.ServiceID;
    return t.Slot > 0 ? `${svc}.${t.Slot}` : `${svc}.${t.NodeID}`;
  }

  async removeTask(ref: string): Promise<void> {
    const cur = this.lookup('task', ref);
    await this.commit('remove task', (tx) => tx.delete('task', cur.ID));
  }

  // --------------------------------------------------------------------------------- nodes

  getNode(ref: string): Node {
    return this.lookup('node', ref);
  }

  listNodes(filters: NodeFilters = {}): Node[] {
    return this.list('node', filters).filter((n) => filters.roles === undefined || filters.roles.length === 0 || filters.roles.includes(n.Spec.Role));
  }

  /** `node update` / `promote` / `demote`: the whole NodeSpec at the version read. */
  async updateNode(ref: string, version: number, specInput: unknown): Promise<Node> {
    checkVersion(version);
    const spec = validateNodeSpec(specInput);
    const cur = this.lookup('node', ref);
    if (cur.Spec.Role === 'manager' && spec.Role === 'worker') {
      const managers = this.store.find('node').filter((n) => n.Spec.Role === 'manager');
      if (managers.length <= 1) throw precondition('attempting to demote the last manager of the swarm');
      const refusal = this.deps.membership?.refuseDemotion(cur.ID) ?? null;
      if (refusal !== null) throw precondition(`can't demote ${cur.ID}: ${refusal}`);
    }
    const { version: v } = await this.commit('update node', (tx) => {
      const now = tx.get('node', cur.ID);
      if (now === undefined) throw new NotFoundError('node', ref);
      return tx.update('node', { ...now, Version: { Index: version }, Spec: spec });
    });
    return this.committed('node', cur.ID, v);
  }

  /** `node rm [--force]`: a manager must be demoted first; a ready node needs --force. Its certificate is refused from now on. */
  async removeNode(ref: string, opts: { readonly force?: boolean } = {}): Promise<void> {
    const cur = this.lookup('node', ref);
    if (cur.Spec.Role === 'manager' || cur.ManagerStatus !== undefined) {
      throw precondition(`node ${cur.ID} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`);
    }
    if (opts.force !== true && cur.Status.State === 'ready') throw precondition(`node ${cur.ID} is not down and can't be removed`);
    await this.commit('remove node', (tx) => {
      tx.delete('node', cur.ID);
      const cluster = tx.find('cluster')[0] as StoredCluster | undefined;
      if (cluster === undefined) return;
      const removed = cluster.RemovedNodes ?? [];
      if (removed.some((r) => r.ID === cur.ID)) return;
      tx.update('cluster', { ...cluster, RemovedNodes: [...removed, { ID: cur.ID, RemovedAt: new Date().toISOString() }] } as StoredCluster);
    });
  }

  // ------------------------------------------------------------------------------- secrets

  getSecret(ref: string): Secret {
    return redactSecret(this.lookup('secret', ref));
  }

  listSecrets(filters: ListFilters = {}): Secret[] {
    return this.list('secret', filters).map(redactSecret);
  }

  async createSecret(specInput: unknown): Promise<Secret> {
    const spec = validateSecretSpec(specInput);
    const { result, version } = await this.commit('create secret', (tx) => tx.create('secret', { Spec: spec }));
    return redactSecret(this.committed('secret', result.ID, version));
  }

  /** Labels only, as swarmkit allows. */
  async updateSecret(ref: string, version: number, specInput: unknown): Promise<Secret> {
    checkVersion(version);
    const cur = this.lookup('secret', ref);
    const newLabels = validateLabelsOnlyUpdate('secret', cur.Spec, specInput);
    const { version: v } = await this.commit('update secret', (tx) => {
      const now = tx.get('secret', cur.ID) ?? cur;
      return tx.update('secret', { ...now, Version: { Index: version }, Spec: { ...now.Spec, Labels: newLabels ?? {} } });
    });
    return redactSecret(this.committed('secret', cur.ID, v));
  }

  async removeSecret(ref: string): Promise<void> {
    const cur = this.lookup('secret', ref);
    await this.commit('remove secret', (tx) => {
      const users = tx.find('service', byReferencedSecret(cur.ID));
      if (users.length > 0) throw invalid(`secret '${cur.Spec.Name}' is in use by the following ${users.length === 1 ? 'service' : 'services'}: ${users.map((s) => s.Spec.Name).join(', ')}`);
      tx.delete('secret', cur.ID);
    });
  }

  // ------------------------------------------------------------------------------- configs

  getConfig(ref: string): Config {
    return this.lookup('config', ref);
  }

  listConfigs(filters: ListFilters = {}): Config[] {
    return this.list('config', filters);
  }

  async createConfig(specInput: unknown): Promise<Config> {
    const spec = validateConfigSpec(specInput);
    const { result, version } = await this.commit('create config', (tx) => tx.create('config', { Spec: spec }));
    return this.committed('config', result.ID, version);
  }

  async updateConfig(ref: string, version: number, specInput: unknown): Promise<Config> {
    checkVersion(version);
    const cur = this.lookup('config', ref);
    const newLabels = validateLabelsOnlyUpdate('config', cur.Spec, specInput);
    const { version: v } = await this.commit('update config', (tx) => {
      const now = tx.get('config', cur.ID) ?? cur;
      return tx.update('config', { ...now, Version: { Index: version }, Spec: { ...now.Spec, Labels: newLabels ?? {} } });
    });
    return this.committed('config', cur.ID, v);
  }

  async removeConfig(ref: string): Promise<void> {
    const cur = this.lookup('config', ref);
    await this.commit('remove config', (tx) => {
      const users = tx.find('service', byReferencedConfig(cur.ID));
      if (users.length > 0) throw invalid(`config '${cur.Spec.Name}' is in use by the following ${users.length === 1 ? 'service' : 'services'}: ${users.map((s) => s.Spec.Name).join(', ')}`);
      tx.delete('config', cur.ID);
    });
  }

  // ------------------------------------------------------------------------------ networks

  getNetwork(ref: string): Network {
    return this.lookup('network', ref);
  }

  listNetworks(filters: ListFilters = {}): Network[] {
    return this.list('network', filters);
  }

  /**
   * `network create`: the network is created allocated — its subnet (`--subnet`, refused when it
   * overlaps another network, or the next free one of the cluster's default pool), gateway and
   * VNI are in the committed object. Creates are serialized here (the leader's only writer of
   * network allocations) so two concurrent ones cannot pick the same subnet.
   */
  async createNetwork(specInput: unknown): Promise<Network> {
    const spec = validateNetworkSpec(specInput);
    const run = this.networkCreates.then(async () => {
      const { result, version } = await this.commit('create network', (tx) => {
        if (spec.Ingress === true) {
          const other = tx.find('network').find((n) => n.Spec.Ingress === true);
          if (other !== undefined) throw new ControlError('ERR_CONTROL_EXISTS', `ingress network ${other.Spec.Name} (${other.ID}) is already present; only one ingress network is allowed`);
        }
        let fields;
        try {
          fields = AllocationState.networksFrom(tx).allocateNetwork(spec.Name, spec);
        } catch (err) {
          if (err instanceof AllocatorError) throw invalid(err.message);
          throw err;
        }
        return tx.create('network', { Spec: spec, ...fields });
      });
      return this.committed('network', result.ID, version);
    });
    this.networkCreates = run.catch(() => undefined);
    return await run;
  }

  /** Labels only: a network's addressing and driver cannot change under attached tasks. */
  async updateNetwork(ref: string, version: number, specInput: unknown): Promise<Network> {
    checkVersion(version);
    const cur = this.lookup('network', ref);
    const spec = validateNetworkSpec(specInput);
    const { Labels: _a, ...was } = cur.Spec;
    const { Labels: _b, ...now } = spec;
    if (JSON.stringify(was) !== JSON.stringify(now)) throw invalid(`only updates to Labels are allowed (network ${cur.Spec.Name}'s other fields cannot change)`);
    const { version: v } = await this.commit('update network', (tx) => {
      const obj = tx.get('network', cur.ID) ?? cur;
      return tx.update('network', { ...obj, Version: { Index: version }, Spec: { ...obj.Spec, Labels: spec.Labels ?? {} } });
    });
    return this.committed('network', cur.ID, v);
  }

  async removeNetwork(ref: string): Promise<void> {
    const cur = this.lookup('network', ref);
    await this.commit('remove network', (tx) => {
      const services = tx.find('service', byReferencedNetwork(cur.ID));
      const byName = tx.find('service').filter((s) => [...(s.Spec.TaskTemplate.Networks ?? []), ...(s.Spec.Networks ?? [])].some((n) => n.Target === cur.Spec.Name));
      const users = [...new Map([...services, ...byName].map((s) => [s.ID, s])).values()];
      if (users.length > 0) throw precondition(`network ${cur.Spec.Name} is in use by service ${users.map((s) => s.Spec.Name).join(', ')}`);
      if (cur.Spec.Ingress === true) {
        const meshUser = tx.find('service').find((s) => needsIngress(s.Spec.EndpointSpec?.Ports));
        if (meshUser !== undefined) throw precondition(`ingress network cannot be removed because service ${meshUser.Spec.Name} depends on it (it publishes ports in ingress mode)`);
      }
      // A task holds its address until it is observed stopped (its endpoint is gone from its node).
      const task = tx.find('task').find((t) => t.NetworksAttachments?.some((a) => a.Network.ID === cur.ID) === true && isAlive(t));
      if (task !== undefined) throw precondition(`network ${cur.Spec.Name} is in use by task ${task.ID}`);
      tx.delete('network', cur.ID);
    });
  }

  // ------------------------------------------------------------------------------- cluster

  /** The cluster (swarm inspect), without the CA key, the unlock key or the removed list. `ref` defaults to the one cluster. */
  getCluster(ref?: string): StoredCluster {
    return redactCluster(this.rawCluster(ref));
  }

  listClusters(): StoredCluster[] {
    return this.store.find('cluster').map((c) => redactCluster(c as StoredCluster));
  }

  private rawCluster(ref?: string): StoredCluster {
    if (ref !== undefined && ref !== '') return this.lookup('cluster', ref) as StoredCluster;
    const c = this.store.find('cluster')[0];
    if (c === undefined) throw new ControlError('ERR_CONTROL_NOT_FOUND', 'cluster not found: this manager holds no Cluster object yet (swarm init has not completed)');
    return c as StoredCluster;
  }

  /** `swarm unlock-key`: the key, or "" when autolock is off. */
  getUnlockKey(): { readonly unlockKey: string; readonly version: number } {
    const c = this.rawCluster();
    return { unlockKey: c.ManagerUnlockKey ?? '', version: c.Version.Index };
  }

  /**
   * `swarm update` (the whole SwarmSpec at the version read) and `join-token --rotate`,
   * `unlock-key --rotate`. Autolock on → an unlock key exists (made now if it did not); off →
   * none. Certificate expiry and join tokens change in the CA data through the CA seam.
   */
  async updateCluster(ref: string | undefined, version: number, specInput: unknown, rotate: ClusterRotation = {}): Promise<StoredCluster> {
    checkVersion(version);
    const spec = validateSwarmSpec(specInput);
    const cur = this.rawCluster(ref);
    if (cur.Version.Index !== version) throw toControlError(new SequenceConflictError('cluster', cur.ID, version, cur.Version.Index));
    const autolock = spec.EncryptionConfig?.AutoLockManagers === true;
    if (rotate.unlockKey === true && !autolock) {
      throw precondition('cannot rotate the unlock key: autolock is not enabled (turn it on with swarm update --autolock=true)');
    }
    let unlockKey: string | undefined = cur.ManagerUnlockKey;
    if (!autolock) unlockKey = undefined;
    else if (unlockKey === undefined || unlockKey === '' || rotate.unlockKey === true) unlockKey = this.newUnlockKey();

    const expiryNs = spec.CAConfig?.NodeCertExpiry;
    const curExpiryNs = cur.Spec.CAConfig?.NodeCertExpiry;
    const expiryChanged = expiryNs !== undefined && expiryNs !== 0 && expiryNs !== curExpiryNs;
    let ca: CAChangeResult | undefined;
    // `swarm ca --rotate` increments ForceRotate: the new root is made in this same write (docker's CLI then watches it).
    const forceRotate = spec.CAConfig?.ForceRotate ?? 0;
    const rotateRoot = forceRotate > (cur.Spec.CAConfig?.ForceRotate ?? 0);
    if (rotate.workerToken === true || rotate.managerToken === true || expiryChanged || rotateRoot) {
      if (cur.ShoalCA === undefined) throw precondition("this cluster's CA data is not in the store; join tokens and certificate expiry cannot change");
      ca = await this.ca.apply(cur.ShoalCA, {
        rotateWorkerToken: rotate.workerToken === true,
        rotateManagerToken: rotate.managerToken === true,
        ...(expiryChanged ? { certExpiryMs: Math.round(expiryNs / 1e6) } : {}),
        ...(rotateRoot ? { forceRotate } : {}),
      });
    }
    const { version: v } = await this.commit('update cluster', (tx) => {
      const now = (tx.get('cluster', cur.ID) as StoredCluster | undefined) ?? cur;
      const { ManagerUnlockKey: _k, ...rest } = now;
      const next: StoredCluster = {
        ...rest,
        Version: { Index: version },
        Spec: spec,
        ...(unlockKey !== undefined ? { ManagerUnlockKey: unlockKey } : {}),
        ...(ca !== undefined ? { ShoalCA: ca.caData, JoinTokens: ca.joinTokens, ...ca.cluster } : {}),
      };
      return tx.update('cluster', next);
    });
    this.log.info({ version: v, autolock, rotated: rotate }, 'cluster updated');
    return redactCluster(this.committed('cluster', cur.ID, v) as StoredCluster);
  }
}
