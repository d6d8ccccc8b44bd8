// The allocator: a reconciliation loop on the leader that gives the cluster's objects their
// network resources before anything else uses them.
//
//   watch(network, service, task, node) ─► a pass is due when a network, a service or a node
//   appeared/changed/left, or a task is NEW; or, while something waits for room, when anything
//   released addresses or ports (a task stopped or left, a service left)
//        │
//        ▼
//   pass: AllocationState.fromStore (subnets, VNIs, addresses of live tasks, VIPs, node
//         attachments, ingress ports — the store is the only record, so a new leader rebuilds
//         exactly this) ─► in one transaction per step (split past MAX_WRITES_PER_TX):
//     1. networks without a subnet/VNI (created by any path but the control API) → allocated
//     2. services whose Endpoint differs from what it should be → Endpoint (ports, VIPs)
//     3. NEW tasks still wanted → NetworksAttachments + PENDING ("pending task scheduling");
//        NEW tasks no longer wanted → SHUTDOWN. A task whose service has no Endpoint yet, or
//        whose network has no free address, stays NEW with the reason in Status.Err.
//     4. nodes → one address each on `ingress` (Node.Attachments), for the routing mesh
//
// Releases need no writes: a stopped task's, removed service's or node's addresses are free as
// soon as the store says so. The scheduler works from PENDING only, so tasks are allocated
// before they are placed.
import type { Logger } from 'pino';

import type { Clock } from '../orchestrator/clock.js';
import { MAX_WRITES_PER_TX, ReconcileLoop } from '../orchestrator/loop.js';
import { isAlive } from '../orchestrator/task-state.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { Endpoint, Network, NetworkAttachment, Node, Service, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { desiredEndpoint, taskAttachments } from './endpoints.js';
import { AllocatorError } from './errors.js';
import { AllocationState, isAllocated } from './state.js';

export interface AllocatorOptions {
  readonly store: MemoryStore;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface AllocatorPassReport {
  readonly networks: number;
  readonly services: number;
  readonly tasks: number;
  readonly nodes: number;
  /** Tasks left NEW because something they need could not be allocated. */
  readonly waiting: number;
}

const PASS_KEY = 'pass';

/** Wanted by its desired state: READY/RUNNING for services, COMPLETE for jobs (the scheduler's rule). */
function wanted(t: Task): boolean {
  return t.DesiredState === 'ready' || t.DesiredState === 'running' || t.DesiredState === 'complete';
}

function same(a: unknown, b: unknown): boolean {
  // The store shares unchanged fields between versions, and a pass rebuilds a node's list from
  // its own elements: equal by reference, element by element, is the common case (a node event
  // per status change, every node on every pass) and needs no JSON.
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i])) return true;
  return JSON.stringify(a) === JSON.stringify(b);
}

export class Allocator extends ReconcileLoop {
  private waiting = 0;
  /** Nodes the last pass could not give an ingress address (warned about when the count changes). */
  private withoutIngress = 0;
  private last: AllocatorPassReport = { networks: 0, services: 0, tasks: 0, nodes: 0, waiting: 0 };

  constructor(opts: AllocatorOptions) {
    super(opts, 'allocator', ['network', 'service', 'task', 'node']);
  }

  get lastPass(): AllocatorPassReport {
    return this.last;
  }

  protected resync(): void {}

  protected onEvent(ev: ChangeEvent): void {
    switch (ev.kind) {
      case 'network':
      case 'service':
        this.markDirty(PASS_KEY);
        return;
      case 'node':
        // Heartbeats and status updates leave attachments alone and need no pass; arrivals,
        // departures and attachment changes (ours come back once, then the pass finds nothing) do.
        if (ev.action !== 'update' || !same(ev.old?.Attachments, ev.object.Attachments)) this.markDirty(PASS_KEY);
        return;
      case 'task': {
        const t = ev.object;
        if (ev.action !== 'delete' && t.Status.State === 'new') {
          this.markDirty(PASS_KEY);
          return;
        }
        if (this.waiting === 0) return;
        if (ev.action === 'delete' || (ev.old !== undefined && isAlive(ev.old) && !isAlive(t))) this.markDirty(PASS_KEY);
        return;
      }
      default:
        return;
    }
  }

  protected async pass(): Promise<void> {
    const st = AllocationState.fromStore(this.store, this.log);
    const networks = await this.allocateNetworks(st);
    const ready = new Map<string, number>();
    const services = await this.allocateServices(st, ready);
    const { tasks, waiting } = await this.allocateTasks(st, ready);
    const nodes = await this.allocateNodes(st);
    this.waiting = waiting;
    this.last = { networks, services, tasks, nodes, waiting };
    if (networks + services + tasks + nodes > 0 || waiting > 0) this.log.debug(this.last, 'allocation pass');
  }

  /**
   * Writes in chunks, proposed together: they touch distinct objects decided against one state,
   * so their Raft round trips overlap (one at a time, a burst of NEW tasks waited for each).
   * Answers each object's ID with the version it was committed at; a failed chunk fails the pass
   * (the next one rebuilds from what was committed).
   */
  private async commit<T extends 'network' | 'service' | 'task' | 'node'>(
    kind: T,
    objects: readonly (T extends 'network' ? Network : T extends 'service' ? Service : T extends 'task' ? Task : Node)[],
  ): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    const commits: Promise<void>[] = [];
    for (let i = 0; i < objects.length; i += MAX_WRITES_PER_TX) {
      const chunk = objects.slice(i, i + MAX_WRITES_PER_TX);
      commits.push(
        this.store
          .update((tx) => {
            for (const o of chunk) tx.update(kind, o as never);
          })
          .then(({ version }) => {
            for (const o of chunk) versions.set(o.ID, version);
          }),
      );
    }
    const failed = (await Promise.allSettled(commits)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return versions;
  }

  private nowIso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private async allocateNetworks(st: AllocationState): Promise<number> {
    const writes: Network[] = [];
    for (const n of this.store.find('network')) {
      if (isAllocated(n)) continue;
      try {
        const fields = st.allocateNetwork(n.Spec.Name, n.Spec);
        const next = { ...n, ...fields };
        writes.push(next);
        st.track(next);
      } catch (err) {
        this.log.warn({ network: n.ID, name: n.Spec.Name, err: (err as Error).message }, 'network could not be allocated');
      }
    }
    await this.commit('network', writes);
    return writes.length;
  }

  /** `ready`: service ID → the version whose Endpoint is allocated (a later version waits for the next pass). */
  private async allocateServices(st: AllocationState, ready: Map<string, number>): Promise<number> {
    const writes: Service[] = [];
    for (const svc of this.store.find('service')) {
      let ep: Endpoint;
      try {
        ep = desiredEndpoint(this.store, st, svc);
      } catch (err) {
        if (!(err instanceof AllocatorError)) throw err;
        this.log.warn({ service: svc.ID, name: svc.Spec.Name, err: err.message }, 'service endpoint could not be allocated; its tasks wait');
        continue;
      }
      ready.set(svc.ID, svc.Version.Index);
      if (!same(ep, svc.Endpoint)) writes.push({ ...svc, Endpoint: ep });
    }
    for (const [id, version] of await this.commit('service', writes)) ready.set(id, version);
    return writes.length;
  }

  private async allocateTasks(st: AllocationState, ready: ReadonlyMap<string, number>): Promise<{ tasks: number; waiting: number }> {
    const nowIso = this.nowIso();
    const writes: Task[] = [];
    let waiting = 0;
    for (const t of this.store.find('task')) {
      if (t.Status.State !== 'new') continue;
      if (!wanted(t)) {
        writes.push({ ...t, Status: { ...t.Status, State: 'shutdown', Message: 'shut down before it was scheduled', Timestamp: nowIso } });
        continue;
      }
      const svc = t.ServiceID === '' ? undefined : this.store.get('service', t.ServiceID);
      let reason: string | null = null;
      let attachments: NetworkAttachment[] = [];
      if (svc !== undefined && ready.get(svc.ID) !== svc.Version.Index) {
        if (ready.has(svc.ID)) {
          // The service changed during this pass: its event brings the next pass, which allocates both.
          continue;
        }
        reason = `service ${svc.Spec.Name}'s endpoint is not allocated yet (see the manager's log)`;
      } else {
        try {
          attachments = taskAttachments(this.store, st, t, svc);
        } catch (err) {
          if (!(err instanceof AllocatorError)) throw err;
          reason = err.message;
        }
      }
      if (reason !== null) {
        waiting++;
        if (t.Status.Err !== reason) writes.push({ ...t, Status: { ...t.Status, Err: reason, Message: 'pending network allocation' } });
        continue;
      }
      const { Err: _err, ...status } = t.Status;
      // swarmkit copies the service's Endpoint into every task; here only when a host-mode port needs
      // it on the node (the worker publishes it and reports it in Status.PortStatus).
      const endpoint = svc?.Endpoint !== undefined && svc.Endpoint.Ports?.some((p) => p.PublishMode === 'host') === true ? svc.Endpoint : undefined;
      writes.push({
        ...t,
        ...(attachments.length > 0 ? { NetworksAttachments: attachments } : {}),
        ...(endpoint !== undefined ? { Endpoint: endpoint } : {}),
        Status: { ...status, State: 'pending', Message: 'pending task scheduling', Timestamp: nowIso },
      });
    }
    await this.commit('task', writes);
    return { tasks: writes.length, waiting };
  }

  private async allocateNodes(st: AllocationState): Promise<number> {
    const ingress = st.ingress();
    const writes: Node[] = [];
    let without = 0;
    let lastError = '';
    for (const node of this.store.find('node')) {
      const others = (node.Attachments ?? []).filter((a) => a.Network.Spec.Ingress !== true && st.networks.has(a.Network.ID));
      const had = (node.Attachments ?? []).find((a) => ingress !== undefined && a.Network.ID === ingress.network.ID);
      let next: NetworkAttachment[] = others;
      if (ingress !== undefined) {
        if (had !== undefined && had.Network.Version.Index === ingress.network.Version.Index) {
          next = [had, ...others];
        } else {
          let addr: string | undefined = had?.Addresses[0];
          if (addr === undefined) {
            try {
              addr = ingress.addresses.withPrefix(ingress.addresses.allocate());
            } catch (err) {
              without += 1;
              lastError = (err as Error).message;
              continue;
            }
          }
          next = [{ Network: ingress.network, Addresses: [addr] }, ...others];
        }
      }
      const current = node.Attachments ?? [];
      if (same(next, current)) continue;
      const { Attachments: _a, ...rest } = node;
      writes.push(next.length > 0 ? { ...rest, Attachments: next } : rest);
    }
    // One line per change of the count, not one per node per pass (a full ingress subnet in a large
    // cluster would otherwise log on every pass).
    if (without !== this.withoutIngress && without > 0) {
      this.log.warn({ nodes: without, err: lastError }, 'nodes without an ingress address (is the ingress subnet too small?): the routing mesh will not reach them');
    }
    this.withoutIngress = without;
    await this.commit('node', writes);
    return writes.length;
  }
}
