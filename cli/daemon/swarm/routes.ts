// The Docker API's swarm endpoints on a manager (shared/reference/docker-api.md §2): each handler
// resolves references, decodes Docker's query and body, and calls the ControlBackend (reads from
// this manager's store, writes forwarded to the leader when this manager follows).
import os from 'node:os';
import path from 'node:path';
import { access } from 'node:fs/promises';

import type { ListFilters } from '../../../manager/controlapi/control-api.js';
import { ManagerError } from '../../../manager/errors.js';
import { parsePoolConfig } from '../../../manager/allocator/subnet-pool.js';
import { KeyManagerError, LOCKED_MESSAGE } from '../../../manager/keymanager/errors.js';
import { KeyManagerDekSource } from '../../../manager/keymanager/key-manager.js';
import { UNLOCK_KEY_PREFIX } from '../../../manager/keymanager/unlock-key.js';
import { Manager, STATE_FILE } from '../../../manager/manager.js';
import { stableJson } from '../../../manager/orchestrator/service-model.js';
import type { NodeRole, TaskState } from '../../../manager/store/index.js';
import { ApiError, ConflictError, InvalidArgumentError, MSG_ALREADY_IN_SWARM, MSG_NO_SWARM, MSG_NOT_IN_SWARM, MSG_WORKER_NOT_MANAGER, UnavailableError } from '../api/errors.js';
import { boolValue, checkFilterKeys, parseBoolParam, parseFilters, versionParam, type Filters } from '../api/query.js';
import { reply, type ApiServer } from '../api/server.js';
import type { ControlBackend } from './backend.js';
import type { SwarmPlugin } from './plugin.js';
import { registerLogRoutes } from './logs.js';
import { effectiveSpec, mergeNonZero, networkResource, networkSpecOf, serviceStatus, swarmObject, withServiceDefaults } from './shapes.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function splitPort(addr: string): { host: string; port: string | null } {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    return { host: addr.slice(0, end + 1), port: addr[end + 1] === ':' ? addr.slice(end + 2) : null };
  }
  const i = addr.lastIndexOf(':');
  return i < 0 ? { host: addr, port: null } : { host: addr.slice(0, i), port: addr.slice(i + 1) };
}

function withPort(addr: string, port: string): string {
  return splitPort(addr).port === null ? `${addr}:${port}` : addr;
}

/** The one non-loopback IPv4 address of this host (dockerd's choice when none is given), or null. */
function soleAddress(): string | null {
  const found = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);
  return found.length === 1 ? found[0]! : null;
}

/** `--default-addr-pool` / `--default-addr-pool-mask-length` from the init body, checked (400 when bad) before anything is made. */
function addressPool(body: Record<string, unknown>): { defaultAddrPool?: string[]; subnetSize?: number } {
  const pools = Array.isArray(body['DefaultAddrPool']) ? body['DefaultAddrPool'].map(String).filter((x) => x !== '') : [];
  const size = typeof body['SubnetSize'] === 'number' && body['SubnetSize'] !== 0 ? body['SubnetSize'] : undefined;
  try {
    parsePoolConfig(pools, size);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return { ...(pools.length > 0 ? { defaultAddrPool: pools } : {}), ...(size !== undefined ? { subnetSize: size } : {}) };
}

function listenAndAdvertise(p: SwarmPlugin, body: Obj): { listen: string; advertise: string | undefined } {
  const listen = withPort(str(body['ListenAddr']) || p.ctx.options.listenAddr, '2377');
  const listenPort = splitPort(listen).port ?? '2377';
  const listenHost = splitPort(listen).host;
  let advertise = str(body['AdvertiseAddr']) || p.ctx.options.advertiseAddr;
  if (advertise === '') {
    if (listenHost !== '0.0.0.0' && listenHost !== '' && listenHost !== '[::]' && listenHost !== '::') advertise = listenHost;
    else {
      const sole = soleAddress();
      if (sole === null) throw new InvalidArgumentError('could not choose an IP address to advertise since this system has multiple addresses');
      advertise = sole;
    }
  }
  // Port 0 picks a port when listening: without its own port the advertised address is the bound one.
  if (listenPort === '0' && splitPort(advertise).port === null) {
    if (advertise !== listenHost) throw new InvalidArgumentError(`advertise address ${advertise} needs a port when the listen address ${listen} picks one`);
    return { listen, advertise: undefined };
  }
  return { listen, advertise: withPort(advertise, listenPort) };
}

function first(f: Filters, key: string): readonly string[] {
  return f.get(key) ?? [];
}

function labelFilter(values: readonly string[]): Record<string, string> | undefined {
  if (values.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i < 0) out[v] = '';
    else out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

function common(f: Filters, exactNames = false): ListFilters {
  const ids = first(f, 'id');
  const names = first(f, 'name');
  const exact = first(f, 'names');
  const labels = labelFilter(first(f, 'label'));
  return {
    ...(ids.length > 0 ? { idPrefixes: ids } : {}),
    ...(names.length > 0 ? (exactNames ? { names } : { namePrefixes: names }) : {}),
    ...(exact.length > 0 ? { names: exact } : {}),
    ...(labels !== undefined ? { labels } : {}),
  };
}

/**
 * dockerode puts its options in the body too, so an update's spec carries a lowercase `version`
 * key; dockerd's case-insensitive decoding ignores it (no spec has such a field): so do we.
 */
function withoutClientVersion(body: unknown): unknown {
  if (!isObj(body) || !('version' in body)) return body;
  const { version: _version, ...rest } = body;
  return rest;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** After an autolock change: answer once this manager's own keys follow it (bounded). */
async function settleKeys(m: Manager, spec: unknown): Promise<void> {
  const enc = isObj(spec) && isObj(spec['EncryptionConfig']) ? spec['EncryptionConfig'] : null;
  if (enc === null || typeof enc['AutoLockManagers'] !== 'boolean') return;
  if (m.keys instanceof KeyManagerDekSource) await m.keys.settled(enc['AutoLockManagers']);
}

export function registerSwarmRoutes(api: ApiServer, p: SwarmPlugin): void {
  const backend = (): ControlBackend => {
    const b = p.backend;
    if (b === null && p.locked) throw new UnavailableError(LOCKED_MESSAGE);
    if (b === null) throw new UnavailableError(p.inSwarm ? MSG_WORKER_NOT_MANAGER : MSG_NO_SWARM);
    return b;
  };
  /** The backend for a read: on a follower, once its store has caught up with the leader's commit. */
  const reader = (): Promise<ControlBackend> => backend().fresh();
  const exclusive = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    if (p.busy !== null) throw new UnavailableError(`a swarm ${p.busy} is already in progress on this node; wait for it to finish`);
    p.busy = what;
    try {
      return await fn();
    } finally {
      p.busy = null;
    }
  };

  // ------------------------------------------------------------------------------- swarm
  api.route('POST', '/swarm/init', async (req) => {
    const body = (await req.json()) ?? {};
    if (!isObj(body)) throw new InvalidArgumentError('swarm init needs a JSON object body');
    const force = body['ForceNewCluster'] === true;
    if (p.inSwarm && !force) throw new UnavailableError(MSG_ALREADY_IN_SWARM);
    const pool = addressPool(body);
    return exclusive('init', async () => {
      let m: Manager;
      if (p.worker !== null) await p.leaveWorker();
      if (force && (await exists(path.join(p.dataRoot, STATE_FILE)))) {
        await p.stopAgent();
        const old = p.detach();
        if (old !== null) await old.close();
        m = await Manager.forceNewCluster({ dataRoot: p.dataRoot, ...p.managerOptions() });
      } else {
        const { listen, advertise } = listenAndAdvertise(p, body);
        m = await Manager.init({ dataRoot: p.dataRoot, listenAddr: listen, ...(advertise !== undefined ? { advertiseAddr: advertise } : {}), ...pool, ...p.managerOptions() });
      }
      p.attach(m);
      const spec = isObj(body['Spec']) ? { ...body['Spec'] } : {};
      if (body['AutoLockManagers'] === true) spec['EncryptionConfig'] = { AutoLockManagers: true };
      const b = backend();
      const c = b.api.getCluster();
      const current = effectiveSpec(c.Spec);
      const wanted = mergeNonZero(current, spec);
      if (JSON.stringify(wanted) !== JSON.stringify(current)) await b.updateCluster(c.ID, c.Version.Index, wanted, {});
      await settleKeys(m, wanted);
      p.logger.info({ nodeId: m.nodeId, addr: m.addr }, 'swarm initialized');
      return reply.json(m.nodeId);
    });
  });

  api.route('POST', '/swarm/join', async (req) => {
    const body = (await req.json()) ?? {};
    if (!isObj(body)) throw new InvalidArgumentError('swarm join needs a JSON object body');
    if (p.inSwarm) throw new UnavailableError(MSG_ALREADY_IN_SWARM);
    const remotes = Array.isArray(body['RemoteAddrs']) ? body['RemoteAddrs'].map(str).filter((a) => a !== '') : [];
    const token = str(body['JoinToken']);
    if (remotes.length === 0) throw new InvalidArgumentError('at least 1 RemoteAddr is required to join');
    if (token === '') throw new InvalidArgumentError('a join token is required to join a swarm');
    return exclusive('join', async () => {
      const { listen, advertise } = listenAndAdvertise(p, body);
      let last: unknown = null;
      for (const remote of remotes) {
        try {
          const m = await Manager.join({ dataRoot: p.dataRoot, listenAddr: listen, ...(advertise !== undefined ? { advertiseAddr: advertise } : {}), remoteAddr: withPort(remote, '2377'), token, ...p.managerOptions() });
          p.attach(m);
          p.logger.info({ nodeId: m.nodeId, remote }, 'joined the swarm as a manager');
          return reply.empty(200);
        } catch (err) {
          if (err instanceof ManagerError && err.code === 'WRONG_TOKEN_ROLE') {
            // A worker token: this node joins as a worker and runs the agent.
            await p.joinWorker(withPort(remote, '2377'), token);
            return reply.empty(200);
          }
          last = err;
        }
      }
      throw last;
    });
  });

  api.route('POST', '/swarm/leave', async (req) => {
    const m = p.manager;
    if (p.locked) {
      if (!boolValue(req.query, 'force')) throw new UnavailableError('Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.');
      return exclusive('leave', async () => {
        await p.forgetLocked();
        p.logger.info('left the swarm (locked manager, state forgotten)');
        return reply.empty(200);
      });
    }
    if (m === null && p.inSwarm) {
      return exclusive('leave', async () => {
        await p.leaveWorker();
        p.logger.info('left the swarm (worker)');
        return reply.empty(200);
      });
    }
    if (m === null) throw new UnavailableError(MSG_NOT_IN_SWARM);
    const force = boolValue(req.query, 'force');
    if (!force) {
      // dockerd refuses a manager's leave without --force, with the quorum arithmetic.
      const managers = m.store.find('node').filter((n) => n.Spec.Role === 'manager' && n.ManagerStatus !== undefined);
      const reachable = managers.filter((n) => n.ManagerStatus?.Reachability === 'reachable' || n.ManagerStatus?.Leader === true).length;
      const total = managers.length;
      let msg = 'You are attempting to leave the swarm on a node that is participating as a manager. ';
      if (total <= 1) {
        msg += 'Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ';
      } else {
        msg += `Removing this node leaves ${reachable - 1} managers out of ${total}. `;
        if (reachable - 1 <= Math.floor(total / 2)) msg += 'Without a Raft quorum your swarm will be inaccessible. ';
        msg += 'The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.';
      }
      throw new UnavailableError(msg.trim());
    }
    return exclusive('leave', async () => {
      await p.stopAgent();
      await m.leave({ force });
      p.detach();
      p.logger.info('left the swarm');
      return reply.empty(200);
    });
  });

  api.route('GET', '/swarm', async () => reply.json(swarmObject((await reader()).api.getCluster())));
  api.route('GET', '/swarm/unlockkey', async () => reply.json({ UnlockKey: (await reader()).api.getUnlockKey().unlockKey }));
  api.route('POST', '/swarm/update', async (req) => {
    const b = backend();
    const version = versionParam(req.query);
    const body = withoutClientVersion(await req.json());
    const c = b.api.getCluster();
    await b.updateCluster(c.ID, version, body ?? {}, {
      workerToken: parseBoolParam(req.query, 'rotateWorkerToken'),
      managerToken: parseBoolParam(req.query, 'rotateManagerToken'),
      unlockKey: parseBoolParam(req.query, 'rotateManagerUnlockKey'),
    });
    await settleKeys(b.manager, body);
    return reply.empty(200);
  });
  api.route('POST', '/swarm/unlock', async (req) => {
    if (!p.locked) {
      backend();
      throw new ConflictError('swarm is not locked');
    }
    const body = (await req.json()) ?? {};
    const key = isObj(body) ? str(body['UnlockKey']).trim() : '';
    // dockerd: a key not of the SWMKEY-1-<base64> form is a 400 "invalid key string".
    if (!key.startsWith(UNLOCK_KEY_PREFIX) || !/^[A-Za-z0-9+/]+={0,2}$/.test(key.slice(UNLOCK_KEY_PREFIX.length))) throw new InvalidArgumentError('invalid key string');
    return exclusive('unlock', async () => {
      try {
        await p.unlock(key);
      } catch (err) {
        if (err instanceof KeyManagerError && err.code === 'ERR_KEYMANAGER_INVALID_KEY') {
          p.logger.warn('swarm unlock refused: wrong key');
          throw new ApiError(401, 'ERR_UNAUTHORIZED', 'swarm could not be unlocked: invalid key provided');
        }
        throw err;
      }
      return reply.empty(200);
    });
  });

  // ------------------------------------------------------------------------------- nodes
  api.route('GET', '/nodes', async (req) => {
    const b = await reader();
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['id', 'label', 'membership', 'name', 'node.label', 'role']);
    const roles = first(f, 'role');
    for (const r of roles) if (r !== 'manager' && r !== 'worker') throw new InvalidArgumentError(`invalid role filter '${r}'`);
    const nodeLabels = labelFilter(first(f, 'node.label'));
    const { labels: engineLabels, ...rest } = common(f);
    let nodes = b.api.listNodes({ ...rest, ...(nodeLabels !== undefined ? { labels: nodeLabels } : {}), ...(roles.length > 0 ? { roles: roles as NodeRole[] } : {}) });
    if (engineLabels !== undefined) {
      nodes = nodes.filter((n) => Object.entries(engineLabels).every(([k, v]) => {
        const have = n.Description?.Engine?.Labels?.[k];
        return have !== undefined && (v === '' || have === v);
      }));
    }
    const membership = first(f, 'membership');
    if (membership.length > 0 && !membership.includes('accepted')) nodes = [];
    // ManagerStatus (Leader, Reachability) from this manager's live Raft state, as dockerd answers.
    return reply.json(b.manager.membership.withLiveStatus(nodes));
  });
  api.route('GET', '/nodes/{id}', async (req) => {
    const b = await reader();
    return reply.json(b.manager.membership.withLiveStatus([b.api.getNode(req.params['id']!)])[0]);
  });
  api.route('POST', '/nodes/{id}/update', async (req) => {
    const b = backend();
    const version = versionParam(req.query);
    await b.updateNode(req.params['id']!, version, withoutClientVersion(await req.json()));
    return reply.empty(200);
  });
  api.route('DELETE', '/nodes/{id}', async (req) => {
    await backend().removeNode(req.params['id']!, boolValue(req.query, 'force'));
    return reply.empty(200);
  });

  // ---------------------------------------------------------------------------- services
  api.route('GET', '/services', async (req) => {
    const b = await reader();
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['id', 'label', 'mode', 'name']);
    let list = b.api.listServices(common(f));
    const modes = first(f, 'mode');
    if (modes.length > 0) {
      const MODE_OF: Record<string, string> = { replicated: 'Replicated', global: 'Global', 'replicated-job': 'ReplicatedJob', 'global-job': 'GlobalJob' };
      for (const m of modes) if (MODE_OF[m] === undefined) throw new InvalidArgumentError(`invalid filter 'mode=${m}'`);
      list = list.filter((s) => modes.some((m) => isObj(s.Spec.Mode) && MODE_OF[m]! in s.Spec.Mode));
    }
    if (!parseBoolParam(req.query, 'status')) return reply.json(list);
    const tasks = b.api.listTasks();
    const active = b.api.listNodes().filter((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active').length;
    return reply.json(list.map((s) => ({ ...s, ServiceStatus: serviceStatus(s, tasks, active) })));
  });
  api.route('GET', '/services/{id}', async (req) => {
    const s = (await reader()).api.getService(req.params['id']!);
    return reply.json(parseBoolParam(req.query, 'insertDefaults') ? withServiceDefaults(s) : s);
  });
  api.route('POST', '/services/create', async (req) => {
    const s = await backend().createService(await req.json());
    return reply.json({ ID: s.ID, Warnings: null }, 201);
  });
  api.route('POST', '/services/{id}/update', async (req) => {
    const b = backend();
    const version = versionParam(req.query);
    const rollback = req.query.get('rollback') === 'previous';
    const body = withoutClientVersion(await req.json());
    await b.updateService(req.params['id']!, version, rollback ? undefined : body, rollback);
    return reply.json({ Warnings: null });
  });
  api.route('DELETE', '/services/{id}', async (req) => {
    await backend().removeService(req.params['id']!);
    return reply.empty(200);
  });
  // /services/{id}/logs, /tasks/{id}/logs and shoal's exec endpoints (logs.ts).
  registerLogRoutes(api, p);

  // ------------------------------------------------------------------------------- tasks
  api.route('GET', '/tasks', async (req) => {
    const b = await reader();
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['id', 'name', 'service', 'node', 'label', 'desired-state', '_up-to-date']);
    const serviceIds = first(f, 'service').flatMap((ref) => {
      try {
        return [b.api.getService(ref).ID];
      } catch {
        return [];
      }
    });
    const nodeIds = first(f, 'node').flatMap((ref) => {
      try {
        return [b.api.getNode(ref).ID];
      } catch {
        return [];
      }
    });
    if ((first(f, 'service').length > 0 && serviceIds.length === 0) || (first(f, 'node').length > 0 && nodeIds.length === 0)) return reply.json([]);
    const states = first(f, 'desired-state');
    for (const s of states) if (!['running', 'shutdown', 'accepted'].includes(s)) throw new InvalidArgumentError(`Invalid desired-state filter: '${s}'`);
    // A task `label` filter matches its service's labels, as swarmkit's (task.ServiceAnnotations):
    // `docker stack ps` finds a stack's tasks by com.docker.stack.namespace.
    const { labels: serviceLabels, ...taskFilters } = common(f);
    let tasks = b.api.listTasks({
      ...taskFilters,
      ...(serviceIds.length > 0 ? { serviceIds } : {}),
      ...(nodeIds.length > 0 ? { nodeIds } : {}),
      ...(states.length > 0 ? { desiredStates: states as TaskState[] } : {}),
    });
    if (serviceLabels !== undefined) {
      const matching = new Set(b.api.listServices({ labels: serviceLabels }).map((s) => s.ID));
      tasks = tasks.filter((t) => matching.has(t.ServiceID));
    }
    // The docker CLI's progress loop asks `_up-to-date=true`: tasks made from their service's
    // current template (swarmkit's !IsTaskDirty), so old tasks of a rolling update do not count.
    if (first(f, '_up-to-date').some((v) => v === 'true' || v === '1')) {
      const templates = new Map(b.api.listServices().map((s) => [s.ID, stableJson(s.Spec.TaskTemplate)]));
      tasks = tasks.filter((t) => templates.get(t.ServiceID) === stableJson(t.Spec));
    }
    return reply.json(tasks);
  });
  api.route('GET', '/tasks/{id}', async (req) => reply.json((await reader()).api.getTask(req.params['id']!)));

  // --------------------------------------------------------------------- secrets, configs
  api.route('GET', '/secrets', async (req) => {
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['id', 'label', 'name', 'names']);
    return reply.json((await reader()).api.listSecrets(common(f)));
  });
  api.route('GET', '/secrets/{id}', async (req) => reply.json((await reader()).api.getSecret(req.params['id']!)));
  api.route('POST', '/secrets/create', async (req) => {
    const s = await backend().createSecret(await req.json());
    return reply.json({ ID: s.ID }, 201);
  });
  api.route('POST', '/secrets/{id}/update', async (req) => {
    const b = backend();
    await b.updateSecret(req.params['id']!, versionParam(req.query), withoutClientVersion(await req.json()));
    return reply.empty(200);
  });
  api.route('DELETE', '/secrets/{id}', async (req) => {
    await backend().removeSecret(req.params['id']!);
    return reply.empty(204);
  });
  api.route('GET', '/configs', async (req) => {
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['id', 'label', 'name', 'names']);
    return reply.json((await reader()).api.listConfigs(common(f)));
  });
  api.route('GET', '/configs/{id}', async (req) => reply.json((await reader()).api.getConfig(req.params['id']!)));
  api.route('POST', '/configs/create', async (req) => {
    const c = await backend().createConfig(await req.json());
    return reply.json({ ID: c.ID }, 201);
  });
  api.route('POST', '/configs/{id}/update', async (req) => {
    const b = backend();
    await b.updateConfig(req.params['id']!, versionParam(req.query), withoutClientVersion(await req.json()));
    return reply.empty(200);
  });
  api.route('DELETE', '/configs/{id}', async (req) => {
    await backend().removeConfig(req.params['id']!);
    return reply.empty(204);
  });

  // ---------------------------------------------------------------------------- networks
  api.route('GET', '/networks', async (req) => {
    const f = parseFilters(req.query);
    checkFilterKeys(f, ['driver', 'id', 'label', 'name', 'scope', 'type', 'dangling']);
    const { namePrefixes: _n, ...rest } = common(f);
    const names = first(f, 'name');
    const drivers = first(f, 'driver');
    const scopes = first(f, 'scope');
    const list = (await reader())
      .api.listNetworks(rest)
      .map(networkResource)
      .filter((n) => names.length === 0 || names.some((x) => String(n['Name']).includes(x)))
      .filter((n) => drivers.length === 0 || drivers.includes(String(n['Driver'])))
      .filter(() => scopes.length === 0 || scopes.includes('swarm'));
    return reply.json(list);
  });
  api.route('GET', '/networks/{id}', async (req) => reply.json(networkResource((await reader()).api.getNetwork(req.params['id']!))));
  api.route('POST', '/networks/create', async (req) => {
    const n = await backend().createNetwork(networkSpecOf(await req.json()));
    return reply.json({ Id: n.ID, Warning: '' }, 201);
  });
  api.route('DELETE', '/networks/{id}', async (req) => {
    await backend().removeNetwork(req.params['id']!);
    return reply.empty(204);
  });
}
