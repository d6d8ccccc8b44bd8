// Spec validation: pure functions of the spec a caller sent (parsed JSON, so `unknown`), each
// returning the spec typed (and, where dockerd does so, with defaults filled in) or throwing an
// InvalidArgument ControlError whose message names the field and what is wrong with it.
//
// Specs are stored verbatim (fields this file does not name survive round trips, as the docker
// CLI needs), so only the top level of each spec, the service mode and the enums are closed sets.
// Checks that need the store (port conflicts, references, mode changes) live in control-api.ts.
import { isIP } from 'node:net';

import { validateOverlayOptions } from '../../overlay/spec.js';
import { validatePlacement } from '../../scheduler/validate.js';
import type { TaskSpec as SchedulerTaskSpec } from '../../scheduler/types.js';
import type {
  ConfigSpec,
  Labels,
  NetworkSpec,
  NodeSpec,
  PortConfig,
  SecretSpec,
  ServiceMode,
  ServiceSpec,
  SwarmSpec,
  TaskSpec,
  UpdateConfig,
} from '../store/index.js';
import { invalid } from './errors.js';
import { checkName, isValidImageReference } from './names.js';

/** swarmkit's MaxSecretSize: data must be 1 … 500 KiB - 1 bytes. */
export const MAX_SECRET_BYTES = 500 * 1024;
/** swarmkit's MaxConfigSize. */
export const MAX_CONFIG_BYTES = 1000 * 1024;
/** swarmkit's ca.MinNodeCertExpiration, in Docker's unit (nanoseconds). */
export const MIN_NODE_CERT_EXPIRY_NS = 3600 * 1e9;
const MIN_NANO_CPUS = 1e6;
const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

type Obj = Readonly<Record<string, unknown>>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(v: unknown, what: string): Obj {
  if (!isObj(v)) throw invalid(`${what} must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  return v;
}

function optObject(v: unknown, what: string): Obj | undefined {
  return v === undefined || v === null ? undefined : object(v, what);
}

function closedKeys(o: Obj, what: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw invalid(`unknown field ${what}.${k} (known fields: ${known.join(', ')})`);
  }
}

function labels(v: unknown, what: string): Labels | undefined {
  if (v === undefined || v === null) return undefined;
  const o = object(v, what);
  for (const [k, val] of Object.entries(o)) {
    if (typeof val !== 'string') throw invalid(`${what}[${JSON.stringify(k)}] must be a string, got ${typeof val}`);
    if (k === '') throw invalid(`${what} has an empty label name`);
  }
  return o as Labels;
}

function wholeNumber(v: unknown, what: string, min = 0): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(`${what} must be a whole number, got ${JSON.stringify(v)}`);
  if (v < min) throw invalid(`${what} must be ≥ ${min}, got ${v}`);
  return v;
}

/** Durations are integer nanoseconds (Docker's JSON); negative ones refused with swarmkit's words. */
function duration(v: unknown, what: string, negativeMessage?: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(`${what} must be a whole number of nanoseconds, got ${JSON.stringify(v)}`);
  if (v < 0) throw invalid(negativeMessage === undefined ? `${what} cannot be negative, got ${v}` : `${negativeMessage} (${what} = ${v})`);
  return v;
}

function oneOf<T extends string>(v: unknown, what: string, allowed: readonly T[], allowEmpty = false): T | undefined {
  if (v === undefined || v === null || (allowEmpty && v === '')) return undefined;
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw invalid(`invalid ${what} ${JSON.stringify(v)}: must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

function stringArray(v: unknown, what: string): readonly string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw invalid(`${what} must be an array of strings`);
  return v as string[];
}

// ------------------------------------------------------------------------------ services

const SERVICE_SPEC_FIELDS = ['Name', 'Labels', 'TaskTemplate', 'Mode', 'UpdateConfig', 'RollbackConfig', 'Networks', 'EndpointSpec'] as const;
const TASK_SPEC_FIELDS = [
  'ContainerSpec',
  'PluginSpec',
  'NetworkAttachmentSpec',
  'Resources',
  'RestartPolicy',
  'Placement',
  'Networks',
  'LogDriver',
  'ForceUpdate',
  'Runtime',
] as const;
const MODES = ['Replicated', 'Global', 'ReplicatedJob', 'GlobalJob'] as const;
const MOUNT_TYPES = ['bind', 'volume', 'tmpfs', 'npipe', 'cluster'] as const;

/** The service spec as it will be stored: validated, with dockerd's defaults for Mode. */
export function validateServiceSpec(input: unknown): ServiceSpec {
  const spec = object(input, 'service spec');
  closedKeys(spec, 'ServiceSpec', SERVICE_SPEC_FIELDS);
  checkName('service', spec['Name']);
  labels(spec['Labels'], 'Labels');
  const task = validateTaskSpec(spec['TaskTemplate']);
  const mode = validateMode(spec['Mode']);
  validateUpdateConfig(spec['UpdateConfig'], 'UpdateConfig');
  validateUpdateConfig(spec['RollbackConfig'], 'RollbackConfig');
  validateNetworkAttachments(spec['Networks'], 'Networks');
  validateEndpointSpec(spec['EndpointSpec']);
  return { ...(spec as unknown as ServiceSpec), TaskTemplate: task, Mode: mode };
}

function validateMode(input: unknown): ServiceMode {
  if (input === undefined || input === null) return { Replicated: { Replicas: 1 } };
  const mode = object(input, 'Mode');
  const keys = Object.keys(mode).filter((k) => mode[k] !== undefined && mode[k] !== null);
  for (const k of keys) {
    if (!(MODES as readonly string[]).includes(k)) throw invalid(`unknown service mode ${JSON.stringify(k)}: use one of ${MODES.join(', ')}`);
  }
  if (keys.length === 0) return { ...mode, Replicated: { Replicas: 1 } } as ServiceMode;
  if (keys.length > 1) throw invalid(`a service has exactly one mode, got ${keys.join(' and ')}`);
  const rep = optObject(mode['Replicated'], 'Mode.Replicated');
  if (rep !== undefined) {
    const replicas = wholeNumber(rep['Replicas'], 'Mode.Replicated.Replicas');
    return { ...mode, Replicated: { ...rep, Replicas: replicas ?? 1 } } as ServiceMode;
  }
  const job = optObject(mode['ReplicatedJob'], 'Mode.ReplicatedJob');
  if (job !== undefined) {
    wholeNumber(job['MaxConcurrent'], 'Mode.ReplicatedJob.MaxConcurrent');
    wholeNumber(job['TotalCompletions'], 'Mode.ReplicatedJob.TotalCompletions');
  }
  optObject(mode['Global'], 'Mode.Global');
  optObject(mode['GlobalJob'], 'Mode.GlobalJob');
  return mode as ServiceMode;
}

/** "replicated" | "global" | …: what a mode change compares. */
export function modeKind(mode: ServiceMode | undefined): string {
  if (mode === undefined) return 'Replicated';
  return MODES.find((m) => mode[m] !== undefined && mode[m] !== null) ?? 'Replicated';
}

function validateTaskSpec(input: unknown): TaskSpec {
  if (input === undefined || input === null) throw invalid('TaskSpec: missing runtime (the service spec has no TaskTemplate)');
  const task = object(input, 'TaskTemplate');
  closedKeys(task, 'TaskTemplate', TASK_SPEC_FIELDS);
  if (task['PluginSpec'] !== undefined && task['PluginSpec'] !== null) throw invalid('RuntimeSpec: plugin services are not supported (TaskTemplate.PluginSpec)');
  if (task['NetworkAttachmentSpec'] !== undefined && task['NetworkAttachmentSpec'] !== null) {
    throw invalid('RuntimeSpec: TaskTemplate.NetworkAttachmentSpec is for attachment tasks, not services');
  }
  const c = task['ContainerSpec'];
  if (c === undefined || c === null) throw invalid('ContainerSpec: missing in service spec (TaskTemplate.ContainerSpec)');
  const container = object(c, 'TaskTemplate.ContainerSpec');
  const image = container['Image'];
  if (image === undefined || image === null || image === '') throw invalid('ContainerSpec: image reference must be provided (TaskTemplate.ContainerSpec.Image is empty)');
  if (typeof image !== 'string' || !isValidImageReference(image)) throw invalid(`ContainerSpec: ${JSON.stringify(image)} is not a valid repository/tag`);
  stringArray(container['Command'], 'TaskTemplate.ContainerSpec.Command');
  stringArray(container['Args'], 'TaskTemplate.ContainerSpec.Args');
  const env = stringArray(container['Env'], 'TaskTemplate.ContainerSpec.Env');
  for (const e of env ?? []) if (e === '' || e.startsWith('=')) throw invalid(`TaskTemplate.ContainerSpec.Env: invalid entry ${JSON.stringify(e)} (want NAME=value)`);
  labels(container['Labels'], 'TaskTemplate.ContainerSpec.Labels');
  duration(container['StopGracePeriod'], 'TaskTemplate.ContainerSpec.StopGracePeriod');
  validateMounts(container['Mounts']);
  validateReferences(container['Secrets'], 'Secrets', 'SecretID', 'SecretName');
  validateReferences(container['Configs'], 'Configs', 'ConfigID', 'ConfigName');
  const resources = optObject(task['Resources'], 'TaskTemplate.Resources');
  if (resources !== undefined) {
    validateResources(resources['Limits'], 'Limits');
    validateResources(resources['Reservations'], 'Reservations');
  }
  const restart = optObject(task['RestartPolicy'], 'TaskTemplate.RestartPolicy');
  if (restart !== undefined) {
    oneOf(restart['Condition'], 'restart condition (TaskTemplate.RestartPolicy.Condition)', ['none', 'on-failure', 'any'], true);
    duration(restart['Delay'], 'TaskTemplate.RestartPolicy.Delay', 'TaskSpec: restart-delay cannot be negative');
    duration(restart['Window'], 'TaskTemplate.RestartPolicy.Window', 'TaskSpec: restart-window cannot be negative');
    wholeNumber(restart['MaxAttempts'], 'TaskTemplate.RestartPolicy.MaxAttempts');
  }
  if (task['Placement'] !== undefined && task['Placement'] !== null) object(task['Placement'], 'TaskTemplate.Placement');
  try {
    validatePlacement(task as unknown as SchedulerTaskSpec);
  } catch (err) {
    throw invalid(`TaskTemplate.Placement: ${(err as Error).message}`);
  }
  validateNetworkAttachments(task['Networks'], 'TaskTemplate.Networks');
  wholeNumber(task['ForceUpdate'], 'TaskTemplate.ForceUpdate');
  return task as unknown as TaskSpec;
}

function validateMounts(input: unknown): void {
  if (input === undefined || input === null) return;
  if (!Array.isArray(input)) throw invalid('TaskTemplate.ContainerSpec.Mounts must be an array');
  const targets = new Set<string>();
  input.forEach((m: unknown, i) => {
    const mount = object(m, `TaskTemplate.ContainerSpec.Mounts[${i}]`);
    oneOf(mount['Type'], `mount type (Mounts[${i}].Type)`, MOUNT_TYPES, true);
    const target = mount['Target'];
    if (typeof target !== 'string' || target === '') throw invalid(`ContainerSpec: mount ${i} has no Target (the path inside the container)`);
    if (targets.has(target)) throw invalid(`ContainerSpec: duplicate mount point: ${target}`);
    targets.add(target);
    if (mount['Type'] === 'bind' && (typeof mount['Source'] !== 'string' || !mount['Source'].startsWith('/'))) {
      throw invalid(`ContainerSpec: bind mount ${target} needs an absolute Source path, got ${JSON.stringify(mount['Source'] ?? '')}`);
    }
  });
}

function validateReferences(input: unknown, field: 'Secrets' | 'Configs', idKey: string, nameKey: string): void {
  if (input === undefined || input === null) return;
  if (!Array.isArray(input)) throw invalid(`TaskTemplate.ContainerSpec.${field} must be an array`);
  const targets = new Map<string, string>();
  input.forEach((r: unknown, i) => {
    const ref = object(r, `TaskTemplate.ContainerSpec.${field}[${i}]`);
    if (typeof ref[idKey] !== 'string' || ref[idKey] === '') throw invalid(`TaskTemplate.ContainerSpec.${field}[${i}]: ${idKey} must be provided`);
    const file = optObject(ref['File'], `TaskTemplate.ContainerSpec.${field}[${i}].File`);
    if (file === undefined) return;
    const target = file['Name'];
    if (typeof target !== 'string' || target === '') throw invalid(`TaskTemplate.ContainerSpec.${field}[${i}].File.Name must be provided`);
    const other = targets.get(target);
    const name = String(ref[nameKey] ?? ref[idKey]);
    if (other !== undefined) {
      const what = field === 'Secrets' ? 'secret' : 'config';
      throw invalid(`${what} references '${other}' and '${name}' have a conflicting target: '${target}'`);
    }
    targets.set(target, name);
  });
}

function validateResources(input: unknown, which: 'Limits' | 'Reservations'): void {
  const r = optObject(input, `TaskTemplate.Resources.${which}`);
  if (r === undefined) return;
  const cpus = wholeNumber(r['NanoCPUs'], `TaskTemplate.Resources.${which}.NanoCPUs`);
  if (cpus !== undefined && cpus !== 0 && cpus < MIN_NANO_CPUS) throw invalid(`invalid cpu value ${cpus / 1e9}: Must be at least ${MIN_NANO_CPUS / 1e9}`);
  const mem = wholeNumber(r['MemoryBytes'], `TaskTemplate.Resources.${which}.MemoryBytes`);
  if (mem !== undefined && mem !== 0 && mem < MIN_MEMORY_BYTES) throw invalid(`invalid memory value ${mem}: Must be at least 4MiB`);
  wholeNumber(r['Pids'], `TaskTemplate.Resources.${which}.Pids`);
}

function validateUpdateConfig(input: unknown, what: 'UpdateConfig' | 'RollbackConfig'): UpdateConfig | undefined {
  const u = optObject(input, what);
  if (u === undefined) return undefined;
  wholeNumber(u['Parallelism'], `${what}.Parallelism`);
  const word = what === 'UpdateConfig' ? 'update' : 'rollback';
  duration(u['Delay'], `${what}.Delay`, `TaskSpec: ${word}-delay cannot be negative`);
  duration(u['Monitor'], `${what}.Monitor`, `TaskSpec: ${word}-monitor cannot be negative`);
  oneOf(u['FailureAction'], `${what}.FailureAction`, ['pause', 'continue', 'rollback'], true);
  oneOf(u['Order'], `${what}.Order`, ['stop-first', 'start-first'], true);
  const ratio = u['MaxFailureRatio'];
  if (ratio !== undefined && ratio !== null && (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1))) {
    throw invalid(`${what}.MaxFailureRatio must be a number between 0 and 1, got ${JSON.stringify(ratio)}`);
  }
  return u as UpdateConfig;
}

function validateNetworkAttachments(input: unknown, what: string): void {
  if (input === undefined || input === null) return;
  if (!Array.isArray(input)) throw invalid(`${what} must be an array`);
  const seen = new Set<string>();
  input.forEach((n: unknown, i) => {
    const att = object(n, `${what}[${i}]`);
    if (typeof att['Target'] !== 'string' || att['Target'] === '') throw invalid(`${what}[${i}].Target must name a network (ID or name)`);
    if (seen.has(att['Target'])) throw invalid(`${what}: network ${att['Target']} is attached twice`);
    seen.add(att['Target']);
    stringArray(att['Aliases'], `${what}[${i}].Aliases`);
  });
}

/** `published/protocol` for a port that takes a port on the routing mesh or the host. */
export function portKey(p: PortConfig): string {
  return `${p.PublishedPort ?? 0}/${p.Protocol ?? 'tcp'}`;
}

function validateEndpointSpec(input: unknown): void {
  const ep = optObject(input, 'EndpointSpec');
  if (ep === undefined) return;
  const mode = oneOf(ep['Mode'], 'endpoint mode (EndpointSpec.Mode)', ['vip', 'dnsrr'], true);
  const ports = ep['Ports'];
  if (ports === undefined || ports === null) return;
  if (!Array.isArray(ports)) throw invalid('EndpointSpec.Ports must be an array');
  const published = new Map<string, number>();
  ports.forEach((p: unknown, i) => {
    const port = object(p, `EndpointSpec.Ports[${i}]`);
    const target = wholeNumber(port['TargetPort'], `EndpointSpec.Ports[${i}].TargetPort`, 1);
    if (target === undefined || target > 65535) throw invalid(`EndpointSpec.Ports[${i}].TargetPort must be 1-65535, got ${JSON.stringify(port['TargetPort'])}`);
    const pub = wholeNumber(port['PublishedPort'], `EndpointSpec.Ports[${i}].PublishedPort`);
    if (pub !== undefined && pub > 65535) throw invalid(`EndpointSpec.Ports[${i}].PublishedPort must be 0-65535, got ${pub}`);
    oneOf(port['Protocol'], `protocol (EndpointSpec.Ports[${i}].Protocol)`, ['tcp', 'udp', 'sctp'], true);
    const publishMode = oneOf(port['PublishMode'], `publish mode (EndpointSpec.Ports[${i}].PublishMode)`, ['ingress', 'host'], true) ?? 'ingress';
    if (mode === 'dnsrr' && publishMode === 'ingress') {
      throw invalid(`EndpointSpec: port published with ingress mode can't be used with dnsrr mode (port ${target})`);
    }
    if (pub === undefined || pub === 0) return;
    const key = portKey(port as unknown as PortConfig);
    const first = published.get(key);
    if (first !== undefined) throw invalid(`EndpointSpec: duplicate published ports provided (${key} in Ports[${first}] and Ports[${i}])`);
    published.set(key, i);
  });
}

// ------------------------------------------------------------------------ secrets, configs

const SECRET_SPEC_FIELDS = ['Name', 'Labels', 'Data', 'Driver', 'Templating'] as const;
const CONFIG_SPEC_FIELDS = ['Name', 'Labels', 'Data', 'Templating'] as const;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** `Data` checked as standard base64 (Docker's JSON encoding of []byte); its decoded size, without decoding it. */
function dataBytes(v: unknown, what: string): { readonly byteLength: number } {
  if (v === undefined || v === null) return { byteLength: 0 };
  if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) throw invalid(`${what}.Data must be standard base64 (Docker's encoding of the content)`);
  const padding = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  return { byteLength: (v.length / 4) * 3 - padding };
}

export function validateSecretSpec(input: unknown): SecretSpec {
  const spec = object(input, 'secret spec');
  closedKeys(spec, 'SecretSpec', SECRET_SPEC_FIELDS);
  checkName('secret', spec['Name']);
  labels(spec['Labels'], 'Labels');
  if (spec['Driver'] !== undefined && spec['Driver'] !== null) {
    throw invalid('secret drivers are not supported by this manager: omit Driver and send the content in Data');
  }
  const data = dataBytes(spec['Data'], 'secret');
  if (data.byteLength < 1 || data.byteLength >= MAX_SECRET_BYTES) {
    throw invalid(`secret data must be larger than 0 and less than ${MAX_SECRET_BYTES} bytes (got ${data.byteLength})`);
  }
  return spec as unknown as SecretSpec;
}

export function validateConfigSpec(input: unknown): ConfigSpec {
  const spec = object(input, 'config spec');
  closedKeys(spec, 'ConfigSpec', CONFIG_SPEC_FIELDS);
  checkName('config', spec['Name']);
  labels(spec['Labels'], 'Labels');
  const data = dataBytes(spec['Data'], 'config');
  if (data.byteLength < 1 || data.byteLength >= MAX_CONFIG_BYTES) {
    throw invalid(`config data must be larger than 0 and less than ${MAX_CONFIG_BYTES} bytes (got ${data.byteLength})`);
  }
  return spec as unknown as ConfigSpec;
}

/** A secret/config update may change Labels only; Data may be repeated (stack deploy does) but not changed. */
export function validateLabelsOnlyUpdate(kind: 'secret' | 'config' | 'network', current: { readonly Name: string; readonly Data?: string }, input: unknown): Labels | undefined {
  const spec = object(input, `${kind} spec`);
  const name = spec['Name'];
  const dataChanged = kind !== 'network' && spec['Data'] !== undefined && spec['Data'] !== null && spec['Data'] !== '' && !sameBytes(String(spec['Data']), current.Data ?? '');
  if ((name !== undefined && name !== current.Name) || dataChanged) {
    throw invalid(`only updates to Labels are allowed${name !== undefined && name !== current.Name ? ` (Name cannot change from ${JSON.stringify(current.Name)})` : ` (${kind} Data cannot change)`}`);
  }
  return labels(spec['Labels'], 'Labels');
}

function sameBytes(a: string, b: string): boolean {
  return Buffer.from(a, 'base64').equals(Buffer.from(b, 'base64'));
}

// ------------------------------------------------------------------------------ networks

const NETWORK_SPEC_FIELDS = [
  'Name',
  'Labels',
  'DriverConfiguration',
  'IPv6Enabled',
  'Internal',
  'Attachable',
  'Ingress',
  'IPAMOptions',
  'ConfigFrom',
  'Scope',
] as const;

export function validateNetworkSpec(input: unknown): NetworkSpec {
  const spec = object(input, 'network spec');
  closedKeys(spec, 'NetworkSpec', NETWORK_SPEC_FIELDS);
  const name = checkName('network', spec['Name']);
  labels(spec['Labels'], 'Labels');
  const driver = optObject(spec['DriverConfiguration'], 'DriverConfiguration');
  const driverName = driver?.['Name'] ?? 'overlay';
  if (driverName !== 'overlay' && driverName !== '') {
    throw invalid(`network driver ${JSON.stringify(driverName)} is not supported for swarm networks: use the overlay driver`);
  }
  const options = labels(driver?.['Options'], 'DriverConfiguration.Options');
  try {
    validateOverlayOptions(name, options);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  if (spec['IPv6Enabled'] === true) throw invalid(`network ${name}: IPv6 overlays are not supported (IPv6Enabled)`);
  if (spec['ConfigFrom'] !== undefined && spec['ConfigFrom'] !== null) throw invalid(`network ${name}: ConfigFrom (config-only networks) is not supported`);
  const ipam = optObject(spec['IPAMOptions'], 'IPAMOptions');
  const configs = ipam?.['Configs'];
  if (configs !== undefined && configs !== null) {
    if (!Array.isArray(configs)) throw invalid('IPAMOptions.Configs must be an array');
    configs.forEach((c: unknown, i) => validateIpamConfig(object(c, `IPAMOptions.Configs[${i}]`), i));
  }
  return spec as unknown as NetworkSpec;
}

function parseCidr(s: string): { base: number; bits: number } | null {
  const [addr, bitsText] = s.split('/');
  if (addr === undefined || bitsText === undefined || isIP(addr) !== 4 || !/^\d+$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > 32) return null;
  return { base: ipv4(addr), bits };
}

function ipv4(a: string): number {
  return a.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inCidr(addr: string, c: { base: number; bits: number }): boolean {
  const size = 2 ** (32 - c.bits);
  return Math.floor(ipv4(addr) / size) === Math.floor(c.base / size);
}

function validateIpamConfig(c: Obj, i: number): void {
  const subnet = c['Subnet'];
  if (subnet === undefined || subnet === '') return;
  const cidr = typeof subnet === 'string' ? parseCidr(subnet) : null;
  if (cidr === null) throw invalid(`IPAMOptions.Configs[${i}].Subnet ${JSON.stringify(subnet)} is not an IPv4 subnet in CIDR form (e.g. 10.0.9.0/24)`);
  if (cidr.bits > 29) throw invalid(`IPAMOptions.Configs[${i}].Subnet ${subnet} is too small: use /29 or larger`);
  for (const key of ['Gateway', 'Range'] as const) {
    const v = c[key];
    if (v === undefined || v === '') continue;
    if (key === 'Gateway' && (typeof v !== 'string' || isIP(v) !== 4 || !inCidr(v, cidr))) {
      throw invalid(`IPAMOptions.Configs[${i}].Gateway ${JSON.stringify(v)} is not an address of ${subnet}`);
    }
    if (key === 'Range') {
      const r = typeof v === 'string' ? parseCidr(v) : null;
      if (r === null || r.bits < cidr.bits || !inCidr(String(v).split('/')[0]!, cidr)) throw invalid(`IPAMOptions.Configs[${i}].Range ${JSON.stringify(v)} is not a subnet of ${subnet}`);
    }
  }
}

// --------------------------------------------------------------------------------- nodes

const NODE_SPEC_FIELDS = ['Name', 'Labels', 'Role', 'Availability'] as const;

export function validateNodeSpec(input: unknown): NodeSpec {
  const spec = object(input, 'node spec');
  closedKeys(spec, 'NodeSpec', NODE_SPEC_FIELDS);
  if (spec['Name'] !== undefined && typeof spec['Name'] !== 'string') throw invalid('node Name must be a string');
  labels(spec['Labels'], 'Labels');
  const role = oneOf(spec['Role'], 'node role (Role)', ['worker', 'manager']);
  if (role === undefined) throw invalid('node Role must be provided (worker or manager)');
  const availability = oneOf(spec['Availability'], 'node availability (Availability)', ['active', 'pause', 'drain']);
  if (availability === undefined) throw invalid('node Availability must be provided (active, pause or drain)');
  return spec as unknown as NodeSpec;
}

// ------------------------------------------------------------------------------- cluster

const SWARM_SPEC_FIELDS = ['Name', 'Labels', 'Orchestration', 'Raft', 'Dispatcher', 'CAConfig', 'TaskDefaults', 'EncryptionConfig'] as const;

export function validateSwarmSpec(input: unknown): SwarmSpec {
  const spec = object(input, 'swarm spec');
  closedKeys(spec, 'SwarmSpec', SWARM_SPEC_FIELDS);
  if (spec['Name'] !== undefined && typeof spec['Name'] !== 'string') throw invalid('swarm Name must be a string');
  labels(spec['Labels'], 'Labels');
  const orch = optObject(spec['Orchestration'], 'Orchestration');
  if (orch !== undefined) {
    const limit = orch['TaskHistoryRetentionLimit'];
    if (limit !== undefined && limit !== null && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)) {
      throw invalid(`Orchestration.TaskHistoryRetentionLimit must be a whole number ≥ 0, got ${JSON.stringify(limit)}`);
    }
  }
  const raft = optObject(spec['Raft'], 'Raft');
  if (raft !== undefined) {
    const interval = wholeNumber(raft['SnapshotInterval'], 'Raft.SnapshotInterval');
    if (interval === 0) throw invalid('Raft.SnapshotInterval must be at least 1 entry');
    wholeNumber(raft['KeepOldSnapshots'], 'Raft.KeepOldSnapshots');
    wholeNumber(raft['LogEntriesForSlowFollowers'], 'Raft.LogEntriesForSlowFollowers');
    const election = wholeNumber(raft['ElectionTick'], 'Raft.ElectionTick');
    const heartbeat = wholeNumber(raft['HeartbeatTick'], 'Raft.HeartbeatTick');
    if (election !== undefined && heartbeat !== undefined && election !== 0 && heartbeat !== 0 && election <= heartbeat) {
      throw invalid(`Raft.ElectionTick (${election}) must be greater than Raft.HeartbeatTick (${heartbeat})`);
    }
  }
  const dispatcher = optObject(spec['Dispatcher'], 'Dispatcher');
  if (dispatcher !== undefined) duration(dispatcher['HeartbeatPeriod'], 'Dispatcher.HeartbeatPeriod', 'heartbeat time period cannot be a negative duration');
  const ca = optObject(spec['CAConfig'], 'CAConfig');
  if (ca !== undefined) {
    const expiry = duration(ca['NodeCertExpiry'], 'CAConfig.NodeCertExpiry');
    if (expiry !== undefined && expiry !== 0 && expiry < MIN_NODE_CERT_EXPIRY_NS) {
      throw invalid(`minimum certificate expiry time is: 1h0m0s (CAConfig.NodeCertExpiry = ${expiry} ns)`);
    }
    const external = ca['ExternalCAs'];
    if (Array.isArray(external) && external.length > 0) throw invalid('external CAs are not supported by this manager (CAConfig.ExternalCAs)');
    if (ca['SigningCACert'] || ca['SigningCAKey']) throw invalid('replacing the root CA with a given certificate is not supported (CAConfig.SigningCACert/SigningCAKey)');
  }
  const enc = optObject(spec['EncryptionConfig'], 'EncryptionConfig');
  if (enc !== undefined && enc['AutoLockManagers'] !== undefined && typeof enc['AutoLockManagers'] !== 'boolean') {
    throw invalid('EncryptionConfig.AutoLockManagers must be true or false');
  }
  return spec as unknown as SwarmSpec;
}
