// Network peers in the assignment stream: a node taking part in an overlay network hears the
// network's view (tasks on every node with their node address, services' VIPs, node ingress
// addresses) in its COMPLETE set, then again whenever something in it changes, and a REMOVE when
// its last task there goes. Real dispatcher over gRPC + mTLS on loopback, real single-member store.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NodeIdentity } from '../../ca/identity.js';
import { AssignmentAction, type AssignmentsMessage, type DispatcherClient, type SessionMessage } from '../../proto/gen/shoal/dispatcher.js';
import { callUnary } from '../../proto/grpc/client.js';
import { newId } from '../store/ids.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { Network, Node, Service, Task, TaskState } from '../store/types.js';
import type { NetworkPeers } from './network-peers.js';
import { DispatchCluster, waitFor } from './testing/harness.js';

const HEARTBEAT_MS = 200;
let cluster: DispatchCluster;
let store: MemoryStore;
const clients: DispatcherClient[] = [];
const streams: grpc.ClientReadableStream<unknown>[] = [];
const keepAlives: NodeJS.Timeout[] = [];

beforeAll(async () => {
  cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: HEARTBEAT_MS, heartbeatJitterMs: 10, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } });
  const leader = await cluster.leaderId();
  store = cluster.stores.rs(leader).store;
  await waitFor('the leader to dispatch', () => cluster.manager(leader).dispatcher?.leading === true);
});

afterAll(async () => {
  for (const t of keepAlives) clearInterval(t);
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await cluster?.close();
});

interface Worker {
  readonly identity: NodeIdentity;
  readonly messages: AssignmentsMessage[];
}

async function connect(): Promise<Worker> {
  const identity = await cluster.workerIdentity();
  const leader = await cluster.leaderId();
  const c = cluster.client(cluster.manager(leader).addr, identity);
  clients.push(c);
  const session = c.session({ sessionId: '', descriptionJson: Buffer.from('{"Hostname":"h"}') });
  streams.push(session);
  const first = await new Promise<SessionMessage>((resolve, reject) => {
    session.once('data', resolve);
    session.once('error', reject);
  });
  session.on('error', () => undefined);
  keepAlives.push(setInterval(() => void callUnary(c.heartbeat.bind(c), { sessionId: first.sessionId }).catch(() => undefined), HEARTBEAT_MS / 3));
  const messages: AssignmentsMessage[] = [];
  const a = c.assignments({ sessionId: first.sessionId });
  streams.push(a);
  a.on('data', (m: AssignmentsMessage) => messages.push(m));
  a.on('error', () => undefined);
  await waitFor('the complete set', () => messages.length > 0);
  return { identity, messages };
}

/** Every network change the worker received, in order. */
function networkChanges(w: Worker): { readonly remove: boolean; readonly view: NetworkPeers }[] {
  const out: { remove: boolean; view: NetworkPeers }[] = [];
  for (const m of w.messages) {
    for (const c of m.changes) {
      const item = c.assignment?.item;
      if (item?.$case !== 'networkJson') continue;
      out.push({ remove: c.action === AssignmentAction.ASSIGNMENT_ACTION_REMOVE, view: JSON.parse(Buffer.from(item.networkJson).toString()) as NetworkPeers });
    }
  }
  return out;
}

function latest(w: Worker, networkId: string): { readonly remove: boolean; readonly view: NetworkPeers } | undefined {
  return networkChanges(w).filter((c) => c.view.ID === networkId).at(-1);
}

const NETWORK: Network = {
  ID: newId(),
  Version: { Index: 0 },
  CreatedAt: new Date().toISOString(),
  UpdatedAt: new Date().toISOString(),
  Spec: { Name: 'backend', DriverConfiguration: { Name: 'overlay' } },
  DriverState: { Name: 'overlay', Options: { 'com.docker.network.driver.overlay.vxlanid_list': '4097' } },
  IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] },
};

async function createTask(nodeId: string, serviceId: string, addr: string, state: TaskState): Promise<Task> {
  const { result } = await store.update((tx) =>
    tx.create('task', {
      ID: newId(),
      Spec: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: NETWORK.ID }] },
      ServiceID: serviceId,
      Slot: 1,
      NodeID: nodeId,
      Status: { Timestamp: new Date().toISOString(), State: state, Message: state },
      DesiredState: 'running',
      NetworksAttachments: [{ Network: NETWORK, Addresses: [addr] }],
    }),
  );
  return store.get('task', result.ID)!;
}

async function setState(taskId: string, state: TaskState, desired?: TaskState): Promise<void> {
  await store.update((tx) => {
    const t = tx.get('task', taskId)!;
    tx.update('task', { ...t, Status: { ...t.Status, State: state }, ...(desired !== undefined ? { DesiredState: desired } : {}) });
  });
}

describe('network peers in assignments', () => {
  it('sends each node the views of its networks: complete, then changes, then a remove when it leaves', async () => {
    await store.update((tx) => tx.create('network', NETWORK));
    const { result: svc } = await store.update((tx) =>
      tx.create('service', {
        ID: newId(),
        Spec: { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: NETWORK.ID, Aliases: ['www'] }] } },
        Endpoint: { Spec: { Mode: 'vip' }, VirtualIPs: [{ NetworkID: NETWORK.ID, Addr: '10.0.1.2/24' }] },
      } as unknown as Service),
    );
    const a = await connect();
    const b = await connect();
    // A's first task there: A hears the network as a change of its set.
    const ta = await createTask(a.identity.nodeId, svc.ID, '10.0.1.5/24', 'running');
    await waitFor('A to hear the network', () => latest(a, NETWORK.ID)?.view.Tasks.length === 1);
    const va = latest(a, NETWORK.ID)!.view;
    expect(va.Network.Spec.Name).toBe('backend');
    expect(va.Tasks[0]).toEqual({
      TaskID: ta.ID, ServiceID: svc.ID, ServiceName: 'web', NodeID: a.identity.nodeId, NodeAddr: '127.0.0.1', Addresses: ['10.0.1.5/24'], Running: true,
    });
    expect(va.Services).toEqual([{ ServiceID: svc.ID, ServiceName: 'web', EndpointMode: 'vip', VirtualIP: '10.0.1.2/24', Aliases: ['www'] }]);
    // B takes no part in the network yet.
    expect(latest(b, NETWORK.ID)).toBeUndefined();

    // B gets a starting task: B hears the whole view; A hears the new peer (not running: no VIP traffic yet).
    const tb = await createTask(b.identity.nodeId, svc.ID, '10.0.1.6/24', 'assigned');
    await waitFor('B to hear the network', () => latest(b, NETWORK.ID)?.view.Tasks.length === 2);
    await waitFor('A to hear B\'s task', () => latest(a, NETWORK.ID)?.view.Tasks.length === 2);
    expect(latest(a, NETWORK.ID)!.view.Tasks.find((t) => t.TaskID === tb.ID)?.Running).toBe(false);
    const countA = networkChanges(a).length;
    // PREPARING → STARTING changes nothing the data plane uses: no resend.
    await setState(tb.ID, 'preparing');
    await setState(tb.ID, 'starting');
    await setState(tb.ID, 'running');
    await waitFor('A to see B\'s task running', () => latest(a, NETWORK.ID)?.view.Tasks.find((t) => t.TaskID === tb.ID)?.Running === true);
    expect(networkChanges(a).length).toBe(countA + 1);

    // A node with an ingress-style attachment of its own takes part too, and is listed in Nodes.
    await store.update((tx) => {
      const n = tx.get('node', b.identity.nodeId)!;
      tx.update('node', { ...n, Attachments: [{ Network: NETWORK, Addresses: ['10.0.1.250/24'] }] } as Node);
    });
    await waitFor('the node address in the view', () => latest(a, NETWORK.ID)?.view.Nodes.length === 1);
    expect(latest(a, NETWORK.ID)!.view.Nodes).toEqual([{ NodeID: b.identity.nodeId, NodeAddr: '127.0.0.1', Addresses: ['10.0.1.250/24'] }]);
    await store.update((tx) => {
      const n = tx.get('node', b.identity.nodeId)! as Node & { Attachments?: unknown };
      const { Attachments: _drop, ...rest } = n;
      tx.update('node', rest as Node);
    });

    // B's task is shut down: A loses the peer, B leaves the network (REMOVE).
    await setState(tb.ID, 'running', 'shutdown');
    await waitFor('A to drop B\'s task', () => latest(a, NETWORK.ID)?.view.Tasks.length === 1);
    await setState(tb.ID, 'shutdown');
    await waitFor('B to leave the network', () => latest(b, NETWORK.ID)?.remove === true);

    // A reconnecting gets the view in its COMPLETE set.
    const a2: Worker = { identity: a.identity, messages: [] };
    const leader = await cluster.leaderId();
    const c = cluster.client(cluster.manager(leader).addr, a.identity);
    clients.push(c);
    const session = c.session({ sessionId: '', descriptionJson: Buffer.from('{}') });
    streams.push(session);
    const first = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
    session.on('error', () => undefined);
    const as = c.assignments({ sessionId: first.sessionId });
    streams.push(as);
    as.on('data', (m: AssignmentsMessage) => a2.messages.push(m));
    as.on('error', () => undefined);
    await waitFor('the complete set', () => a2.messages.length > 0);
    expect(latest(a2, NETWORK.ID)?.view.Tasks.map((t) => t.TaskID)).toEqual([ta.ID]);

    // The service loses its VIP (e.g. switched to dnsrr): the view follows.
    await store.update((tx) => {
      const s = tx.get('service', svc.ID)!;
      tx.update('service', { ...s, Spec: { ...s.Spec, EndpointSpec: { Mode: 'dnsrr' } }, Endpoint: { Spec: { Mode: 'dnsrr' } } });
    });
    await waitFor('dnsrr in the view', () => latest(a2, NETWORK.ID)?.view.Services[0]?.EndpointMode === 'dnsrr');
    expect(latest(a2, NETWORK.ID)!.view.Services[0]!.VirtualIP).toBeUndefined();
  });
});
