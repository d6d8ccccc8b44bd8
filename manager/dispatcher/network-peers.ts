// What a worker needs to program its overlay data plane, per network it takes part in: the
// network itself, the network's live tasks on every node (addresses + the node's underlay address,
// for static FDB/neighbour entries), its services (VIP or dnsrr, for iptables and DNS) and the
// nodes' ingress-sandbox addresses. Built from the store by the dispatcher, sent as `network_json`
// assignments (proto/shoal/dispatcher.proto) next to the node's tasks: a complete set first, then a
// network's whole view again whenever something in it changed, and a REMOVE when the node no longer
// takes part in it. The worker side reads it in worker/network.
//
// Shapes follow the allocator's data (../../.helpers/net-contract.md): Task.NetworksAttachments,
// Service.Endpoint.VirtualIPs, Node.Status.Addr, Node.Attachments (the ingress sandbox).
import type { ReadTx } from '../store/memory-store.js';
import { byNodeId, byServiceId } from '../store/query.js';
import type { Network, NetworkAttachment, Node, PortConfig, Service, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { taskStateRank } from './task-transitions.js';

export interface NetworkPeerTask {
  readonly TaskID: string;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly NodeID: string;
  /** The underlay address of the task's node (its VXLAN endpoint). */
  readonly NodeAddr: string;
  /** CIDR form, e.g. '10.0.1.5/24'. */
  readonly Addresses: readonly string[];
  /**
   * RUNNING and wanted running: a VIP backend. Other live tasks (ASSIGNED … STARTING) are peers
   * already (reachable) but get no VIP traffic. Coarse on purpose: PREPARING → READY → STARTING
   * does not resend the view to every node of the network.
   */
  readonly Running: boolean;
}

export interface NetworkPeerService {
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly EndpointMode: 'vip' | 'dnsrr';
  /** CIDR form, on this network (vip mode). */
  readonly VirtualIP?: string;
  /** Network aliases of the service's tasks on this network. */
  readonly Aliases?: readonly string[];
  /** Published ingress-mode ports (on the ingress network only). */
  readonly Ports?: readonly PortConfig[];
}

export interface NetworkPeerNode {
  readonly NodeID: string;
  readonly NodeAddr: string;
  readonly Addresses: readonly string[];
}

export interface NetworkPeers {
  /** The network's ID. */
  readonly ID: string;
  readonly Network: Network;
  readonly Tasks: readonly NetworkPeerTask[];
  readonly Services: readonly NetworkPeerService[];
  /** Nodes with an address on this network of their own (Docker's ingress sandbox). */
  readonly Nodes: readonly NetworkPeerNode[];
}

/** Node.Attachments (the allocator adds it for the ingress sandbox). */
type NodeWithAttachments = Node & { readonly Attachments?: readonly NetworkAttachment[] };

const ASSIGNED_RANK = taskStateRank('assigned');
const RUNNING_RANK = taskStateRank('running');

function attachments(t: Task): readonly NetworkAttachment[] {
  return t.NetworksAttachments ?? [];
}

export function nodeAttachments(n: Node | undefined): readonly NetworkAttachment[] {
  return (n as NodeWithAttachments | undefined)?.Attachments ?? [];
}

/** A task that is (or is about to be) an endpoint somewhere: ASSIGNED … RUNNING, still wanted running. */
export function isLiveEndpoint(t: Task): boolean {
  const rank = taskStateRank(t.Status.State);
  return t.NodeID !== '' && rank >= ASSIGNED_RANK && rank <= RUNNING_RANK && taskStateRank(t.DesiredState) <= RUNNING_RANK;
}

/** Networks a node takes part in: those of its tasks that may still run, and its own attachments (ingress). */
export function networksOfNode(tasks: Iterable<Task>, node: Node | undefined): Map<string, Network> {
  const out = new Map<string, Network>();
  for (const t of tasks) {
    if (taskStateRank(t.Status.State) > RUNNING_RANK) continue;
    for (const a of attachments(t)) out.set(a.Network.ID, a.Network);
  }
  for (const a of nodeAttachments(node)) out.set(a.Network.ID, a.Network);
  return out;
}

/**
 * One route() pass's view of the store: a network's peers are computed once per pass however
 * many nodes take part in it. The task scan (one pass over every task) happens only when some
 * network is asked for.
 */
export class NetworkPeersCache {
  private byNetwork: Map<string, Task[]> | null = null;
  private readonly views = new Map<string, { readonly view: NetworkPeers; readonly json: string }>();

  constructor(private readonly tx: ReadTx) {}

  /** The network's view and its JSON (serialized once per pass, compared by every node sharing it). */
  view(networkId: string, fallback: Network): { readonly view: NetworkPeers; readonly json: string } {
    let v = this.views.get(networkId);
    if (v === undefined) {
      const view = this.build(networkId, fallback);
      v = { view, json: JSON.stringify(view) };
      this.views.set(networkId, v);
    }
    return v;
  }

  private tasksOf(networkId: string): readonly Task[] {
    if (this.byNetwork === null) {
      const index = new Map<string, Task[]>();
      for (const t of this.tx.find('task')) {
        if (!isLiveEndpoint(t)) continue;
        for (const a of attachments(t)) {
          const list = index.get(a.Network.ID);
          if (list === undefined) index.set(a.Network.ID, [t]);
          else list.push(t);
        }
      }
      this.byNetwork = index;
    }
    return this.byNetwork.get(networkId) ?? [];
  }

  private build(networkId: string, fallback: Network): NetworkPeers {
    const tx = this.tx;
    const network = tx.get('network', networkId) ?? fallback;
    const nodeAddr = new Map<string, string>();
    const addrOf = (nodeId: string): string => {
      let a = nodeAddr.get(nodeId);
      if (a === undefined) {
        a = tx.get('node', nodeId)?.Status.Addr ?? '';
        nodeAddr.set(nodeId, a);
      }
      return a;
    };
    const services = new Map<string, Service | undefined>();
    const serviceOf = (id: string): Service | undefined => {
      if (!services.has(id)) services.set(id, id === '' ? undefined : tx.get('service', id));
      return services.get(id);
    };
    const tasks: NetworkPeerTask[] = [];
    for (const t of this.tasksOf(networkId)) {
      const addr = addrOf(t.NodeID);
      const att = attachments(t).find((a) => a.Network.ID === networkId);
      if (addr === '' || att === undefined || att.Addresses.length === 0) continue;
      tasks.push({
        TaskID: t.ID,
        ServiceID: t.ServiceID,
        ServiceName: serviceOf(t.ServiceID)?.Spec.Name ?? '',
        NodeID: t.NodeID,
        NodeAddr: addr,
        Addresses: att.Addresses,
        Running: t.Status.State === 'running' && t.DesiredState === 'running',
      });
    }
    tasks.sort((a, b) => (a.TaskID < b.TaskID ? -1 : a.TaskID > b.TaskID ? 1 : 0));
    // Services: those with a task here, and those with a VIP here (a VIP with no backends must refuse).
    const serviceIds = new Set(tasks.map((t) => t.ServiceID).filter((id) => id !== ''));
    for (const s of tx.find('service')) if ((s.Endpoint?.VirtualIPs ?? []).some((v) => v.NetworkID === networkId)) serviceIds.add(s.ID);
    const peerServices: NetworkPeerService[] = [];
    for (const id of [...serviceIds].sort()) {
      const s = serviceOf(id);
      if (s === undefined) continue;
      const mode = s.Spec.EndpointSpec?.Mode ?? s.Endpoint?.Spec?.Mode ?? 'vip';
      const vip = (s.Endpoint?.VirtualIPs ?? []).find((v) => v.NetworkID === networkId)?.Addr;
      const aliases = [...(s.Spec.TaskTemplate.Networks ?? []), ...(s.Spec.Networks ?? [])]
        .filter((n) => n.Target === networkId || n.Target === network.Spec.Name)
        .flatMap((n) => n.Aliases ?? []);
      const ports = network.Spec.Ingress === true ? (s.Endpoint?.Ports ?? []).filter((p) => (p.PublishMode ?? 'ingress') === 'ingress' && p.PublishedPort !== undefined) : [];
      peerServices.push({
        ServiceID: s.ID,
        ServiceName: s.Spec.Name,
        EndpointMode: mode,
        ...(mode === 'vip' && vip !== undefined ? { VirtualIP: vip } : {}),
        ...(aliases.length > 0 ? { Aliases: [...new Set(aliases)] } : {}),
        ...(ports.length > 0 ? { Ports: ports } : {}),
      });
    }
    const nodes: NetworkPeerNode[] = [];
    for (const n of tx.find('node')) {
      const att = nodeAttachments(n).find((a) => a.Network.ID === networkId);
      const addr = n.Status.Addr ?? '';
      if (att === undefined || addr === '' || att.Addresses.length === 0) continue;
      nodes.push({ NodeID: n.ID, NodeAddr: addr, Addresses: att.Addresses });
    }
    nodes.sort((a, b) => (a.NodeID < b.NodeID ? -1 : 1));
    return { ID: networkId, Network: network, Tasks: tasks, Services: peerServices, Nodes: nodes };
  }
}

/**
 * Networks whose views a batch of store events may have changed; `all` when it cannot tell
 * cheaply (then every node's networks are recomputed and diffed).
 */
export function touchedNetworks(events: readonly ChangeEvent[], tx: ReadTx): Set<string> {
  const out = new Set<string>();
  const addTask = (t: Task | undefined): void => {
    // Most tasks attach to no network: nothing to allocate or iterate for them (one call per event).
    const list = t?.NetworksAttachments;
    if (list === undefined) return;
    for (const a of list) out.add(a.Network.ID);
  };
  for (const ev of events) {
    switch (ev.kind) {
      case 'task':
        addTask(ev.object);
        addTask(ev.old);
        break;
      case 'service':
        for (const s of [ev.object, ev.old]) for (const v of s?.Endpoint?.VirtualIPs ?? []) out.add(v.NetworkID);
        for (const t of tx.find('task', byServiceId(ev.object.ID))) addTask(t);
        break;
      case 'network':
        out.add(ev.object.ID);
        break;
      case 'node':
        for (const n of [ev.object, ev.old]) for (const a of nodeAttachments(n)) out.add(a.Network.ID);
        if (ev.old === undefined || ev.old.Status.Addr !== ev.object.Status.Addr) for (const t of tx.find('task', byNodeId(ev.object.ID))) addTask(t);
        break;
      default:
        break;
    }
  }
  return out;
}
