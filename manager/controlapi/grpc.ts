// The Control gRPC service: a thin layer that decodes a request, calls ControlApi, and encodes
// the answer (Docker's JSON in *_json, meta and annotations in the typed fields). Errors become
// gRPC statuses through toGrpcStatus (the ControlErrorCode rides in metadata so a forwarding
// manager can rebuild the exact error). Authorization (OU swarm-manager) happened before any of
// this, in proto/grpc/authz.ts.
import type * as grpc from '@grpc/grpc-js';

import { ControlService, type ControlServer } from '../../proto/gen/shoal/control.js';
import {
  Cluster as PbCluster,
  Config as PbConfig,
  Network as PbNetwork,
  Node as PbNode,
  NodeRole as PbNodeRole,
  Secret as PbSecret,
  Service as PbService,
  Task as PbTask,
  TaskState as PbTaskState,
} from '../../proto/gen/shoal/types.js';
import type { Labels, Node, NodeRole, StoreObject, Task, TaskState } from '../store/index.js';
import { ControlApi, type ControlDeps, type ListFilters } from './control-api.js';
import { invalid, toGrpcStatus } from './errors.js';

interface PbFilters {
  readonly names?: readonly string[];
  readonly idPrefixes?: readonly string[];
  readonly labels?: { readonly [key: string]: string };
  readonly namePrefixes?: readonly string[];
}

function filtersOf(f: PbFilters | undefined): ListFilters {
  if (f === undefined) return {};
  return {
    ...(f.names !== undefined && f.names.length > 0 ? { names: f.names } : {}),
    ...(f.namePrefixes !== undefined && f.namePrefixes.length > 0 ? { namePrefixes: f.namePrefixes } : {}),
    ...(f.idPrefixes !== undefined && f.idPrefixes.length > 0 ? { idPrefixes: f.idPrefixes } : {}),
    ...(f.labels !== undefined && Object.keys(f.labels).length > 0 ? { labels: f.labels } : {}),
  };
}

function specJson(text: string): unknown {
  if (text === '') throw invalid("spec_json is required: send the spec in Docker's JSON shape (the typed spec field is not read)");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalid(`spec_json is not valid JSON: ${(err as Error).message}`);
  }
}

function ms(iso: string | undefined): number {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}

function meta(o: StoreObject): { id: string; version: number; createdAtUnixMs: number; updatedAtUnixMs: number } {
  return { id: o.ID, version: o.Version.Index, createdAtUnixMs: ms(o.CreatedAt), updatedAtUnixMs: ms(o.UpdatedAt) };
}

function annotations(name: string | undefined, labels: Labels | undefined): { name: string; labels: { [key: string]: string } } {
  return { name: name ?? '', labels: { ...(labels ?? {}) } };
}

const TASK_STATE_TO_PB: Readonly<Record<string, PbTaskState>> = Object.fromEntries(
  Object.entries(PbTaskState)
    .filter(([k, v]) => typeof v === 'number' && k.startsWith('TASK_STATE_'))
    .map(([k, v]) => [k.slice('TASK_STATE_'.length).toLowerCase(), v as PbTaskState]),
);

function taskStateFromPb(s: PbTaskState): TaskState {
  const name = Object.entries(TASK_STATE_TO_PB).find(([, v]) => v === s)?.[0];
  if (name === undefined) throw invalid(`unknown task state ${s} in desired_states`);
  return name as TaskState;
}

function roleFromPb(r: PbNodeRole): NodeRole {
  if (r === PbNodeRole.NODE_ROLE_MANAGER) return 'manager';
  if (r === PbNodeRole.NODE_ROLE_WORKER) return 'worker';
  throw invalid(`unknown node role ${r} in roles (use NODE_ROLE_WORKER or NODE_ROLE_MANAGER)`);
}

const pbNode = (n: Node): PbNode =>
  PbNode.fromPartial({
    meta: meta(n),
    spec: { annotations: annotations(n.Spec.Name, n.Spec.Labels), desiredRole: n.Spec.Role === 'manager' ? PbNodeRole.NODE_ROLE_MANAGER : PbNodeRole.NODE_ROLE_WORKER },
    addr: n.Status.Addr ?? '',
  });
const pbTask = (t: Task): PbTask =>
  PbTask.fromPartial({ meta: meta(t), serviceId: t.ServiceID, slot: t.Slot, nodeId: t.NodeID, desiredState: TASK_STATE_TO_PB[t.DesiredState] ?? PbTaskState.TASK_STATE_NEW });
type Named = StoreObject & { readonly Spec: { readonly Name?: string; readonly Labels?: Labels } };
const withAnnotations = (o: Named): { meta: ReturnType<typeof meta>; spec: { annotations: ReturnType<typeof annotations> } } => ({
  meta: meta(o),
  spec: { annotations: annotations(o.Spec.Name, o.Spec.Labels) },
});

/** Runs `fn` and answers through the callback; any throw becomes a gRPC status. */
function unary<Req, Res>(fn: (req: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toGrpcStatus(err), null),
      );
  };
}

const json = (o: unknown): string => JSON.stringify(o);

export function controlServiceImplementation(api: ControlApi): ControlServer {
  return {
    getNode: unary((r) => {
      const n = api.getNode(r.nodeId);
      return { node: pbNode(n), nodeJson: json(n) };
    }),
    listNodes: unary((r) => {
      const nodes = api.listNodes({ ...filtersOf(r.filters), ...(r.filters !== undefined && r.filters.roles.length > 0 ? { roles: r.filters.roles.map(roleFromPb) } : {}) });
      return { nodes: nodes.map(pbNode), nodesJson: json(nodes) };
    }),
    updateNode: unary(async (r) => {
      const n = await api.updateNode(r.nodeId, r.nodeVersion, specJson(r.specJson));
      return { node: pbNode(n), nodeJson: json(n) };
    }),
    removeNode: unary(async (r) => {
      await api.removeNode(r.nodeId, { force: r.force });
      return {};
    }),

    getService: unary((r) => {
      const s = api.getService(r.serviceId);
      return { service: PbService.fromPartial(withAnnotations(s)), serviceJson: json(s) };
    }),
    listServices: unary((r) => {
      const list = api.listServices(filtersOf(r.filters));
      return { services: list.map((s) => PbService.fromPartial(withAnnotations(s))), servicesJson: json(list) };
    }),
    createService: unary(async (r) => {
      const s = await api.createService(specJson(r.specJson));
      return { service: PbService.fromPartial(withAnnotations(s)), serviceJson: json(s) };
    }),
    updateService: unary(async (r) => {
      const s = await api.updateService(r.serviceId, r.serviceVersion, r.rollback ? undefined : specJson(r.specJson), { rollback: r.rollback });
      return { service: PbService.fromPartial(withAnnotations(s)), serviceJson: json(s) };
    }),
    removeService: unary(async (r) => {
      await api.removeService(r.serviceId);
      return {};
    }),

    getTask: unary((r) => {
      const t = api.getTask(r.taskId);
      return { task: pbTask(t), taskJson: json(t) };
    }),
    listTasks: unary((r) => {
      const f = r.filters;
      const tasks = api.listTasks({
        ...filtersOf(f),
        ...(f !== undefined && f.serviceIds.length > 0 ? { serviceIds: f.serviceIds } : {}),
        ...(f !== undefined && f.nodeIds.length > 0 ? { nodeIds: f.nodeIds } : {}),
        ...(f !== undefined && f.desiredStates.length > 0 ? { desiredStates: f.desiredStates.map(taskStateFromPb) } : {}),
      });
      return { tasks: tasks.map(pbTask), tasksJson: json(tasks) };
    }),
    removeTask: unary(async (r) => {
      await api.removeTask(r.taskId);
      return {};
    }),

    getNetwork: unary((r) => {
      const n = api.getNetwork(r.networkId);
      return { network: PbNetwork.fromPartial(withAnnotations(n)), networkJson: json(n) };
    }),
    listNetworks: unary((r) => {
      const list = api.listNetworks(filtersOf(r.filters));
      return { networks: list.map((n) => PbNetwork.fromPartial(withAnnotations(n))), networksJson: json(list) };
    }),
    createNetwork: unary(async (r) => {
      const n = await api.createNetwork(specJson(r.specJson));
      return { network: PbNetwork.fromPartial(withAnnotations(n)), networkJson: json(n) };
    }),
    updateNetwork: unary(async (r) => {
      const n = await api.updateNetwork(r.networkId, r.networkVersion, specJson(r.specJson));
      return { network: PbNetwork.fromPartial(withAnnotations(n)), networkJson: json(n) };
    }),
    removeNetwork: unary(async (r) => {
      await api.removeNetwork(r.networkId);
      return {};
    }),

    getSecret: unary((r) => {
      const s = api.getSecret(r.secretId);
      return { secret: PbSecret.fromPartial(withAnnotations(s)), secretJson: json(s) };
    }),
    listSecrets: unary((r) => {
      const list = api.listSecrets(filtersOf(r.filters));
      return { secrets: list.map((s) => PbSecret.fromPartial(withAnnotations(s))), secretsJson: json(list) };
    }),
    createSecret: unary(async (r) => {
      const s = await api.createSecret(specJson(r.specJson));
      return { secret: PbSecret.fromPartial(withAnnotations(s)), secretJson: json(s) };
    }),
    updateSecret: unary(async (r) => {
      const s = await api.updateSecret(r.secretId, r.secretVersion, specJson(r.specJson));
      return { secret: PbSecret.fromPartial(withAnnotations(s)), secretJson: json(s) };
    }),
    removeSecret: unary(async (r) => {
      await api.removeSecret(r.secretId);
      return {};
    }),

    getConfig: unary((r) => {
      const c = api.getConfig(r.configId);
      return { config: PbConfig.fromPartial(withAnnotations(c)), configJson: json(c) };
    }),
    listConfigs: unary((r) => {
      const list = api.listConfigs(filtersOf(r.filters));
      return { configs: list.map((c) => PbConfig.fromPartial(withAnnotations(c))), configsJson: json(list) };
    }),
    createConfig: unary(async (r) => {
      const c = await api.createConfig(specJson(r.specJson));
      return { config: PbConfig.fromPartial(withAnnotations(c)), configJson: json(c) };
    }),
    updateConfig: unary(async (r) => {
      const c = await api.updateConfig(r.configId, r.configVersion, specJson(r.specJson));
      return { config: PbConfig.fromPartial(withAnnotations(c)), configJson: json(c) };
    }),
    removeConfig: unary(async (r) => {
      await api.removeConfig(r.configId);
      return {};
    }),

    getCluster: unary((r) => {
      const c = api.getCluster(r.clusterId);
      return { cluster: PbCluster.fromPartial(withAnnotations(c)), clusterJson: json(c) };
    }),
    listClusters: unary(() => {
      const list = api.listClusters();
      return { clusters: list.map((c) => PbCluster.fromPartial(withAnnotations(c))), clustersJson: json(list) };
    }),
    updateCluster: unary(async (r) => {
      const c = await api.updateCluster(r.clusterId, r.clusterVersion, specJson(r.specJson), {
        workerToken: r.rotateWorkerToken,
        managerToken: r.rotateManagerToken,
        unlockKey: r.rotateManagerUnlockKey,
      });
      return { cluster: PbCluster.fromPartial(withAnnotations(c)), clusterJson: json(c) };
    }),
    getUnlockKey: unary(() => api.getUnlockKey()),
  };
}

/** Adds the Control service to a cluster server (createClusterServer's `.server`); returns the ControlApi it serves. */
export function registerControl(server: grpc.Server, deps: ControlDeps | ControlApi): ControlApi {
  const api = deps instanceof ControlApi ? deps : new ControlApi(deps);
  server.addService(ControlService, controlServiceImplementation(api));
  return api;
}

/** For the manager runtime's `ServiceSeam`: the definition and implementation to serve. */
export function controlRegistration(api: ControlApi): { readonly definition: grpc.ServiceDefinition; readonly implementation: grpc.UntypedServiceImplementation } {
  return { definition: ControlService, implementation: controlServiceImplementation(api) };
}
