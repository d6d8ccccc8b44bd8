// Compose → swarm objects for `stack deploy`, as docker's stack loader and convert package do:
// services (image, command, environment, deploy: mode/replicas/resources/placement/update,
// rollback and restart config, endpoint mode, ports), networks (`<stack>_<name>`, overlay, a
// `<stack>_default` for services that name none), secrets and configs (`<stack>_<name>` unless
// `name:` or `external:`), volumes as mounts, every object labelled com.docker.stack.namespace.
// Every key this cannot honour is reported by name (`Ignoring unsupported options: …`), never
// silently dropped.
import { isAbsolute, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { isObj, readEnvFile, type ComposeFile, type Obj } from './compose.js';
import { StackError } from './errors.js';
import { durationNs, nanoCpus, sizeBytes } from './units.js';

export const NAMESPACE_LABEL = 'com.docker.stack.namespace';
export const IMAGE_LABEL = 'com.docker.stack.image';

export interface NetworkPlan {
  /** The key in the compose file (`front`). */
  readonly key: string;
  /** The swarm name (`app_front`, or the external / `name:` one). */
  readonly name: string;
  readonly external: boolean;
  /** The `POST /networks/create` body (not for external networks). */
  readonly create?: Obj;
}

export interface DataObjectPlan {
  readonly key: string;
  readonly name: string;
  readonly external: boolean;
  /** Name, Labels, Data (base64), optional Templating/Driver: the create/update body. */
  readonly spec?: Obj;
}

export interface ServicePlan {
  readonly key: string;
  readonly name: string;
  /** The ServiceSpec; secret/config references carry SecretName/ConfigName and get their IDs at deploy time. */
  readonly spec: Obj;
  /** The image as written (the `com.docker.stack.image` label), before digest pinning. */
  readonly image: string;
}

export interface StackPlan {
  readonly namespace: string;
  readonly networks: readonly NetworkPlan[];
  readonly secrets: readonly DataObjectPlan[];
  readonly configs: readonly DataObjectPlan[];
  readonly services: readonly ServicePlan[];
  /** One line each, printed to stderr before deploying. */
  readonly warnings: readonly string[];
}

/** Keys per compose object: true = translated, 'unsupported' = known to Compose but not to swarm mode. */
type KeySet = Readonly<Record<string, true | 'unsupported'>>;

const SERVICE_KEYS: KeySet = {
  image: true, command: true, entrypoint: true, environment: true, env_file: true, labels: true, deploy: true, networks: true,
  secrets: true, configs: true, ports: true, hostname: true, user: true, working_dir: true, stop_grace_period: true,
  stop_signal: true, healthcheck: true, tty: true, stdin_open: true, read_only: true, init: true, dns: true, dns_search: true,
  dns_opt: true, extra_hosts: true, cap_add: true, cap_drop: true, sysctls: true, volumes: true, tmpfs: true, logging: true,
  restart: true, ulimits: true, group_add: true, expose: true,
  build: 'unsupported', cgroup_parent: 'unsupported', cgroupns_mode: 'unsupported', container_name: 'unsupported', depends_on: 'unsupported',
  devices: 'unsupported', domainname: 'unsupported', external_links: 'unsupported', ipc: 'unsupported', links: 'unsupported',
  mac_address: 'unsupported', network_mode: 'unsupported', pid: 'unsupported', privileged: 'unsupported', security_opt: 'unsupported',
  shm_size: 'unsupported', userns_mode: 'unsupported', platform: 'unsupported', profiles: 'unsupported', pull_policy: 'unsupported',
  cpus: 'unsupported', mem_limit: 'unsupported', memswap_limit: 'unsupported', cpu_shares: 'unsupported', scale: 'unsupported',
  credential_spec: 'unsupported', isolation: 'unsupported', oom_score_adj: 'unsupported', storage_opt: 'unsupported', volumes_from: 'unsupported',
};
const DEPLOY_KEYS: KeySet = { mode: true, replicas: true, labels: true, update_config: true, rollback_config: true, resources: true, restart_policy: true, placement: true, endpoint_mode: true };
const UPDATE_KEYS: KeySet = { parallelism: true, delay: true, failure_action: true, monitor: true, max_failure_ratio: true, order: true };
const RESTART_KEYS: KeySet = { condition: true, delay: true, max_attempts: true, window: true };
const PLACEMENT_KEYS: KeySet = { constraints: true, preferences: true, max_replicas_per_node: true };
const RESOURCES_KEYS: KeySet = { limits: true, reservations: true };
const LIMITS_KEYS: KeySet = { cpus: true, memory: true, pids: true };
const RESERVATIONS_KEYS: KeySet = { cpus: true, memory: true, generic_resources: 'unsupported', devices: 'unsupported' };
const NETWORK_KEYS: KeySet = { driver: true, driver_opts: true, external: true, name: true, labels: true, attachable: true, internal: true, ipam: true, enable_ipv6: 'unsupported' };
const SECRET_KEYS: KeySet = { file: true, external: true, name: true, labels: true, environment: true, driver: true, driver_opts: true, template_driver: true };
const CONFIG_KEYS: KeySet = { file: true, external: true, name: true, labels: true, environment: true, content: true, template_driver: true };
const VOLUME_KEYS: KeySet = { driver: true, driver_opts: true, external: true, labels: true, name: true };
const TOP_KEYS: KeySet = { version: true, name: true, services: true, networks: true, secrets: true, configs: true, volumes: true };
const HEALTH_KEYS: KeySet = { test: true, interval: true, timeout: true, retries: true, start_period: true, start_interval: true, disable: true };
const LOGGING_KEYS: KeySet = { driver: true, options: true };
const FILE_REF_KEYS: KeySet = { source: true, target: true, uid: true, gid: true, mode: true };
const PORT_KEYS: KeySet = { target: true, published: true, protocol: true, mode: true, host_ip: 'unsupported', name: true, app_protocol: 'unsupported' };
const SERVICE_NET_KEYS: KeySet = { aliases: true, ipv4_address: 'unsupported', ipv6_address: 'unsupported', priority: 'unsupported' };

class Warnings {
  readonly unsupported: string[] = [];
  readonly unknown: string[] = [];

  /** Checks `o`'s keys against `keys`; `x-` extension keys are allowed anywhere, as in Compose. */
  check(o: Obj, keys: KeySet, where: string): void {
    for (const k of Object.keys(o)) {
      if (k.startsWith('x-')) continue;
      const known = keys[k];
      if (known === 'unsupported') this.unsupported.push(`${where}.${k}`);
      else if (known === undefined) this.unknown.push(`${where}.${k}`);
    }
  }

  lines(): string[] {
    return [
      ...(this.unsupported.length > 0 ? [`Ignoring unsupported options: ${this.unsupported.join(', ')}`] : []),
      ...(this.unknown.length > 0 ? [`Ignoring unknown options: ${this.unknown.join(', ')}`] : []),
    ];
  }
}

const str = (v: unknown, what: string): string => {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new StackError(`${what} must be a string, got ${JSON.stringify(v)}`);
};
const obj = (v: unknown, what: string): Obj => {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new StackError(`${what} must be a mapping`);
  return v;
};
const bool = (v: unknown, what: string): boolean => {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new StackError(`${what} must be true or false, got ${JSON.stringify(v)}`);
};
const int = (v: unknown, what: string, min = 0): number => {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw new StackError(`${what} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
};
const strList = (v: unknown, what: string): string[] => {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw new StackError(`${what} must be a list of strings`);
  return v.map((x, i) => str(x, `${what}[${i}]`));
};
/** A shell-words split of a command string (quotes and backslashes as sh does, no expansion). */
export function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else cur += c;
  }
  if (quote !== null) throw new StackError(`unterminated quote in command ${JSON.stringify(s)}`);
  if (has || cur !== '') out.push(cur);
  return out;
}
const command = (v: unknown, what: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return shellSplit(v);
  return strList(v, what);
};

/** `labels` as a map or a `k=v` list. */
function labelMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v)) {
    const out: Record<string, string> = {};
    for (const [i, l] of v.entries()) {
      const s = str(l, `${what}[${i}]`);
      const eq = s.indexOf('=');
      out[eq < 0 ? s : s.slice(0, eq)] = eq < 0 ? '' : s.slice(eq + 1);
    }
    return out;
  }
  return Object.fromEntries(Object.entries(obj(v, what)).map(([k, x]) => [k, x === null ? '' : str(x, `${what}.${k}`)]));
}

const scoped = (ns: string, name: string): string => `${ns}_${name}`;

function networkPlans(c: ComposeFile, ns: string, used: ReadonlySet<string>, w: Warnings): NetworkPlan[] {
  const top = obj(c.doc['networks'], 'networks');
  const out: NetworkPlan[] = [];
  for (const key of [...used].sort()) {
    const raw = key === 'default' && !(key in top) ? {} : top[key];
    if (raw === undefined) throw new StackError(`service network ${key} is not declared in the top-level networks`);
    const n = obj(raw, `networks.${key}`);
    w.check(n, NETWORK_KEYS, `networks.${key}`);
    const ext = n['external'];
    const external = ext !== undefined && (isObj(ext) || bool(ext, `networks.${key}.external`));
    if (external) {
      const extName = isObj(ext) && ext['name'] !== undefined ? str(ext['name'], `networks.${key}.external.name`) : n['name'] !== undefined ? str(n['name'], `networks.${key}.name`) : key;
      out.push({ key, name: extName, external: true });
      continue;
    }
    const name = n['name'] !== undefined ? str(n['name'], `networks.${key}.name`) : scoped(ns, key);
    const ipam = n['ipam'] !== undefined ? obj(n['ipam'], `networks.${key}.ipam`) : undefined;
    const create: Obj = {
      Name: name,
      Driver: n['driver'] !== undefined ? str(n['driver'], `networks.${key}.driver`) : 'overlay',
      Scope: 'swarm',
      Labels: { ...labelMap(n['labels'], `networks.${key}.labels`), [NAMESPACE_LABEL]: ns },
      Options: labelMap(n['driver_opts'], `networks.${key}.driver_opts`),
      Attachable: n['attachable'] !== undefined ? bool(n['attachable'], `networks.${key}.attachable`) : false,
      Internal: n['internal'] !== undefined ? bool(n['internal'], `networks.${key}.internal`) : false,
      ...(ipam !== undefined
        ? {
            IPAM: {
              Driver: ipam['driver'] !== undefined ? str(ipam['driver'], `networks.${key}.ipam.driver`) : 'default',
              Options: labelMap(ipam['options'], `networks.${key}.ipam.options`),
              Config: (Array.isArray(ipam['config']) ? ipam['config'] : []).map((cfg, i) => {
                const o = obj(cfg, `networks.${key}.ipam.config[${i}]`);
                return {
                  ...(o['subnet'] !== undefined ? { Subnet: str(o['subnet'], 'subnet') } : {}),
                  ...(o['ip_range'] !== undefined ? { IPRange: str(o['ip_range'], 'ip_range') } : {}),
                  ...(o['gateway'] !== undefined ? { Gateway: str(o['gateway'], 'gateway') } : {}),
                  ...(o['aux_addresses'] !== undefined ? { AuxiliaryAddresses: labelMap(o['aux_addresses'], 'aux_addresses') } : {}),
                };
              }),
            },
          }
        : {}),
    };
    out.push({ key, name, external: false, create });
  }
  return out;
}

function dataObjectPlans(c: ComposeFile, ns: string, kind: 'secrets' | 'configs', used: ReadonlySet<string>, w: Warnings): DataObjectPlan[] {
  const top = obj(c.doc[kind], kind);
  const out: DataObjectPlan[] = [];
  for (const key of Object.keys(top).sort()) {
    const where = `${kind}.${key}`;
    const o = obj(top[key], where);
    w.check(o, kind === 'secrets' ? SECRET_KEYS : CONFIG_KEYS, where);
    const ext = o['external'];
    const external = ext !== undefined && (isObj(ext) || bool(ext, `${where}.external`));
    if (external) {
      const extName = isObj(ext) && ext['name'] !== undefined ? str(ext['name'], `${where}.external.name`) : o['name'] !== undefined ? str(o['name'], `${where}.name`) : key;
      out.push({ key, name: extName, external: true });
      continue;
    }
    if (!used.has(key) && o['file'] === undefined && o['content'] === undefined && o['environment'] === undefined) continue;
    const name = o['name'] !== undefined ? str(o['name'], `${where}.name`) : scoped(ns, key);
    let data: Buffer;
    if (o['file'] !== undefined) {
      const file = str(o['file'], `${where}.file`);
      const path = isAbsolute(file) ? file : resolve(c.workingDir, file);
      try {
        data = readFileSync(path);
      } catch (err) {
        throw new StackError(`${where}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } else if (o['environment'] !== undefined) {
      const v = c.env[str(o['environment'], `${where}.environment`)];
      if (v === undefined) throw new StackError(`${where}: environment variable ${String(o['environment'])} is not set`);
      data = Buffer.from(v, 'utf8');
    } else if (kind === 'configs' && o['content'] !== undefined) {
      data = Buffer.from(str(o['content'], `${where}.content`), 'utf8');
    } else {
      throw new StackError(`${where}: needs file${kind === 'configs' ? ', content' : ''}, environment or external`);
    }
    const template = o['template_driver'] !== undefined ? str(o['template_driver'], `${where}.template_driver`) : undefined;
    const driver = kind === 'secrets' && o['driver'] !== undefined ? str(o['driver'], `${where}.driver`) : undefined;
    out.push({
      key,
      name,
      external: false,
      spec: {
        Name: name,
        Labels: { ...labelMap(o['labels'], `${where}.labels`), [NAMESPACE_LABEL]: ns },
        Data: data.toString('base64'),
        ...(template !== undefined ? { Templating: { Name: template } } : {}),
        ...(driver !== undefined ? { Driver: { Name: driver, Options: labelMap(o['driver_opts'], `${where}.driver_opts`) } } : {}),
      },
    });
  }
  return out;
}

/** `ports:` entries → EndpointSpec.Ports. */
export function convertPorts(v: unknown, where: string, w: Warnings = new Warnings()): Obj[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new StackError(`${where} must be a list`);
  const out: Obj[] = [];
  v.forEach((p, i) => {
    const at = `${where}[${i}]`;
    if (isObj(p)) {
      w.check(p, PORT_KEYS, at);
      out.push({
        Protocol: p['protocol'] !== undefined ? str(p['protocol'], `${at}.protocol`) : 'tcp',
        TargetPort: int(p['target'], `${at}.target`, 1),
        ...(p['published'] !== undefined ? { PublishedPort: int(p['published'], `${at}.published`, 1) } : {}),
        PublishMode: p['mode'] !== undefined ? str(p['mode'], `${at}.mode`) : 'ingress',
      });
      return;
    }
    const s = str(p, at);
    const m = /^(?:(?:([0-9.]+|\[[0-9a-f:]+\]):)?(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(s.trim());
    if (m === null) throw new StackError(`${at}: invalid port ${JSON.stringify(s)} (use "published:target[/protocol]")`);
    const [, hostIp, pubStart, pubEnd, tStart, tEnd, proto] = m;
    if (hostIp !== undefined) w.unsupported.push(`${at} (host IP ${hostIp})`);
    const targetFrom = Number(tStart);
    const targetTo = tEnd !== undefined ? Number(tEnd) : targetFrom;
    const pubFrom = pubStart !== undefined ? Number(pubStart) : undefined;
    const pubTo = pubEnd !== undefined ? Number(pubEnd) : pubFrom;
    if (pubFrom !== undefined && pubTo! - pubFrom !== targetTo - targetFrom) throw new StackError(`${at}: port ranges ${JSON.stringify(s)} differ in length`);
    for (let k = 0; k <= targetTo - targetFrom; k++) {
      out.push({
        Protocol: (proto ?? 'tcp').toLowerCase(),
        TargetPort: targetFrom + k,
        ...(pubFrom !== undefined ? { PublishedPort: pubFrom + k } : {}),
        PublishMode: 'ingress',
      });
    }
  });
  return out;
}

function updateConfig(v: unknown, where: string, w: Warnings): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  const u = obj(v, where);
  w.check(u, UPDATE_KEYS, where);
  return {
    Parallelism: u['parallelism'] !== undefined ? int(u['parallelism'], `${where}.parallelism`) : 1,
    ...(u['delay'] !== undefined ? { Delay: durationNs(u['delay'], `${where}.delay`) } : {}),
    ...(u['failure_action'] !== undefined ? { FailureAction: str(u['failure_action'], `${where}.failure_action`) } : {}),
    ...(u['monitor'] !== undefined ? { Monitor: durationNs(u['monitor'], `${where}.monitor`) } : {}),
    MaxFailureRatio: u['max_failure_ratio'] !== undefined ? Number(u['max_failure_ratio']) : 0,
    Order: u['order'] !== undefined ? str(u['order'], `${where}.order`) : '',
  };
}

function restartPolicy(deploy: Obj, service: Obj, where: string, w: Warnings): Obj | undefined {
  const rp = deploy['restart_policy'];
  if (rp !== undefined && rp !== null) {
    const r = obj(rp, `${where}.deploy.restart_policy`);
    w.check(r, RESTART_KEYS, `${where}.deploy.restart_policy`);
    const cond = r['condition'] !== undefined ? str(r['condition'], 'condition') : undefined;
    if (cond !== undefined && !['none', 'on-failure', 'any'].includes(cond)) throw new StackError(`${where}.deploy.restart_policy.condition must be none, on-failure or any, got ${JSON.stringify(cond)}`);
    return {
      ...(cond !== undefined ? { Condition: cond } : {}),
      ...(r['delay'] !== undefined ? { Delay: durationNs(r['delay'], 'delay') } : {}),
      ...(r['max_attempts'] !== undefined ? { MaxAttempts: int(r['max_attempts'], `${where}.deploy.restart_policy.max_attempts`) } : {}),
      ...(r['window'] !== undefined ? { Window: durationNs(r['window'], 'window') } : {}),
    };
  }
  const restart = service['restart'];
  if (restart === undefined || restart === null) return undefined;
  const s = str(restart, `${where}.restart`);
  if (s === 'no') return { Condition: 'none' };
  if (s === 'always' || s === 'unless-stopped') return { Condition: 'any' };
  const m = /^on-failure(?::(\d+))?$/.exec(s);
  if (m !== null) return { Condition: 'on-failure', ...(m[1] !== undefined ? { MaxAttempts: Number(m[1]) } : {}) };
  throw new StackError(`${where}.restart: unknown policy ${JSON.stringify(s)} (no, always, on-failure[:N], unless-stopped)`);
}

function resources(v: unknown, where: string, w: Warnings): Obj {
  const r = obj(v, where);
  w.check(r, RESOURCES_KEYS, where);
  const part = (x: unknown, keys: KeySet, at: string): Obj => {
    const o = obj(x, at);
    w.check(o, keys, at);
    return {
      ...(o['cpus'] !== undefined ? { NanoCPUs: nanoCpus(o['cpus'], `${at}.cpus`) } : {}),
      ...(o['memory'] !== undefined ? { MemoryBytes: sizeBytes(o['memory'], `${at}.memory`) } : {}),
      ...(o['pids'] !== undefined ? { Pids: int(o['pids'], `${at}.pids`) } : {}),
    };
  };
  const limits = r['limits'] !== undefined ? part(r['limits'], LIMITS_KEYS, `${where}.limits`) : undefined;
  const reservations = r['reservations'] !== undefined ? part(r['reservations'], RESERVATIONS_KEYS, `${where}.reservations`) : undefined;
  return { ...(limits !== undefined ? { Limits: limits } : {}), ...(reservations !== undefined ? { Reservations: reservations } : {}) };
}

function placement(v: unknown, where: string, w: Warnings): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  const p = obj(v, where);
  w.check(p, PLACEMENT_KEYS, where);
  const prefs = (Array.isArray(p['preferences']) ? p['preferences'] : []).map((x, i) => {
    const o = obj(x, `${where}.preferences[${i}]`);
    if (o['spread'] === undefined) throw new StackError(`${where}.preferences[${i}] must be {spread: <label>}`);
    return { Spread: { SpreadDescriptor: str(o['spread'], `${where}.preferences[${i}].spread`) } };
  });
  const constraints = strList(p['constraints'], `${where}.constraints`);
  return {
    ...(constraints.length > 0 ? { Constraints: constraints } : {}),
    ...(prefs.length > 0 ? { Preferences: prefs } : {}),
    ...(p['max_replicas_per_node'] !== undefined ? { MaxReplicas: int(p['max_replicas_per_node'], `${where}.max_replicas_per_node`) } : {}),
  };
}

/** `environment` (map or list) + `env_file`s → sorted `K=V` strings. */
function environment(s: Obj, c: ComposeFile, where: string): string[] {
  const env = new Map<string, string>();
  for (const f of strList(s['env_file'], `${where}.env_file`)) {
    for (const kv of readEnvFile(isAbsolute(f) ? f : resolve(c.workingDir, f), c.env)) {
      const i = kv.indexOf('=');
      env.set(kv.slice(0, i), kv.slice(i + 1));
    }
  }
  const e = s['environment'];
  if (Array.isArray(e)) {
    e.forEach((x, i) => {
      const kv = str(x, `${where}.environment[${i}]`);
      const eq = kv.indexOf('=');
      if (eq >= 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
      else if (c.env[kv] !== undefined) env.set(kv, c.env[kv]!);
    });
  } else if (e !== undefined && e !== null) {
    for (const [k, v] of Object.entries(obj(e, `${where}.environment`))) {
      if (v === null || v === undefined) {
        if (c.env[k] !== undefined) env.set(k, c.env[k]!);
      } else env.set(k, str(v, `${where}.environment.${k}`));
    }
  }
  return [...env.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`);
}

/** A file mode: a number (YAML reads `0440` as octal, see compose.ts) or an octal string. */
function fileMode(v: unknown, what: string): number {
  if (typeof v === 'string' && /^(0o?)?[0-7]+$/.test(v)) return parseInt(v.replace(/^0o?/, ''), 8);
  return int(v, what);
}

function fileRefs(v: unknown, kind: 'secrets' | 'configs', where: string, objects: readonly DataObjectPlan[], w: Warnings): Obj[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new StackError(`${where} must be a list`);
  return v.map((ref, i) => {
    const at = `${where}[${i}]`;
    const o: Obj = typeof ref === 'string' ? { source: ref } : obj(ref, at);
    if (typeof ref !== 'string') w.check(o, FILE_REF_KEYS, at);
    const source = str(o['source'], `${at}.source`);
    const target = o['target'] !== undefined ? str(o['target'], `${at}.target`) : kind === 'secrets' ? source : `/${source}`;
    const plan = objects.find((p) => p.key === source);
    if (plan === undefined) throw new StackError(`${at}: ${kind === 'secrets' ? 'secret' : 'config'} ${source} is not declared in the top-level ${kind}`);
    const mode = o['mode'] !== undefined ? fileMode(o['mode'], `${at}.mode`) : 0o444;
    const file = { Name: target, UID: o['uid'] !== undefined ? str(o['uid'], 'uid') : '0', GID: o['gid'] !== undefined ? str(o['gid'], 'gid') : '0', Mode: mode };
    return kind === 'secrets' ? { File: file, SecretName: plan.name } : { File: file, ConfigName: plan.name };
  });
}

function mounts(s: Obj, c: ComposeFile, ns: string, where: string, w: Warnings): Obj[] {
  const out: Obj[] = [];
  const vols = s['volumes'];
  const top = obj(c.doc['volumes'], 'volumes');
  if (vols !== undefined && vols !== null) {
    if (!Array.isArray(vols)) throw new StackError(`${where}.volumes must be a list`);
    vols.forEach((v, i) => {
      const at = `${where}.volumes[${i}]`;
      let type: string;
      let source: string | undefined;
      let target: string;
      let readOnly = false;
      if (isObj(v)) {
        type = v['type'] !== undefined ? str(v['type'], `${at}.type`) : 'volume';
        source = v['source'] !== undefined ? str(v['source'], `${at}.source`) : undefined;
        target = str(v['target'], `${at}.target`);
        readOnly = v['read_only'] !== undefined ? bool(v['read_only'], `${at}.read_only`) : false;
        for (const k of Object.keys(v)) if (!['type', 'source', 'target', 'read_only', 'volume', 'bind', 'tmpfs'].includes(k)) w.unsupported.push(`${at}.${k}`);
      } else {
        const parts = str(v, at).split(':');
        if (parts.length === 1) {
          type = 'volume';
          target = parts[0]!;
        } else {
          source = parts[0]!;
          target = parts[1]!;
          const opts = (parts[2] ?? '').split(',');
          readOnly = opts.includes('ro');
          type = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') ? 'bind' : 'volume';
        }
      }
      if (type === 'bind' && source !== undefined && !isAbsolute(source)) source = resolve(c.workingDir, source.replace(/^~(?=\/|$)/, c.env['HOME'] ?? '~'));
      const mount: Obj = { Type: type, ...(source !== undefined ? { Source: source } : {}), Target: target, ...(readOnly ? { ReadOnly: true } : {}) };
      if (type === 'volume' && source !== undefined) {
        const vol = top[source] !== undefined ? obj(top[source], `volumes.${source}`) : undefined;
        if (vol === undefined) throw new StackError(`${at}: named volume ${source} is not declared in the top-level volumes`);
        w.check(vol, VOLUME_KEYS, `volumes.${source}`);
        const external = vol['external'] !== undefined && (isObj(vol['external']) || bool(vol['external'], `volumes.${source}.external`));
        mount['Source'] = vol['name'] !== undefined ? str(vol['name'], `volumes.${source}.name`) : external ? source : scoped(ns, source);
        if (!external) {
          mount['VolumeOptions'] = {
            Labels: { ...labelMap(vol['labels'], `volumes.${source}.labels`), [NAMESPACE_LABEL]: ns },
            ...(vol['driver'] !== undefined ? { DriverConfig: { Name: str(vol['driver'], 'driver'), Options: labelMap(vol['driver_opts'], 'driver_opts') } } : {}),
          };
        }
      }
      out.push(mount);
    });
  }
  const tmpfs = strList(s['tmpfs'], `${where}.tmpfs`);
  for (const t of tmpfs) out.push({ Type: 'tmpfs', Target: t.split(':')[0] });
  return out;
}

function healthcheck(v: unknown, where: string, w: Warnings): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  const h = obj(v, where);
  w.check(h, HEALTH_KEYS, where);
  if (h['disable'] === true) return { Test: ['NONE'] };
  const test = h['test'];
  return {
    ...(test !== undefined ? { Test: typeof test === 'string' ? ['CMD-SHELL', test] : strList(test, `${where}.test`) } : {}),
    ...(h['interval'] !== undefined ? { Interval: durationNs(h['interval'], `${where}.interval`) } : {}),
    ...(h['timeout'] !== undefined ? { Timeout: durationNs(h['timeout'], `${where}.timeout`) } : {}),
    ...(h['start_period'] !== undefined ? { StartPeriod: durationNs(h['start_period'], `${where}.start_period`) } : {}),
    ...(h['start_interval'] !== undefined ? { StartInterval: durationNs(h['start_interval'], `${where}.start_interval`) } : {}),
    ...(h['retries'] !== undefined ? { Retries: int(h['retries'], `${where}.retries`) } : {}),
  };
}

/** The networks a service attaches to: key → aliases (beyond the service name). */
function serviceNetworks(s: Obj, where: string, w: Warnings): Map<string, string[]> {
  const n = s['networks'];
  const out = new Map<string, string[]>();
  if (n === undefined || n === null) {
    out.set('default', []);
    return out;
  }
  if (Array.isArray(n)) {
    n.forEach((x, i) => out.set(str(x, `${where}.networks[${i}]`), []));
    return out;
  }
  for (const [k, cfg] of Object.entries(obj(n, `${where}.networks`))) {
    const o = obj(cfg, `${where}.networks.${k}`);
    w.check(o, SERVICE_NET_KEYS, `${where}.networks.${k}`);
    out.set(k, strList(o['aliases'], `${where}.networks.${k}.aliases`));
  }
  return out;
}

/** Translates a loaded compose file into what `stack deploy NAME` creates and updates. */
export function convertStack(c: ComposeFile, namespace: string): StackPlan {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(namespace)) throw new StackError(`invalid stack name ${JSON.stringify(namespace)}: use letters, digits, _ . - (starting with a letter or digit)`);
  const w = new Warnings();
  w.check(c.doc, TOP_KEYS, '(top level)');
  const services = obj(c.doc['services'], 'services');
  const usedNetworks = new Set<string>();
  const usedSecrets = new Set<string>();
  const usedConfigs = new Set<string>();
  const netsOf = new Map<string, Map<string, string[]>>();
  for (const [key, raw] of Object.entries(services)) {
    const s = obj(raw, `services.${key}`);
    const nets = serviceNetworks(s, `services.${key}`, w);
    netsOf.set(key, nets);
    for (const n of nets.keys()) usedNetworks.add(n);
    for (const ref of Array.isArray(s['secrets']) ? s['secrets'] : []) usedSecrets.add(typeof ref === 'string' ? ref : String(obj(ref, 'secret')['source']));
    for (const ref of Array.isArray(s['configs']) ? s['configs'] : []) usedConfigs.add(typeof ref === 'string' ? ref : String(obj(ref, 'config')['source']));
  }
  const networks = networkPlans(c, namespace, usedNetworks, w);
  const secrets = dataObjectPlans(c, namespace, 'secrets', usedSecrets, w);
  const configs = dataObjectPlans(c, namespace, 'configs', usedConfigs, w);

  const plans: ServicePlan[] = [];
  for (const key of Object.keys(services).sort()) {
    const where = `services.${key}`;
    const s = obj(services[key], where);
    w.check(s, SERVICE_KEYS, where);
    if (s['image'] === undefined) throw new StackError(`${where}: image is required (stack deploy does not build images)`);
    const image = str(s['image'], `${where}.image`);
    const deploy = obj(s['deploy'], `${where}.deploy`);
    w.check(deploy, DEPLOY_KEYS, `${where}.deploy`);
    const modeName = deploy['mode'] !== undefined ? str(deploy['mode'], `${where}.deploy.mode`) : 'replicated';
    const replicas = deploy['replicas'] !== undefined ? int(deploy['replicas'], `${where}.deploy.replicas`) : undefined;
    let mode: Obj;
    switch (modeName) {
      case 'replicated':
        mode = { Replicated: { Replicas: replicas ?? 1 } };
        break;
      case 'global':
        if (replicas !== undefined) throw new StackError(`${where}.deploy: replicas can only be used with replicated mode`);
        mode = { Global: {} };
        break;
      case 'replicated-job':
        mode = { ReplicatedJob: { MaxConcurrent: replicas ?? 1, TotalCompletions: replicas ?? 1 } };
        break;
      case 'global-job':
        mode = { GlobalJob: {} };
        break;
      default:
        throw new StackError(`${where}.deploy.mode must be replicated, global, replicated-job or global-job, got ${JSON.stringify(modeName)}`);
    }
    const name = scoped(namespace, key);
    const env = environment(s, c, where);
    const entrypoint = command(s['entrypoint'], `${where}.entrypoint`);
    const args = command(s['command'], `${where}.command`);
    const mnts = mounts(s, c, namespace, where, w);
    const health = healthcheck(s['healthcheck'], `${where}.healthcheck`, w);
    const secretRefs = fileRefs(s['secrets'], 'secrets', `${where}.secrets`, secrets, w);
    const configRefs = fileRefs(s['configs'], 'configs', `${where}.configs`, configs, w);
    const dns = strList(s['dns'], `${where}.dns`);
    const dnsSearch = strList(s['dns_search'], `${where}.dns_search`);
    const dnsOpt = strList(s['dns_opt'], `${where}.dns_opt`);
    const hosts = (Array.isArray(s['extra_hosts']) ? strList(s['extra_hosts'], `${where}.extra_hosts`) : Object.entries(labelMap(s['extra_hosts'], `${where}.extra_hosts`)).map(([h, ip]) => `${h}:${ip}`)).map((h) => {
      const i = h.indexOf(':');
      return i < 0 ? h : `${h.slice(i + 1)} ${h.slice(0, i)}`;
    });
    const capAdd = strList(s['cap_add'], `${where}.cap_add`);
    const capDrop = strList(s['cap_drop'], `${where}.cap_drop`);
    const sysctls = labelMap(s['sysctls'], `${where}.sysctls`);
    const ulimits = Object.entries(obj(s['ulimits'], `${where}.ulimits`)).map(([n, v]) =>
      isObj(v) ? { Name: n, Soft: int(v['soft'], `${where}.ulimits.${n}.soft`), Hard: int(v['hard'], `${where}.ulimits.${n}.hard`) } : { Name: n, Soft: int(v, `${where}.ulimits.${n}`), Hard: int(v, `${where}.ulimits.${n}`) },
    );
    const groups = strList(s['group_add'], `${where}.group_add`);
    const logging = s['logging'] !== undefined ? obj(s['logging'], `${where}.logging`) : undefined;
    if (logging !== undefined) w.check(logging, LOGGING_KEYS, `${where}.logging`);
    const containerSpec: Obj = {
      Image: image,
      Labels: { ...labelMap(s['labels'], `${where}.labels`), [NAMESPACE_LABEL]: namespace },
      ...(entrypoint !== undefined ? { Command: entrypoint } : {}),
      ...(args !== undefined ? { Args: args } : {}),
      ...(s['hostname'] !== undefined ? { Hostname: str(s['hostname'], `${where}.hostname`) } : {}),
      ...(env.length > 0 ? { Env: env } : {}),
      ...(s['working_dir'] !== undefined ? { Dir: str(s['working_dir'], `${where}.working_dir`) } : {}),
      ...(s['user'] !== undefined ? { User: str(s['user'], `${where}.user`) } : {}),
      ...(groups.length > 0 ? { Groups: groups } : {}),
      ...(s['tty'] !== undefined ? { TTY: bool(s['tty'], `${where}.tty`) } : {}),
      ...(s['stdin_open'] !== undefined ? { OpenStdin: bool(s['stdin_open'], `${where}.stdin_open`) } : {}),
      ...(s['read_only'] !== undefined ? { ReadOnly: bool(s['read_only'], `${where}.read_only`) } : {}),
      ...(s['init'] !== undefined ? { Init: bool(s['init'], `${where}.init`) } : {}),
      ...(mnts.length > 0 ? { Mounts: mnts } : {}),
      ...(s['stop_grace_period'] !== undefined ? { StopGracePeriod: durationNs(s['stop_grace_period'], `${where}.stop_grace_period`) } : {}),
      ...(s['stop_signal'] !== undefined ? { StopSignal: str(s['stop_signal'], `${where}.stop_signal`) } : {}),
      ...(health !== undefined ? { Healthcheck: health } : {}),
      ...(hosts.length > 0 ? { Hosts: hosts } : {}),
      ...(dns.length + dnsSearch.length + dnsOpt.length > 0 ? { DNSConfig: { ...(dns.length > 0 ? { Nameservers: dns } : {}), ...(dnsSearch.length > 0 ? { Search: dnsSearch } : {}), ...(dnsOpt.length > 0 ? { Options: dnsOpt } : {}) } } : {}),
      ...(secretRefs.length > 0 ? { Secrets: secretRefs } : {}),
      ...(configRefs.length > 0 ? { Configs: configRefs } : {}),
      ...(Object.keys(sysctls).length > 0 ? { Sysctls: sysctls } : {}),
      ...(capAdd.length > 0 ? { CapabilityAdd: capAdd } : {}),
      ...(capDrop.length > 0 ? { CapabilityDrop: capDrop } : {}),
      ...(ulimits.length > 0 ? { Ulimits: ulimits } : {}),
    };
    const res = deploy['resources'] !== undefined ? resources(deploy['resources'], `${where}.deploy.resources`, w) : {};
    const restart = restartPolicy(deploy, s, where, w);
    const place = placement(deploy['placement'], `${where}.deploy.placement`, w);
    const nets = netsOf.get(key)!;
    const taskTemplate: Obj = {
      ContainerSpec: containerSpec,
      Resources: res,
      ...(restart !== undefined ? { RestartPolicy: restart } : {}),
      ...(place !== undefined ? { Placement: place } : {}),
      Networks: [...nets.entries()]
        .map(([net, aliases]) => ({ Target: networks.find((p) => p.key === net)!.name, Aliases: [key, ...aliases] }))
        .sort((a, b) => (a.Target < b.Target ? -1 : a.Target > b.Target ? 1 : 0)),
      ...(logging !== undefined && logging['driver'] !== undefined ? { LogDriver: { Name: str(logging['driver'], `${where}.logging.driver`), Options: labelMap(logging['options'], `${where}.logging.options`) } } : {}),
    };
    const endpointMode = deploy['endpoint_mode'] !== undefined ? str(deploy['endpoint_mode'], `${where}.deploy.endpoint_mode`) : undefined;
    if (endpointMode !== undefined && endpointMode !== 'vip' && endpointMode !== 'dnsrr') throw new StackError(`${where}.deploy.endpoint_mode must be vip or dnsrr`);
    const ports = convertPorts(s['ports'], `${where}.ports`, w);
    if (s['expose'] !== undefined) w.unsupported.push(`${where}.expose (every port is reachable on the stack's networks)`);
    const update = updateConfig(deploy['update_config'], `${where}.deploy.update_config`, w);
    const rollback = updateConfig(deploy['rollback_config'], `${where}.deploy.rollback_config`, w);
    const spec: Obj = {
      Name: name,
      Labels: { ...labelMap(deploy['labels'], `${where}.deploy.labels`), [IMAGE_LABEL]: image, [NAMESPACE_LABEL]: namespace },
      TaskTemplate: taskTemplate,
      Mode: mode,
      ...(update !== undefined ? { UpdateConfig: update } : {}),
      ...(rollback !== undefined ? { RollbackConfig: rollback } : {}),
      EndpointSpec: { ...(endpointMode !== undefined ? { Mode: endpointMode } : {}), ...(ports.length > 0 ? { Ports: ports } : {}) },
    };
    plans.push({ key, name, spec, image });
  }
  return { namespace, networks, secrets, configs, services: plans, warnings: w.lines() };
}
