// Test harness: a real single-manager store (StoreCluster size 1) with nodes, services and
// helpers to read what `docker service ps` would show.
import { pino, type Logger } from 'pino';
import type { MemoryStore } from '../../store/memory-store.js';
import { byServiceId } from '../../store/query.js';
import { StoreCluster, waitFor } from '../../store/testing/cluster.js';
import type { NewObject, Node, Service, ServiceSpec, Task } from '../../store/types.js';
import { ManualClock, systemClock, type Clock } from '../clock.js';
import { Placement } from '../../schedule/placement.js';
import { SchedulerLoop } from '../../schedule/scheduler-loop.js';
import { Orchestrators } from '../index.js';
import { SimWorkers } from './sim-workers.js';

export { waitFor };

export interface Harness {
  readonly cluster: StoreCluster;
  readonly store: MemoryStore;
  readonly clock: Clock;
  readonly logger: Logger;
  close(): Promise<void>;
}

export async function startHarness(opts: { manualClock?: boolean; watchRingEvents?: number } = {}): Promise<Harness & { manual: ManualClock | null }> {
  const cluster = await StoreCluster.start({ size: 1, ...(opts.watchRingEvents !== undefined ? { watchRingEvents: opts.watchRingEvents } : {}) });
  const rs = await cluster.waitLeader();
  const manual = opts.manualClock === true ? new ManualClock() : null;
  return {
    cluster,
    store: rs.store,
    clock: manual ?? systemClock,
    manual,
    logger: pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' }),
    close: () => cluster.close(),
  };
}

export interface NodeOpts {
  readonly hostname: string;
  readonly labels?: Record<string, string>;
  readonly availability?: Node['Spec']['Availability'];
  readonly state?: Node['Status']['State'];
  readonly memoryBytes?: number;
  readonly nanoCpus?: number;
}

export async function addNode(store: MemoryStore, o: NodeOpts): Promise<Node> {
  const { result } = await store.update((tx) =>
    tx.create('node', {
      Spec: { Role: 'worker', Availability: o.availability ?? 'active', Labels: o.labels ?? {} },
      Description: {
        Hostname: o.hostname,
        Platform: { OS: 'linux', Architecture: 'x86_64' },
        Resources: { NanoCPUs: o.nanoCpus ?? 4e9, MemoryBytes: o.memoryBytes ?? 8 * 2 ** 30 },
      },
      Status: { State: o.state ?? 'ready', Addr: '127.0.0.1' },
    } satisfies NewObject<'node'>),
  );
  return result;
}

export async function changeNode(store: MemoryStore, id: string, f: (n: Node) => Node): Promise<void> {
  await store.update((tx) => {
    const n = tx.get('node', id)!;
    tx.update('node', f(n));
  });
}

export function spec(name: string, o: Partial<ServiceSpec> & { image?: string; replicas?: number } = {}): ServiceSpec {
  const { image, replicas, ...rest } = o;
  return {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: image ?? 'busybox:1' }, RestartPolicy: { Condition: 'any', Delay: 0 } },
    Mode: { Replicated: { Replicas: replicas ?? 1 } },
    ...rest,
  };
}

export async function createService(store: MemoryStore, s: ServiceSpec): Promise<Service> {
  const { result } = await store.update((tx) => tx.create('service', { Spec: s }));
  return result;
}

/** What the control API does on `docker service update`: new spec, the old one kept, update status cleared. */
export async function updateService(store: MemoryStore, id: string, f: (s: ServiceSpec) => ServiceSpec): Promise<void> {
  await store.update((tx) => {
    const svc = tx.get('service', id)!;
    const { UpdateStatus: _u, ...rest } = svc;
    tx.update('service', { ...rest, PreviousSpec: svc.Spec, Spec: f(svc.Spec) });
  });
}

export function tasksOf(store: MemoryStore, serviceId: string): Task[] {
  return store.find('task', byServiceId(serviceId));
}

/** Tasks the manager still wants running. */
export function live(store: MemoryStore, serviceId: string): Task[] {
  return tasksOf(store, serviceId).filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready');
}

export function running(store: MemoryStore, serviceId: string): Task[] {
  return tasksOf(store, serviceId).filter((t) => t.DesiredState === 'running' && t.Status.State === 'running');
}

export async function setTaskStatus(store: MemoryStore, id: string, state: Task['Status']['State'], extra: Partial<Task['Status']> = {}): Promise<void> {
  await store.update((tx) => {
    const t = tx.get('task', id)!;
    tx.update('task', { ...t, Status: { ...t.Status, State: state, Timestamp: new Date().toISOString(), Message: state, ...extra } });
  });
}

export interface ControlPlane {
  readonly orch: Orchestrators;
  readonly sched: SchedulerLoop;
  readonly sim: SimWorkers;
}

/** Starts the orchestrators, the scheduler loop and simulated workers over the harness's store. */
export function startControlPlane(h: Harness, clock: Clock = h.clock): ControlPlane {
  // As the leader runs them: one placer, so scale-ups are created placed.
  const placer = new Placement();
  const orch = new Orchestrators({ store: h.store, logger: h.logger, clock, placer });
  const sched = new SchedulerLoop({ store: h.store, logger: h.logger, clock, burst: orch.burst, placer });
  const sim = new SimWorkers({ store: h.store });
  orch.start();
  sched.start();
  sim.start();
  return { orch, sched, sim };
}

/** Stops what startControlPlane started (workers first), tolerating a partial start. */
export async function stopControlPlane(cp: Partial<ControlPlane>): Promise<void> {
  await cp.sim?.stop();
  await cp.sched?.stop();
  await cp.orch?.stop();
}
