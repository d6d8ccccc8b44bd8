// Docker API shapes built from the store's objects: the Swarm object (with the complete effective
// spec the docker CLI posts back), `/info`'s ClusterInfo, networks in the `/networks` shape,
// Docker's network-create body as a swarm NetworkSpec, service defaults and ServiceStatus.
import type { StoredCluster } from '../../../manager/controlapi/seams.js';
import type { Network, Service, Task } from '../../../manager/store/index.js';
import { InvalidArgumentError } from '../api/errors.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** dockerd's defaults for a swarm spec (swarmkit's DefaultClusterSpec as the API shows it). */
export const DEFAULT_SWARM_SPEC: Obj = {
  Name: 'default',
  Labels: {},
  Orchestration: { TaskHistoryRetentionLimit: 5 },
  Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
  Dispatcher: { HeartbeatPeriod: 5_000_000_000 },
  CAConfig: { NodeCertExpiry: 7_776_000_000_000_000 },
  TaskDefaults: {},
  EncryptionConfig: { AutoLockManagers: false },
};

/** `base` with every field of `over` that is not a zero value (dockerd's MergeSwarmSpecToGRPC for init). */
export function mergeNonZero(base: Obj, over: unknown): Obj {
  if (!isObj(over)) return base;
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null || v === undefined || v === 0 || v === '' || v === false) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (isObj(v)) {
      const merged = mergeNonZero(isObj(base[k]) ? base[k] : {}, v);
      if (Object.keys(merged).length > 0 || isObj(base[k])) out[k] = merged;
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** The stored spec with the defaults under it, so fields nobody set still read as dockerd's. */
export function effectiveSpec(spec: unknown): Obj {
  const s = isObj(spec) ? spec : {};
  const out: Obj = { ...DEFAULT_SWARM_SPEC, ...s };
  for (const [k, v] of Object.entries(DEFAULT_SWARM_SPEC)) {
    if (isObj(v)) out[k] = { ...v, ...(isObj(s[k]) ? s[k] : {}) };
  }
  return out;
}

/** `GET /swarm`. */
export function swarmObject(c: StoredCluster): Obj {
  return {
    ID: c.ID,
    Version: c.Version,
    CreatedAt: c.CreatedAt,
    UpdatedAt: c.UpdatedAt,
    Spec: effectiveSpec(c.Spec),
    TLSInfo: c.TLSInfo ?? { TrustRoot: '', CertIssuerSubject: '', CertIssuerPublicKey: '' },
    RootRotationInProgress: c.RootRotationInProgress ?? false,
    DefaultAddrPool: c.DefaultAddrPool ?? ['10.0.0.0/8'],
    SubnetSize: c.SubnetSize ?? 24,
    DataPathPort: c.DataPathPort ?? 4789,
    JoinTokens: c.JoinTokens ?? { Worker: '', Manager: '' },
  };
}

/** `/info` `.Swarm.Cluster`: the Swarm object without JoinTokens. */
export function clusterInfo(c: StoredCluster): Obj {
  const { JoinTokens: _tokens, ...rest } = swarmObject(c);
  return rest;
}

/** A swarm network in the `/networks` shape (Docker's NetworkResource). */
export function networkResource(n: Network): Obj {
  const driver = n.DriverState?.Name ?? n.Spec.DriverConfiguration?.Name ?? 'overlay';
  const ipam = n.IPAMOptions ?? n.Spec.IPAMOptions;
  return {
    Name: n.Spec.Name,
    Id: n.ID,
    Created: n.CreatedAt,
    Scope: 'swarm',
    Driver: driver === '' ? 'overlay' : driver,
    EnableIPv6: false,
    IPAM: {
      Driver: ipam?.Driver?.Name ?? 'default',
      Options: ipam?.Driver?.Options ?? null,
      // Docker's IPAMConfig field order: Subnet, IPRange, Gateway.
      Config: (ipam?.Configs ?? []).map(({ Subnet: subnet, Range: range, Gateway: gateway, ...rest }) => ({
        ...(subnet !== undefined ? { Subnet: subnet } : {}),
        ...(range !== undefined && range !== '' ? { IPRange: range } : {}),
        ...(gateway !== undefined ? { Gateway: gateway } : {}),
        ...rest,
      })),
    },
    Internal: n.Spec.Internal ?? false,
    Attachable: n.Spec.Attachable ?? false,
    Ingress: n.Spec.Ingress ?? false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: null,
    Options: n.DriverState?.Options ?? n.Spec.DriverConfiguration?.Options ?? {},
    Labels: n.Spec.Labels ?? {},
  };
}

/** Docker's `POST /networks/create` body → a swarm NetworkSpec (validation is the ControlApi's). */
export function networkSpecOf(body: unknown): Obj {
  if (!isObj(body)) throw new InvalidArgumentError('network create needs a JSON body with Name and Driver');
  const name = body['Name'];
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('network name must be provided');
  const ipam = isObj(body['IPAM']) ? body['IPAM'] : {};
  // Docker's IPAMConfig says `IPRange`; swarm's says `Range`.
  const configs = (Array.isArray(ipam['Config']) ? ipam['Config'] : []).map((c: unknown) => {
    if (!isObj(c)) return c;
    const { IPRange: range, AuxiliaryAddresses: _aux, ...rest } = c;
    return typeof range === 'string' && range !== '' ? { ...rest, Range: range } : rest;
  });
  const driver = typeof body['Driver'] === 'string' && body['Driver'] !== '' ? body['Driver'] : 'overlay';
  return {
    Name: name,
    Labels: isObj(body['Labels']) ? body['Labels'] : {},
    DriverConfiguration: { Name: driver, ...(isObj(body['Options']) && Object.keys(body['Options']).length > 0 ? { Options: body['Options'] } : {}) },
    ...(body['Internal'] === true ? { Internal: true } : {}),
    ...(body['Attachable'] === true ? { Attachable: true } : {}),
    ...(body['Ingress'] === true ? { Ingress: true } : {}),
    ...(body['EnableIPv6'] === true ? { IPv6Enabled: true } : {}),
    ...(isObj(body['ConfigFrom']) && body['ConfigFrom']['Network'] ? { ConfigFrom: body['ConfigFrom'] } : {}),
    IPAMOptions: {
      Driver: { Name: typeof ipam['Driver'] === 'string' && ipam['Driver'] !== '' ? ipam['Driver'] : 'default', ...(isObj(ipam['Options']) && Object.keys(ipam['Options']).length > 0 ? { Options: ipam['Options'] } : {}) },
      ...(configs.length > 0 ? { Configs: configs } : {}),
    },
  };
}

const UPDATE_DEFAULTS = { Parallelism: 1, FailureAction: 'pause', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'stop-first' };
const ROLLBACK_DEFAULTS = { Parallelism: 1, FailureAction: 'pause', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'stop-first' };

/** `?insertDefaults=true`: UpdateConfig/RollbackConfig filled as dockerd does. */
export function withServiceDefaults(s: Service): Service {
  const spec = s.Spec as unknown as Obj;
  return {
    ...s,
    Spec: {
      ...spec,
      UpdateConfig: { ...UPDATE_DEFAULTS, ...(isObj(spec['UpdateConfig']) ? spec['UpdateConfig'] : {}) },
      RollbackConfig: { ...ROLLBACK_DEFAULTS, ...(isObj(spec['RollbackConfig']) ? spec['RollbackConfig'] : {}) },
    },
  } as unknown as Service;
}

/** Docker's ServiceStatus for `GET /services?status=true`. */
export function serviceStatus(s: Service, tasks: readonly Task[], activeNodes: number): Obj {
  const mode = (s.Spec as unknown as Obj)['Mode'];
  const m = isObj(mode) ? mode : { Replicated: {} };
  const mine = tasks.filter((t) => t.ServiceID === s.ID);
  const running = mine.filter((t) => t.Status?.State === 'running' && t.DesiredState === 'running').length;
  const completed = mine.filter((t) => t.Status?.State === 'complete').length;
  let desired: number;
  if (isObj(m['Replicated'])) desired = typeof m['Replicated']['Replicas'] === 'number' ? m['Replicated']['Replicas'] : 1;
  else if (isObj(m['ReplicatedJob'])) desired = typeof m['ReplicatedJob']['MaxConcurrent'] === 'number' ? m['ReplicatedJob']['MaxConcurrent'] : 1;
  else if (isObj(m['Global'])) desired = mine.filter((t) => t.DesiredState === 'running').length || activeNodes;
  else desired = mine.filter((t) => t.DesiredState === 'running' || t.DesiredState === 'complete').length;
  return { RunningTasks: running, DesiredTasks: desired, CompletedTasks: completed };
}
