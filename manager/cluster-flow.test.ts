// The whole control path in one process: a Manager (swarm init, real Raft, gRPC + mutual TLS on
// loopback) serving Control and Dispatcher and running the orchestrators and scheduler because it
// leads, and an Agent with the test executor holding a worker certificate obtained the real way
// (the CA join flow with the cluster's worker join token). Services are driven through the
// manager's in-process ControlApi, as the daemon drives them.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NodeIdentity } from '../ca/identity.js';

import { joinCluster } from '../ca/join.js';
import { WORKER_ROLE } from '../ca/roles.js';
import { Agent } from '../worker/agent/agent.js';
import { FakeExecutor } from '../worker/agent/testing/fake-executor.js';
import type { ControlApi } from './controlapi/control-api.js';
import { Manager } from './manager.js';
import { clusterOf } from './membership/cluster-state.js';
import { byServiceId } from './store/index.js';
import { waitFor } from './store/testing/cluster.js';
import type { Node, Service, Task } from './store/types.js';
import { eventually, ManagerHarness, type ManagerProcess } from './testing/harness.js';

let dir: string;
let manager: Manager;
let agent: Agent | null = null;
let control: ControlApi;
let workerId: string;
const executor = new FakeExecutor(1);

const spec = (replicas: number): Record<string, unknown> => ({
  Name: 'web',
  TaskTemplate: {
    ContainerSpec: { Image: 'busybox:latest', Command: ['sleep', '1000'] },
    RestartPolicy: { Condition: 'any', Delay: 100_000_000, MaxAttempts: 0 },
  },
  Mode: { Replicated: { Replicas: replicas } },
});

function tasksOf(serviceId: string): Task[] {
  return manager.store.find('task', byServiceId(serviceId));
}

/** Tasks the orchestrators want running, by the store. */
function wanted(serviceId: string): Task[] {
  return tasksOf(serviceId).filter((t) => t.DesiredState === 'running');
}

describe('cluster flow: manager (control, dispatcher, orchestrators, scheduler) + agent', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-cluster-flow-'));
    manager = await Manager.init({
      dataRoot: path.join(dir, 'manager'),
      listenAddr: '127.0.0.1:0',
      tickMs: 50,
      leaderServices: { leadershipCheckMs: 20, dispatcher: { heartbeatPeriodMs: 500, heartbeatJitterMs: 50, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } },
    });
    control = manager.leaderServices!.control!;
    const token = clusterOf(manager.store)?.JoinTokens?.Worker ?? '';
    const identity = await joinCluster({ address: manager.addr, token });
    expect(identity.role).toBe(WORKER_ROLE);
    workerId = identity.nodeId;
    agent = await Agent.start({
      dataRoot: path.join(dir, 'worker'),
      identity,
      managers: [manager.addr],
      executor,
      description: { Hostname: 'worker-1', Platform: { OS: 'linux', Architecture: 'x86_64' }, Engine: { EngineVersion: 'test' } },
      backoffInitialMs: 20,
      backoffMaxMs: 200,
      statusBatchMs: 10,
    });
  }, 30_000);

  afterAll(async () => {
    await agent?.close();
    await manager?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('the leader runs the orchestrators and scheduler; the worker joined with the worker token becomes a ready node', async () => {
    await waitFor('the orchestrators to run on the leader', () => manager.leaderServices!.running);
    await waitFor('the worker node to be ready', () => manager.store.get('node', workerId)?.Status.State === 'ready');
    const node = control.getNode(workerId);
    expect(node.Spec.Role).toBe('worker');
    expect(node.Description?.Hostname).toBe('worker-1');
    // No agent runs on the manager here: keep tasks off it, as `docker node update --availability drain` would.
    const self = control.getNode(manager.nodeId);
    await control.updateNode(manager.nodeId, self.Version.Index, { ...self.Spec, Availability: 'drain' });
  });

  it('a replicated service of 3: three tasks scheduled to the worker reach RUNNING; scaling to 1 stops two', async () => {
    const svc = await control.createService(spec(3));
    await waitFor(
      'three running tasks on the worker',
      () => {
        const ts = wanted(svc.ID);
        return ts.length === 3 && ts.every((t) => t.NodeID === workerId && t.Status.State === 'running');
      },
      20_000,
    );
    expect(new Set(wanted(svc.ID).map((t) => t.Slot))).toEqual(new Set([1, 2, 3]));
    expect(executor.running().sort()).toEqual(wanted(svc.ID).map((t) => t.ID).sort());

    const cur = control.getService(svc.ID);
    await control.updateService(svc.ID, cur.Version.Index, spec(1));
    await waitFor('one task left running', () => executor.running().length === 1 && wanted(svc.ID).length === 1, 20_000);
    const left = wanted(svc.ID)[0]!;
    expect(left.Status.State).toBe('running');
    expect(executor.running()).toEqual([left.ID]);
    // the stopped two are shut down (or already reaped, having desired REMOVE)
    for (const t of tasksOf(svc.ID).filter((x) => x.ID !== left.ID)) {
      expect(t.DesiredState).toBe('remove');
    }
    await control.removeService(svc.ID);
    await waitFor('the service tasks to be shut down', () => executor.running().length === 0 && tasksOf(svc.ID).every((t) => t.DesiredState !== 'running'), 20_000);
  });

  it('a task that exits non-zero is replaced in the same slot per the restart policy; removing the service shuts its tasks down', async () => {
    const svc = await control.createService({ ...spec(2), Name: 'crashy' });
    await waitFor('two running tasks', () => wanted(svc.ID).length === 2 && wanted(svc.ID).every((t) => t.Status.State === 'running'), 20_000);
    const victim = wanted(svc.ID).find((t) => t.Slot === 1)!;
    executor.exit(victim.ID, 3);
    await waitFor(
      'a replacement in slot 1 to run',
      () => wanted(svc.ID).find((t) => t.Slot === 1 && t.ID !== victim.ID && t.Status.State === 'running'),
      20_000,
    );
    const failed = manager.store.get('task', victim.ID)!;
    expect(failed.Status.State).toBe('failed');
    expect(failed.Status.Err).toContain('non-zero exit (3)');
    expect(failed.DesiredState).toBe('shutdown');
    expect(wanted(svc.ID)).toHaveLength(2);
    expect(executor.running()).toHaveLength(2);

    const ids = wanted(svc.ID).map((t) => t.ID);
    await control.removeService(svc.ID);
    await waitFor('every task of the removed service stopped', () => executor.running().length === 0, 20_000);
    await waitFor(
      'the tasks shut down in the store (or reaped)',
      () => ids.every((id) => {
        const t = manager.store.get('task', id);
        return t === undefined || t.Status.State === 'shutdown';
      }),
      20_000,
    );
  });

  it('close stops the orchestrators, the scheduler and the dispatcher (runs last in this block)', async () => {
    const ls = manager.leaderServices!;
    expect(ls.running).toBe(true);
    expect(ls.dispatcher?.leading).toBe(true);
    await manager.close();
    expect(ls.running).toBe(false);
    expect(ls.dispatcher?.leading).toBe(false);
  });
});

// ------------------------------------------------------------------------------------------------
// Three managers, each in its own process; the agent in this one. The leader is killed mid-way:
// the new leader's dispatcher takes the worker's session and its orchestrators keep the service.

const TUNING = {
  tickMs: 50,
  electionTick: 10,
  heartbeatTick: 1,
  proposeTimeoutMs: 5000,
  leaderServices: { leadershipCheckMs: 20, dispatcher: { heartbeatPeriodMs: 500, heartbeatJitterMs: 50, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } },
} as const;
const WAIT_MS = 30_000;

describe('cluster flow with three manager processes and a leader crash', () => {
  let h: ManagerHarness | null = null;
  let worker: Agent | null = null;
  const exec = new FakeExecutor(1);
  let identity: NodeIdentity;

  afterAll(async () => {
    await worker?.close();
    await h?.cleanup();
  });

  const call = <T>(p: ManagerProcess, method: string, ...args: unknown[]): Promise<T> => p.request<T>('control', { method, args });

  async function leader(): Promise<ManagerProcess> {
    return eventually(
      'a leader running the orchestrators',
      async () => {
        for (const p of h!.running()) {
          const l = await p.request<{ leader: boolean; orchestrating: boolean }>('leading');
          if (l.leader && l.orchestrating) return p;
        }
        return undefined;
      },
      WAIT_MS,
    );
  }

  async function serviceTasks(p: ManagerProcess, serviceId: string): Promise<Task[]> {
    return call<Task[]>(p, 'listTasks', { serviceIds: [serviceId], desiredStates: ['running'] });
  }

  it('a cut-off leader stops orchestrating; a service of 3 keeps running through the death of the next leader, whose successor replaces a crashed task and scales it', async () => {
    h = await ManagerHarness.create(TUNING);
    const m1 = await h.init();
    const tokens = await m1.request<{ Worker: string; Manager: string }>('tokens');
    await h.join(m1, tokens.Manager);
    await h.join(m1, tokens.Manager);
    const followers = h.running().filter((p) => p !== m1);
    // The worker's certificate from a follower's CA, with the worker token; its agent knows only that follower.
    identity = await joinCluster({ address: followers[0]!.addr, token: tokens.Worker });
    worker = await Agent.start({
      dataRoot: path.join(h.baseDir, 'worker'),
      identity,
      managers: [followers[0]!.addr],
      executor: exec,
      description: { Hostname: 'worker-1', Platform: { OS: 'linux', Architecture: 'x86_64' }, Engine: { EngineVersion: 'test' } },
      backoffInitialMs: 20,
      backoffMaxMs: 200,
      statusBatchMs: 10,
    });
    let lead = await leader();
    await eventually('the worker node to be ready', async () => (await call<Node>(lead, 'getNode', identity.nodeId)).Status.State === 'ready', WAIT_MS);
    for (const p of h.running()) {
      const n = await call<Node>(lead, 'getNode', p.nodeId);
      await call(lead, 'updateNode', p.nodeId, n.Version.Index, { ...n.Spec, Availability: 'drain' });
    }
    const svc = await call<Service>(lead, 'createService', spec(3));
    await eventually(
      'three running tasks on the worker',
      async () => {
        const ts = await serviceTasks(lead, svc.ID);
        return ts.length === 3 && ts.every((t) => t.NodeID === identity.nodeId && t.Status.State === 'running') && exec.running().length === 3;
      },
      WAIT_MS,
    );

    // Leadership lost without a crash (the leader cut off from both peers): it stops its loops.
    const cut = lead;
    const others = h.running().filter((p) => p !== cut).map((p) => p.nodeId);
    await cut.request('partition', { peers: others });
    await eventually(
      'the cut-off leader to step down and stop orchestrating',
      async () => {
        const l = await cut.request<{ leader: boolean; orchestrating: boolean }>('leading');
        return !l.leader && !l.orchestrating;
      },
      WAIT_MS,
    );
    for (const p of h.running()) if (p !== cut) await p.request('partition', { peers: [cut.nodeId] });
    lead = await leader();
    expect(lead).not.toBe(cut);
    for (const p of h.running()) await p.request('partition', { peers: [] });
    await eventually(
      'three running tasks again under the second leader',
      async () => {
        const ts = await serviceTasks(lead, svc.ID);
        return ts.length === 3 && ts.every((t) => t.Status.State === 'running') && exec.running().length === 3;
      },
      WAIT_MS,
    );

    await lead.kill('SIGKILL');
    const old = lead;
    lead = await leader();
    expect(lead).not.toBe(old);
    // The agent's session moves to the new leader; the tasks keep running (3, nothing restarted).
    await eventually('the worker session on the new leader', async () => worker!.manager === lead.addr, WAIT_MS);
    const before = await serviceTasks(lead, svc.ID);
    expect(before.map((t) => t.Status.State)).toEqual(['running', 'running', 'running']);
    expect(exec.running().sort()).toEqual(before.map((t) => t.ID).sort());

    // A crash now is handled by the new leader's restart supervisor, scheduler and dispatcher.
    const victim = before.find((t) => t.Slot === 2)!;
    exec.exit(victim.ID, 1);
    await eventually(
      'a replacement in slot 2 running, three in all',
      async () => {
        const ts = await serviceTasks(lead, svc.ID);
        return ts.length === 3 && ts.every((t) => t.Status.State === 'running') && ts.some((t) => t.Slot === 2 && t.ID !== victim.ID) && exec.running().length === 3;
      },
      WAIT_MS,
    );
    expect(exec.running()).not.toContain(victim.ID);
    // And the new leader scales it.
    const cur = await call<Service>(lead, 'getService', svc.ID);
    await call(lead, 'updateService', svc.ID, cur.Version.Index, spec(4));
    await eventually('four running tasks', async () => (await serviceTasks(lead, svc.ID)).filter((t) => t.Status.State === 'running').length === 4 && exec.running().length === 4, WAIT_MS);
  }, 90_000);
});
