// What a manager serves and runs besides Raft and the CA: the Control and Dispatcher gRPC services
// on its cluster port (every manager; the dispatcher answers followers' sessions with a redirect,
// the control API refuses followers' writes naming the leader), and — only while this manager is
// the Raft leader — the orchestrators (replicated, global, jobs, restart supervisor, updater,
// reaper), the allocator and the scheduler loop, which write to the store.
//
// The cluster port registers its services before the store exists (the port is bound first), so
// the handlers registered here resolve the ControlApi / Dispatcher lazily and answer UNAVAILABLE
// until `attach()` built them.
//
// Leadership is polled (every `leadershipCheckMs`). On becoming leader at term T, the loops start
// once this manager applied everything up to the log's last index as it was when it was elected
// (which includes the new term's empty entry), so they never decide from a store that lacks
// entries a previous leader committed. On losing leadership, or at close, they are stopped; a stop
// is bounded by `stopTimeoutMs` (a loop still busy then is abandoned; its writes fail on a follower).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import { ControlApi } from './controlapi/control-api.js';
import { controlRegistration } from './controlapi/grpc.js';
import { DISPATCHER_SERVICE } from './dispatcher/assignment-wire.js';
import { Dispatcher, type DispatcherConfig, type ManagerPeer } from './dispatcher/dispatcher.js';
import { LogBroker } from './logbroker/broker.js';
import { logBrokerRegistrations } from './logbroker/grpc.js';
import { managerLocator } from './logbroker/route.js';
import type { Manager, ServiceRegistration } from './manager.js';
import { Orchestrators } from './orchestrator/index.js';
import { systemClock, type Clock } from './orchestrator/clock.js';
import { Placement, SchedulerLoop } from './schedule/index.js';
import { Allocator } from './allocator/index.js';
import { ControlService } from '../proto/gen/shoal/control.js';

export interface LeaderServicesOptions {
  /** Dispatcher tuning (heartbeat period, batching…); defaults are Docker's. */
  readonly dispatcher?: Partial<DispatcherConfig>;
  /** How often leadership is checked to start/stop the orchestrators (default 100 ms). */
  readonly leadershipCheckMs?: number;
  /** Longest a stop of the orchestrators and scheduler may take before they are abandoned (default 5 s). */
  readonly stopTimeoutMs?: number;
  /** The orchestrators' and scheduler's clock (default: the system clock). */
  readonly clock?: Clock;
}

/** Wraps a service so that each call goes to `get()`'s implementation, or fails UNAVAILABLE while it is null. */
function lazyImplementation(definition: grpc.ServiceDefinition, get: () => grpc.UntypedServiceImplementation | null, what: string): grpc.UntypedServiceImplementation {
  const unavailable = { code: grpc.status.UNAVAILABLE, details: `this manager is still starting (${what} not ready)` };
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(definition)) {
    if (method.responseStream) {
      impl[key] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const real = get();
        if (real === null) {
          call.emit('error', unavailable);
          return;
        }
        (real[key] as (c: unknown) => void)(call);
      }) as grpc.UntypedHandleCall;
    } else {
      impl[key] = ((call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        const real = get();
        if (real === null) {
          cb(unavailable);
          return;
        }
        (real[key] as (c: unknown, cb: grpc.sendUnaryData<unknown>) => void)(call, cb);
      }) as grpc.UntypedHandleCall;
    }
  }
  return impl;
}

/** The paths of a service definition's methods. */
export function methodPaths(definition: grpc.ServiceDefinition): string[] {
  return Object.values(definition).map((m) => m.path);
}

async function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class LeaderServices {
  private controlApi: ControlApi | null = null;
  private dispatcherImpl: Dispatcher | null = null;
  private controlImpl: grpc.UntypedServiceImplementation | null = null;
  private dispatcherGrpc: grpc.UntypedServiceImplementation | null = null;
  private orch: Orchestrators | null = null;
  /** Logs and exec routing (manager/logbroker); serves while this manager leads (workers connect here). */
  private broker: LogBroker | null = null;
  private sched: SchedulerLoop | null = null;
  private alloc: Allocator | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Term this manager was elected in and the last index then, while waiting to catch up. */
  private electedAt: { term: number; lastIndex: number } | null = null;
  private transition: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;
  /** How many times the loops were started (each leadership period once). */
  starts = 0;

  constructor(
    private readonly m: Manager,
    private readonly o: LeaderServicesOptions = {},
  ) {
    this.log = m.logger.child({ component: 'leader-services' });
  }

  /** Control and Dispatcher registrations for the cluster port (before it listens). */
  registrations(): ServiceRegistration[] {
    return [
      { definition: ControlService, implementation: lazyImplementation(ControlService, () => this.controlImpl, 'control API') },
      { definition: DISPATCHER_SERVICE, implementation: lazyImplementation(DISPATCHER_SERVICE, () => this.dispatcherGrpc, 'dispatcher') },
      ...logBrokerRegistrations(() => this.broker, managerLocator(this.m, () => this.broker)),
    ];
  }

  /** The in-process control API (null until the manager's store is open). */
  get control(): ControlApi | null {
    return this.controlApi;
  }

  get logBroker(): LogBroker | null {
    return this.broker;
  }

  get dispatcher(): Dispatcher | null {
    return this.dispatcherImpl;
  }

  get orchestrators(): Orchestrators | null {
    return this.orch;
  }

  get scheduler(): SchedulerLoop | null {
    return this.sched;
  }

  get allocator(): Allocator | null {
    return this.alloc;
  }

  /** True while the orchestrators and scheduler run here. */
  get running(): boolean {
    return this.orch !== null;
  }

  /** Builds the control API and dispatcher over the manager's store and starts watching leadership. */
  attach(): void {
    if (this.closed || this.controlApi !== null) return;
    const m = this.m;
    this.controlApi = new ControlApi({
      store: m.store,
      update: (fn) => m.update(fn),
      membership: {
        refuseDemotion: (nodeId) => {
          try {
            m.membership.checkRemovalQuorum(nodeId);
            return null;
          } catch (err) {
            return (err as Error).message;
          }
        },
      },
      logger: m.logger.child({ component: 'controlapi' }),
    });
    this.controlImpl = controlRegistration(this.controlApi).implementation;
    this.dispatcherImpl = new Dispatcher({
      store: m.store,
      leadership: { isLeader: () => m.isLeader, leader: () => this.leaderPeer() },
      managers: () => this.managerPeers(),
      rootCaPem: () => m.ca?.trustBundlePem() ?? '',
      ...(this.o.dispatcher !== undefined ? { config: this.o.dispatcher } : {}),
      logger: m.logger.child({ component: 'dispatcher' }),
    });
    this.dispatcherGrpc = this.dispatcherImpl.implementation() as unknown as grpc.UntypedServiceImplementation;
    this.broker = new LogBroker({ tasks: m.store, logger: m.logger.child({ component: 'logbroker' }) });
    this.dispatcherImpl.start();
    this.timer = setInterval(() => this.check(), this.o.leadershipCheckMs ?? 100);
    this.check();
  }

  /** Stops the loops (bounded) and the dispatcher (its streams end: agents fail over). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.dispatcherImpl?.stop();
    this.broker?.close();
    this.enqueue(() => this.stopLoops('manager closing'));
    await this.transition;
  }

  private leaderPeer(): ManagerPeer | null {
    const m = this.m;
    if (m.isLeader) return { nodeId: m.nodeId, addr: m.addr };
    const leader = m.status().leader;
    if (leader === null) return null;
    const addr = m.membership.addrOf(leader);
    return addr === null ? null : { nodeId: leader, addr };
  }

  private managerPeers(): ManagerPeer[] {
    const out: ManagerPeer[] = [];
    for (const x of this.m.members()) {
      const addr = x.nodeId === this.m.nodeId ? this.m.addr : x.addr;
      if (addr !== null && addr !== '') out.push({ nodeId: x.nodeId, addr });
    }
    return out;
  }

  private enqueue(step: () => Promise<void>): void {
    this.transition = this.transition.then(step).catch((err: unknown) => this.log.error({ err }, 'leader services: transition failed'));
  }

  private check(): void {
    if (this.closed) return;
    let s;
    try {
      s = this.m.raft.status();
    } catch {
      return; // closing
    }
    if (s.role !== 'leader') {
      this.electedAt = null;
      if (this.orch !== null) this.enqueue(() => this.stopLoops('lost leadership'));
      return;
    }
    if (this.electedAt === null || this.electedAt.term !== s.term) {
      if (this.orch !== null) this.enqueue(() => this.stopLoops('new term'));
      this.electedAt = { term: s.term, lastIndex: s.lastIndex };
    }
    if (this.orch === null && s.applied >= this.electedAt.lastIndex) {
      const term = s.term;
      this.enqueue(async () => this.startLoops(term));
    }
  }

  private startLoops(term: number): void {
    if (this.closed || this.orch !== null) return;
    const s = this.m.raft.status();
    if (s.role !== 'leader' || s.term !== term) return;
    const clock = this.o.clock ?? systemClock;
    const logger = this.m.logger;
    // One placer per term: the scheduler loop and the replicated orchestrator (which creates a
    // scale-up's tasks already placed) decide under its lock.
    const placer = new Placement();
    this.orch = new Orchestrators({ store: this.m.store, logger: logger.child({ component: 'orchestrator' }), clock, placer });
    this.sched = new SchedulerLoop({ store: this.m.store, logger: logger.child({ component: 'scheduler' }), clock, allocatorAdmits: true, burst: this.orch.burst, placer });
    this.alloc = new Allocator({ store: this.m.store, logger: logger.child({ component: 'allocator' }), clock });
    this.orch.start();
    this.alloc.start();
    this.sched.start();
    this.starts++;
    this.log.info({ term }, 'leading: orchestrators and scheduler started');
  }

  private async stopLoops(why: string): Promise<void> {
    const orch = this.orch;
    const sched = this.sched;
    const alloc = this.alloc;
    this.orch = null;
    this.sched = null;
    this.alloc = null;
    if (orch === null && sched === null) return;
    const ms = this.o.stopTimeoutMs ?? 5000;
    const done = await bounded(Promise.all([orch?.stop(), sched?.stop(), alloc?.stop()]), ms);
    if (!done) this.log.warn({ why, ms }, 'orchestrators/scheduler did not stop in time: abandoned');
    else this.log.info({ why }, 'orchestrators and scheduler stopped');
  }
}
