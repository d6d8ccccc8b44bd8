// The dispatcher over real gRPC + mutual TLS on loopback, against a real 3-manager store
// (StoreCluster), acting as worker nodes with raw Dispatcher clients and CA-issued certificates.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NodeIdentity } from '../../ca/identity.js';
import {
  AssignmentAction,
  AssignmentsMessage_Type,
  type AssignmentsMessage,
  type DispatcherClient,
  type SessionMessage,
  type UpdateTaskStatusResponse,
} from '../../proto/gen/shoal/dispatcher.js';
import { TaskState as P } from '../../proto/gen/shoal/types.js';
import { callUnary, isServiceError } from '../../proto/grpc/client.js';
import { newId } from '../store/ids.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { Task, TaskState } from '../store/types.js';
import { createNodeTask, DispatchCluster, waitFor } from './testing/harness.js';

// The grace period is (period + jitter) × 3: long enough that a test process starved on a loaded machine
// (other suites running beside it) does not lose its sessions between keep-alives.
const HEARTBEAT_MS = 500;

let cluster: DispatchCluster;
let leader: number;
let store: MemoryStore;
const clients: DispatcherClient[] = [];
const streams: grpc.ClientReadableStream<unknown>[] = [];
const keepAlives: NodeJS.Timeout[] = [];

beforeAll(async () => {
  cluster = await DispatchCluster.start({ size: 3, config: { heartbeatPeriodMs: HEARTBEAT_MS, heartbeatJitterMs: 10, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } });
  leader = await cluster.leaderId();
  store = cluster.stores.rs(leader).store;
  await waitFor('the leader to dispatch', () => cluster.manager(leader).dispatcher?.leading === true);
});

afterAll(async () => {
  for (const t of keepAlives) clearInterval(t);
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await cluster?.close();
});

function client(identity: NodeIdentity, memberId = leader): DispatcherClient {
  const c = cluster.client(cluster.manager(memberId).addr, identity);
  clients.push(c);
  return c;
}

interface OpenSession {
  readonly first: SessionMessage;
  readonly stream: grpc.ClientReadableStream<SessionMessage>;
}

/** Opens a session; heartbeats it (as an agent would) unless `keepAlive` is false. */
async function openSession(c: DispatcherClient, description: object = { Hostname: 'test-host' }, keepAlive = true): Promise<OpenSession> {
  const stream = c.session({ sessionId: '', descriptionJson: Buffer.from(JSON.stringify(description)) });
  streams.push(stream);
  const opened = await new Promise<OpenSession>((resolve, reject) => {
    stream.once('data', (first: SessionMessage) => resolve({ first, stream }));
    stream.once('error', reject);
  });
  stream.on('error', () => undefined);
  if (keepAlive) {
    keepAlives.push(setInterval(() => void callUnary(c.heartbeat.bind(c), { sessionId: opened.first.sessionId }).catch(() => undefined), HEARTBEAT_MS / 3));
  }
  return opened;
}

/** Collects an assignments stream's messages. */
function watchAssignments(c: DispatcherClient, sessionId: string): AssignmentsMessage[] {
  const got: AssignmentsMessage[] = [];
  const stream = c.assignments({ sessionId });
  streams.push(stream);
  stream.on('data', (m: AssignmentsMessage) => got.push(m));
  stream.on('error', () => undefined);
  return got;
}

function createTask(nodeId: string, state: TaskState, extra: Partial<Task> = {}): Promise<Task> {
  return createNodeTask(store, nodeId, state, extra);
}

function update(c: DispatcherClient, sessionId: string, updates: { taskId: string; state: P; err?: string }[]): Promise<UpdateTaskStatusResponse> {
  return callUnary(c.updateTaskStatus.bind(c), {
    sessionId,
    updates: updates.map((u) => ({
      taskId: u.taskId,
      status: { timestampUnixMs: Date.now(), state: u.state, message: 'm', err: u.err ?? '', containerId: '', pid: 0, exitCode: 0 },
    })),
  });
}

describe('dispatcher sessions', () => {
  it('registers the node from its certificate: ready, with its description, hostname and engine labels', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c, {
      Hostname: 'node-a',
      Platform: { OS: 'linux', Architecture: 'x86_64' },
      Resources: { NanoCPUs: 2e9, MemoryBytes: 1 << 30 },
      Engine: { EngineVersion: 'shoal', Labels: { zone: 'a' } },
    });
    expect(first.sessionId).toMatch(/^[0-9a-f]{32}$/);
    expect(first.heartbeatPeriodMs).toBe(HEARTBEAT_MS);
    expect(first.managers.map((m) => m.addr).sort()).toEqual(cluster.peers().map((p) => p.addr).sort());
    const node = store.get('node', w.nodeId)!;
    expect(node.Status.State).toBe('ready');
    expect(node.Status.Addr).toBe('127.0.0.1');
    expect(node.Spec).toEqual({ Role: 'worker', Availability: 'active' });
    expect(node.Description?.Hostname).toBe('node-a');
    expect(node.Description?.Engine?.Labels).toEqual({ zone: 'a' });
    expect(JSON.parse(first.nodeJson.toString()).ID).toBe(w.nodeId);
    // A second session of the same node updates the same Node object: no duplicate.
    await openSession(client(w), { Hostname: 'node-a-renamed' });
    expect(store.find('node').filter((n) => n.ID === w.nodeId)).toHaveLength(1);
    expect(store.get('node', w.nodeId)!.Description?.Hostname).toBe('node-a-renamed');
  });

  it('a follower redirects the session to the leader with the manager list', async () => {
    const follower = cluster.stores.ids.find((id) => id !== leader)!;
    const c = client(await cluster.workerIdentity(), follower);
    const stream = c.session({ sessionId: '', descriptionJson: Buffer.from('{}') });
    streams.push(stream);
    const messages: SessionMessage[] = [];
    stream.on('data', (m: SessionMessage) => messages.push(m));
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain(`leader at ${cluster.manager(leader).addr}`);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.sessionId).toBe('');
    expect(messages[0]!.leaderAddr).toBe(cluster.manager(leader).addr);
    expect(messages[0]!.managers).toHaveLength(3);
  });

  it('a node that stops heartbeating is marked down after the grace period, and its session is gone', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c, {}, false);
    // Two heartbeats keep it up; then silence.
    for (let i = 0; i < 2; i++) {
      const res = await callUnary(c.heartbeat.bind(c), { sessionId: first.sessionId });
      expect(Math.abs(res.periodMs - HEARTBEAT_MS)).toBeLessThanOrEqual(10);
    }
    expect(store.get('node', w.nodeId)!.Status.State).toBe('ready');
    await waitFor('the node to be marked down', () => store.get('node', w.nodeId)!.Status.State === 'down', 10_000);
    expect(store.get('node', w.nodeId)!.Status.Message).toBe('heartbeat failure');
    const err = await callUnary(c.heartbeat.bind(c), { sessionId: first.sessionId }).catch((e: unknown) => e);
    expect(isServiceError(err) && err.code).toBe(grpc.status.NOT_FOUND);
    // It comes back: the same Node object is ready again.
    await openSession(client(w));
    expect(store.get('node', w.nodeId)!.Status.State).toBe('ready');
    expect(store.find('node').filter((n) => n.ID === w.nodeId)).toHaveLength(1);
  });
});

describe('task status updates', () => {
  it('move forward only: backwards and manager-owned states are refused and nothing changes', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c);
    const running = await createTask(w.nodeId, 'running');
    const done = await createTask(w.nodeId, 'complete');
    const fresh = await createTask(w.nodeId, 'assigned');
    const res = await update(c, first.sessionId, [
      { taskId: running.ID, state: P.TASK_STATE_STARTING },
      { taskId: done.ID, state: P.TASK_STATE_RUNNING },
      { taskId: fresh.ID, state: P.TASK_STATE_PENDING },
    ]);
    const reasons = new Map(res.refused.map((r) => [r.taskId, r.reason]));
    expect(reasons.get(running.ID)).toBe('task state only moves forward: running → starting goes back');
    expect(reasons.get(done.ID)).toBe('task is already complete; a finished task cannot become running');
    expect(reasons.get(fresh.ID)).toBe('state pending is set by managers, not reported by workers');
    expect(store.get('task', running.ID)!.Status.State).toBe('running');
    expect(store.get('task', done.ID)!.Status.State).toBe('complete');
    expect(store.get('task', fresh.ID)!.Status.State).toBe('assigned');
    // Forward moves, also skipping states, are applied.
    const ok = await update(c, first.sessionId, [
      { taskId: running.ID, state: P.TASK_STATE_FAILED, err: 'task: non-zero exit (2)' },
      { taskId: fresh.ID, state: P.TASK_STATE_PREPARING },
    ]);
    expect(ok.refused).toEqual([]);
    expect(store.get('task', running.ID)!.Status).toMatchObject({ State: 'failed', Err: 'task: non-zero exit (2)' });
    expect(store.get('task', fresh.ID)!.Status.State).toBe('preparing');
  });

  it("a worker cannot update another node's task; the whole request is refused", async () => {
    const a = await cluster.workerIdentity();
    const b = await cluster.workerIdentity();
    const ca = client(a);
    const { first } = await openSession(ca);
    await openSession(client(b));
    const mine = await createTask(a.nodeId, 'assigned');
    const theirs = await createTask(b.nodeId, 'assigned');
    const err = await update(ca, first.sessionId, [
      { taskId: mine.ID, state: P.TASK_STATE_ACCEPTED },
      { taskId: theirs.ID, state: P.TASK_STATE_FAILED },
    ]).catch((e: unknown) => e);
    expect(isServiceError(err) && err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(isServiceError(err) && err.details).toBe(`node ${a.nodeId} cannot update task ${theirs.ID}: it is assigned to node ${b.nodeId}`);
    expect(store.get('task', theirs.ID)!.Status.State).toBe('assigned');
    expect(store.get('task', mine.ID)!.Status.State).toBe('assigned');
  });

  it('a stale or foreign session ID is refused', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    await openSession(c);
    const err = await update(c, 'not-my-session', []).catch((e: unknown) => e);
    expect(isServiceError(err) && err.code).toBe(grpc.status.NOT_FOUND);
  });

  it('many updates of one request are written in one store transaction', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c);
    const { result: ids } = await store.update((tx) =>
      Array.from({ length: 40 }, () =>
        tx.create('task', {
          Spec: { ContainerSpec: { Image: 'busybox' } },
          ServiceID: '',
          Slot: 1,
          NodeID: w.nodeId,
          Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: 'assigned' },
          DesiredState: 'running',
        }).ID,
      ),
    );
    const tasks = ids.map((id) => store.get('task', id)!);
    const before = cluster.manager(leader).dispatcher!.writerStats.commits;
    const versionBefore = store.version;
    const res = await update(c, first.sessionId, tasks.map((t) => ({ taskId: t.ID, state: P.TASK_STATE_RUNNING })));
    expect(res.refused).toEqual([]);
    expect(cluster.manager(leader).dispatcher!.writerStats.commits - before).toBe(1);
    const versions = new Set(tasks.map((t) => store.get('task', t.ID)!.Version.Index));
    expect(versions.size).toBe(1);
    expect([...versions][0]).toBeGreaterThan(versionBefore);
  });
});

describe('assignments', () => {
  it('sends the complete set first (tasks and their secrets), then only changes', async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c);
    const { result: secret } = await store.update((tx) => tx.create('secret', { Spec: { Name: `s-${newId().slice(0, 8)}`, Data: Buffer.from('hunter2').toString('base64') } }));
    const t1 = await createTask(w.nodeId, 'assigned', {
      Spec: { ContainerSpec: { Image: 'busybox', Secrets: [{ SecretID: secret.ID, SecretName: secret.Spec.Name }] } },
    });
    await createTask(w.nodeId, 'pending'); // not assigned yet: not sent
    const got = watchAssignments(c, first.sessionId);
    await waitFor('the complete set', () => got.length >= 1);
    const complete = got[0]!;
    expect(complete.type).toBe(AssignmentsMessage_Type.TYPE_COMPLETE);
    const items = complete.changes.map((ch) => ch.assignment!.item!);
    expect(items.filter((i) => i.$case === 'taskJson').map((i) => JSON.parse((i as { taskJson: Buffer }).taskJson.toString()).ID)).toEqual([t1.ID]);
    const sent = items.find((i) => i.$case === 'secretJson') as { secretJson: Buffer } | undefined;
    expect(JSON.parse(sent!.secretJson.toString()).Spec.Data).toBe(Buffer.from('hunter2').toString('base64'));

    // A new task: an incremental update. A worker-reported status change: not echoed back.
    const t2 = await createTask(w.nodeId, 'assigned');
    await waitFor('the new task', () => got.length >= 2);
    expect(got[1]!.type).toBe(AssignmentsMessage_Type.TYPE_INCREMENTAL);
    expect(got[1]!.appliesTo).toBe(complete.resultsIn);
    expect(got[1]!.changes.map((ch) => JSON.parse((ch.assignment!.item as { taskJson: Buffer }).taskJson.toString()).ID)).toEqual([t2.ID]);
    await update(c, first.sessionId, [{ taskId: t2.ID, state: P.TASK_STATE_RUNNING }]);
    // Desired state shutdown: news. Deleting the task: a remove.
    await store.update((tx) => {
      const t = tx.get('task', t2.ID)!;
      tx.update('task', { ...t, DesiredState: 'shutdown' });
    });
    await waitFor('the desired-state change', () => got.length >= 3);
    expect(JSON.parse((got[2]!.changes[0]!.assignment!.item as { taskJson: Buffer }).taskJson.toString()).DesiredState).toBe('shutdown');
    await store.update((tx) => tx.delete('task', t1.ID));
    await waitFor('the removal', () => got.length >= 4);
    const removal = got[3]!.changes.map((ch) => [ch.action, ch.assignment!.item!.$case]);
    // The task goes, and with it the secret only it used.
    expect(removal).toEqual([
      [AssignmentAction.ASSIGNMENT_ACTION_REMOVE, 'taskJson'],
      [AssignmentAction.ASSIGNMENT_ACTION_REMOVE, 'secretJson'],
    ]);
    // A new task naming the secret brings it back in the same incremental message.
    const t3 = await createTask(w.nodeId, 'assigned', {
      Spec: { ContainerSpec: { Image: 'busybox', Secrets: [{ SecretID: secret.ID, SecretName: secret.Spec.Name }] } },
    });
    await waitFor('the task with its secret', () => got.length >= 5);
    expect(got[4]!.changes.map((ch) => [ch.action, ch.assignment!.item!.$case])).toEqual([
      [AssignmentAction.ASSIGNMENT_ACTION_UPDATE, 'taskJson'],
      [AssignmentAction.ASSIGNMENT_ACTION_UPDATE, 'secretJson'],
    ]);
    expect(JSON.parse((got[4]!.changes[0]!.assignment!.item as { taskJson: Buffer }).taskJson.toString()).ID).toBe(t3.ID);
  });

  it("sends a node only the configs and secrets its tasks use: others' writes send it nothing", async () => {
    const w = await cluster.workerIdentity();
    const c = client(w);
    const { first } = await openSession(c);
    const got = watchAssignments(c, first.sessionId);
    await waitFor('the complete set', () => got.length >= 1);
    const tag = newId().slice(0, 8);
    const { result: used } = await store.update((tx) => tx.create('config', { Spec: { Name: `used-${tag}`, Data: Buffer.from('a').toString('base64') } }));
    await createTask(w.nodeId, 'assigned', { Spec: { ContainerSpec: { Image: 'busybox', Configs: [{ ConfigID: used.ID, ConfigName: used.Spec.Name }] } } });
    await waitFor('the task with its config', () => got.length >= 2);
    expect(got[1]!.changes.map((ch) => ch.assignment!.item!.$case)).toEqual(['taskJson', 'configJson']);

    // Configs and secrets no task here names — new ones, a change to one, its removal — are no news to the node…
    const others: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { result } = await store.update((tx) => tx.create('config', { Spec: { Name: `other-${tag}-${i}`, Data: Buffer.from('b').toString('base64') } }));
      others.push(result.ID);
    }
    await store.update((tx) => tx.create('secret', { Spec: { Name: `other-${tag}`, Data: Buffer.from('c').toString('base64') } }));
    await store.update((tx) => {
      const o = tx.get('config', others[0]!)!;
      tx.update('config', { ...o, Spec: { ...o.Spec, Labels: { changed: 'yes' } } });
      tx.delete('config', others[1]!);
    });
    // …while a change to the one its task uses is, and is the next thing it hears.
    await store.update((tx) => {
      const u = tx.get('config', used.ID)!;
      tx.update('config', { ...u, Spec: { ...u.Spec, Labels: { changed: 'yes' } } });
    });
    await waitFor('the used config change', () => got.length >= 3);
    expect(got[2]!.changes.map((ch) => [ch.action, ch.assignment!.item!.$case])).toEqual([[AssignmentAction.ASSIGNMENT_ACTION_UPDATE, 'configJson']]);
    expect(JSON.parse((got[2]!.changes[0]!.assignment!.item as { configJson: Buffer }).configJson.toString())).toMatchObject({ ID: used.ID, Spec: { Labels: { changed: 'yes' } } });
    // A task naming one of the others brings it along, as stored now.
    const t2 = await createTask(w.nodeId, 'assigned', { Spec: { ContainerSpec: { Image: 'busybox', Configs: [{ ConfigID: others[0]!, ConfigName: `other-${tag}-0` }] } } });
    await waitFor('the second task', () => got.length >= 4);
    const items = got[3]!.changes.map((ch) => ch.assignment!.item!);
    expect(items.map((i) => i.$case)).toEqual(['taskJson', 'configJson']);
    expect(JSON.parse((items[0] as { taskJson: Buffer }).taskJson.toString()).ID).toBe(t2.ID);
    expect(JSON.parse((items[1] as { configJson: Buffer }).configJson.toString())).toMatchObject({ ID: others[0], Spec: { Labels: { changed: 'yes' } } });
    expect(got).toHaveLength(4);
  });
});
