// A replicated key-value store on top of the Raft simulator, driven by simulated clients, whose
// client-side history is what the linearizability checker judges.
//
// Every node's store is the fold of the commands in `sim.applied(id)`. Clients write by proposing
// an encoded command carrying a unique op id; the write returns when that op id has been applied
// on the node the client talks to. Reads go through the log (a `get` command), or through
// ReadIndex (confirm leadership, wait until applied ≥ index, read locally), or — only as a
// negative control — straight from the local store of whatever node the client picked.
//
// Between client steps the harness ticks, delivers, partitions and heals at random, all from
// one seed, so a run replays exactly.
import type { NodeId } from '../types.js';
import { randomInt, seededRandom, type Random } from '../prng.js';
import type { KvInput, KvOutput, Operation } from './linearizability.js';

// ---------------------------------------------------------------------------------------------
// The simulator contract (raft/testing/sim.ts, SimCluster), as the harness uses it.

export interface SimClusterOptions {
  readonly ids: readonly NodeId[];
  readonly seed: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
}

export interface SimNodeStatus {
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export type ReadIndexAnswer = number | Promise<number> | { readonly index: number };

/** The part of `SimCluster` the KV harness drives. */
export interface SimClusterLike {
  tick(id?: NodeId): void;
  stabilize(): unknown;
  isolate(id: NodeId): void;
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void;
  heal(): void;
  dropRate(from: NodeId, to: NodeId, p: number): void;
  propose(id: NodeId, data: Uint8Array): { readonly ok: boolean; readonly leaderHint?: NodeId | null };
  leader(): NodeId | undefined;
  status(id: NodeId): SimNodeStatus;
  applied(id: NodeId): readonly Uint8Array[];
  transferLeader(from: NodeId, to: NodeId): void;
  crash(id: NodeId): void;
  restart(id: NodeId): void;
  readIndex(id: NodeId): ReadIndexAnswer;
  /** Deliver only part of what is in flight, if the simulator offers it. */
  deliverSome?(): unknown;
  /** One delivery round with chaos (reorder, hold back, duplicate), if the simulator offers it. */
  deliver?(opts?: SimDeliveryOptions): unknown;
}

export interface SimDeliveryOptions {
  readonly reorder?: boolean;
  readonly delayP?: number;
  readonly duplicateP?: number;
  readonly max?: number;
}

// ---------------------------------------------------------------------------------------------
// Commands and the state machine.

export class KvCommandError extends Error {
  readonly code = 'ERR_KV_COMMAND';
  constructor(message: string) {
    super(message);
  }
}

/** One client command as it travels through the log. `opId` is unique in a run. */
export interface KvCommand {
  readonly opId: number;
  readonly clientId: number;
  readonly input: KvInput;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch {
    throw new KvCommandError(`kv: an applied entry of ${data.length} bytes is not a KV command (not JSON)`);
  }
  const c = parsed as Partial<KvCommand> | null;
  const kind = c?.input?.kind;
  if (typeof c?.opId !== 'number' || typeof c.clientId !== 'number' || (kind !== 'get' && kind !== 'put' && kind !== 'cas')) {
    throw new KvCommandError(`kv: an applied entry is not a KV command: ${decoder.decode(data).slice(0, 80)}`);
  }
  return c as KvCommand;
}

/** The store of one node: the fold of its applied commands, with each command's result. */
export class KvStateMachine {
  private readonly values = new Map<string, string>();
  private readonly outcomes = new Map<number, KvOutput>();
  /** How many entries of the applied list have been folded in. */
  private folded = 0;

  get appliedEntries(): number {
    return this.folded;
  }

  /** Fold the entries of `applied` not seen yet (empty entries are the leader's no-ops). */
  catchUp(applied: readonly Uint8Array[]): void {
    if (applied.length < this.folded) {
      throw new KvCommandError(`kv: applied list shrank from ${this.folded} to ${applied.length} entries; applied entries are final`);
    }
    for (; this.folded < applied.length; this.folded++) {
      const data = applied[this.folded]!;
      if (data.length === 0) continue;
      this.apply(decodeCommand(data));
    }
  }

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  /** The result of an applied op, or undefined if this node has not applied it. */
  outcome(opId: number): KvOutput | undefined {
    return this.outcomes.get(opId);
  }

  /** Op ids are unique, so a duplicate in the log would be a bug in the harness or the sim. */
  private apply(cmd: KvCommand): void {
    if (this.outcomes.has(cmd.opId)) throw new KvCommandError(`kv: op ${cmd.opId} applied twice`);
    const input = cmd.input;
    const current = this.get(input.key);
    switch (input.kind) {
      case 'get':
        this.outcomes.set(cmd.opId, { kind: 'value', value: current });
        return;
      case 'put':
        this.values.set(input.key, input.value);
        this.outcomes.set(cmd.opId, { kind: 'ok' });
        return;
      case 'cas': {
        const swapped = current === input.expected;
        if (swapped) this.values.set(input.key, input.value);
        this.outcomes.set(cmd.opId, { kind: 'cas', swapped });
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The workload.

/**
 * How clients read: `log` = a get command through Raft; `readIndex` = ReadIndex then a local
 * read; `mixed` = either at random; `unsafe-local` = the local store of any node, with no
 * leadership check (NOT linearizable: the negative control).
 */
export type ReadMode = 'log' | 'readIndex' | 'mixed' | 'unsafe-local';

export interface KvWorkloadOptions {
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  /** Harness steps with clients issuing operations; each step ticks once and delivers. */
  readonly steps: number;
  /** Steps at the end with faults healed and no new operations, so that pending ones finish. */
  readonly drainSteps?: number;
  readonly readMode: ReadMode;
  /** Probability per step of starting a fault (partition, isolation, lossy link) when healed. */
  readonly faultProbability?: number;
  /** How many steps a fault lasts at most before the harness heals it. */
  readonly maxFaultSteps?: number;
  /** Probability per step of crashing a node (restarted when the fault heals). Default 0. */
  readonly crashProbability?: number;
  /** Probability per step of asking the leader to hand leadership to another node. Default 0. */
  readonly transferProbability?: number;
  /** Steps a client waits for its op before giving up on it (its outcome becomes unknown). */
  readonly opTimeoutSteps?: number;
  /** Probability that an idle client stays idle this step. */
  readonly thinkProbability?: number;
  /**
   * When a put counts as done: `applied` (on the node the client talks to), or — only as a
   * negative control — `unsafe-appended`, as soon as the leader has appended it (NOT safe:
   * an appended entry can still be lost to a new leader).
   */
  readonly writeAck?: 'applied' | 'unsafe-appended';
}

export interface KvRunStats {
  readonly issued: number;
  readonly completed: number;
  /** Ops the client gave up on whose command was applied: kept with ret = Infinity. */
  readonly indeterminate: number;
  /** Ops that failed or timed out and were never applied (or were reads): no effect, dropped. */
  readonly dropped: number;
  readonly faults: number;
  readonly crashes: number;
  readonly transfers: number;
  readonly leaderTerms: number;
  readonly appliedEntries: number;
}

export interface KvRunResult {
  readonly history: Operation<KvInput, KvOutput>[];
  readonly stats: KvRunStats;
  /** Problems the harness saw beyond linearizability (diverging applied logs, wrong results). */
  readonly violations: readonly string[];
}

type OpStatus = 'pending' | 'done' | 'failed' | 'timed out';

interface TrackedOp {
  readonly opId: number;
  readonly clientId: number;
  readonly input: KvInput;
  readonly node: NodeId;
  readonly call: number;
  /** Whether its command went into a log (write, or read through the log). */
  readonly proposed: boolean;
  /** Acknowledged before it was applied (the `unsafe-appended` negative control). */
  ackedEarly: boolean;
  status: OpStatus;
  ret: number;
  output: KvOutput | undefined;
}

type ClientPhase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'awaiting apply'; readonly op: TrackedOp; readonly deadlineStep: number }
  | {
      readonly kind: 'awaiting read index';
      readonly op: TrackedOp;
      readonly deadlineStep: number;
      /** Filled in when ReadIndex answers; `failed` when it refused. */
      answer: { index: number } | 'failed' | undefined;
    }
  | { readonly kind: 'awaiting applied index'; readonly op: TrackedOp; readonly deadlineStep: number; readonly index: number };

interface Client {
  readonly id: number;
  target: NodeId;
  phase: ClientPhase;
  opsIssued: number;
  /** The last value this client saw per key, used as a CAS's expected value. */
  readonly seen: Map<string, string | null>;
}

const DEFAULTS = {
  drainSteps: 60,
  faultProbability: 0.08,
  maxFaultSteps: 40,
  crashProbability: 0,
  transferProbability: 0,
  opTimeoutSteps: 30,
  thinkProbability: 0.3,
};

/** Lets promise callbacks (a ReadIndex answer) run before the next harness step. */
const yieldToPromises = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Run a seeded client workload against `sim` and return the client-observed history.
 * `ids` are the cluster's members; the cluster is expected to elect a leader by itself.
 */
export async function runKvWorkload(sim: SimClusterLike, ids: readonly NodeId[], opts: KvWorkloadOptions): Promise<KvRunResult> {
  if (opts.clients < 1 || opts.keys < 1 || opts.steps < 0) {
    throw new KvCommandError(`kv workload needs at least one client and one key (got ${opts.clients} clients, ${opts.keys} keys)`);
  }
  const o = { ...DEFAULTS, ...stripUndefined(opts) };
  const rand: Random = seededRandom(`kv-workload:${opts.seed}`);
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(rand, 0, xs.length)]!;
  const violations: string[] = [];
  const views = new Map<NodeId, KvStateMachine>();
  const view = (id: NodeId): KvStateMachine => {
    let v = views.get(id);
    if (!v) {
      v = new KvStateMachine();
      views.set(id, v);
    }
    try {
      v.catchUp(sim.applied(id));
    } catch (err) {
      throw new KvCommandError(`node ${id}: ${(err as Error).message}`);
    }
    return v;
  };

  // Logical time: every call and return takes the next tick, so real-time order is exact.
  let clock = 0;
  const now = () => ++clock;
  let nextOpId = 1;
  const ops: TrackedOp[] = [];
  const crashed = new Set<NodeId>();
  let faultActive = false;
  let faultEndsAt = 0;
  let faults = 0;
  let crashes = 0;
  let transfers = 0;
  const terms = new Set<number>();

  const clients: Client[] = [];
  for (let c = 0; c < opts.clients; c++) {
    clients.push({ id: c, target: pick(ids), phase: { kind: 'idle' }, opsIssued: 0, seen: new Map() });
  }

  const finish = (client: Client, op: TrackedOp, output: KvOutput) => {
    op.status = 'done';
    op.output = output;
    op.ret = now();
    if (output.kind === 'value') client.seen.set(op.input.key, output.value);
    if (op.input.kind === 'put') client.seen.set(op.input.key, op.input.value);
    if (op.input.kind === 'cas' && output.kind === 'cas' && output.swapped) client.seen.set(op.input.key, op.input.value);
    client.phase = { kind: 'idle' };
  };
  const giveUp = (client: Client, op: TrackedOp, status: 'failed' | 'timed out') => {
    op.status = status;
    client.phase = { kind: 'idle' };
    // Talk to someone else next time; a real client would try another address.
    client.target = pick(ids);
  };

  const newInput = (client: Client): KvInput => {
    const key = `k${randomInt(rand, 0, opts.keys)}`;
    const r = rand();
    const value = `c${client.id}-${client.opsIssued}`;
    if (r < 0.4) return { kind: 'put', key, value };
    if (r < 0.8) return { kind: 'get', key };
    const expected = rand() < 0.8 ? (client.seen.get(key) ?? null) : `c${client.id}-stale`;
    return { kind: 'cas', key, expected, value };
  };

  const startOp = (client: Client, step: number) => {
    const input = newInput(client);
    client.opsIssued++;
    const readPath: ReadMode =
      input.kind !== 'get' ? 'log' : opts.readMode === 'mixed' ? (rand() < 0.5 ? 'log' : 'readIndex') : opts.readMode;
    const node = readPath === 'unsafe-local' ? pick(ids) : client.target;
    const op: TrackedOp = {
      opId: nextOpId++,
      clientId: client.id,
      input,
      node,
      call: now(),
      proposed: readPath === 'log',
      ackedEarly: false,
      status: 'pending',
      ret: Infinity,
      output: undefined,
    };
    ops.push(op);
    const deadlineStep = step + o.opTimeoutSteps;

    if (readPath === 'unsafe-local') {
      // Whatever this node has applied, leader or not, partitioned or not.
      const value = crashed.has(node) ? undefined : view(node).get(input.key);
      if (value === undefined) giveUp(client, op, 'failed');
      else finish(client, op, { kind: 'value', value });
      return;
    }
    if (readPath === 'readIndex') {
      const phase: ClientPhase = { kind: 'awaiting read index', op, deadlineStep, answer: undefined };
      client.phase = phase;
      let answer: ReadIndexAnswer;
      try {
        answer = sim.readIndex(node);
      } catch {
        phase.answer = 'failed';
        return;
      }
      if (typeof answer === 'number') phase.answer = { index: answer };
      else if (answer instanceof Promise) {
        answer.then(
          (index) => {
            if (phase.answer === undefined) phase.answer = { index };
          },
          () => {
            if (phase.answer === undefined) phase.answer = 'failed';
          },
        );
      } else phase.answer = { index: answer.index };
      return;
    }
    let accepted: { readonly ok: boolean; readonly leaderHint?: NodeId | null };
    try {
      accepted = sim.propose(node, encodeCommand({ opId: op.opId, clientId: client.id, input }));
    } catch {
      accepted = { ok: false };
    }
    if (!accepted.ok) {
      giveUp(client, op, 'failed');
      if (accepted.leaderHint !== undefined && accepted.leaderHint !== null && ids.includes(accepted.leaderHint)) {
        client.target = accepted.leaderHint;
      }
      return;
    }
    if (opts.writeAck === 'unsafe-appended' && input.kind === 'put') {
      op.ackedEarly = true;
      finish(client, op, { kind: 'ok' });
      return;
    }
    client.phase = { kind: 'awaiting apply', op, deadlineStep };
  };

  /** Move one client along; returns without doing anything when it is still waiting. */
  const advance = (client: Client, step: number, mayStart: boolean) => {
    const phase = client.phase;
    switch (phase.kind) {
      case 'idle':
        if (mayStart && rand() >= o.thinkProbability) startOp(client, step);
        return;
      case 'awaiting apply': {
        const op = phase.op;
        const out = crashed.has(op.node) ? undefined : view(op.node).outcome(op.opId);
        if (out !== undefined) finish(client, op, out);
        else if (step >= phase.deadlineStep) giveUp(client, op, 'timed out');
        return;
      }
      case 'awaiting read index': {
        const answer = phase.answer;
        if (answer === 'failed') giveUp(client, phase.op, 'failed');
        else if (answer !== undefined) {
          client.phase = { kind: 'awaiting applied index', op: phase.op, deadlineStep: phase.deadlineStep, index: answer.index };
          advance(client, step, mayStart);
        } else if (step >= phase.deadlineStep) giveUp(client, phase.op, 'timed out');
        return;
      }
      case 'awaiting applied index': {
        const op = phase.op;
        if (!crashed.has(op.node) && sim.status(op.node).applied >= phase.index) {
          finish(client, op, { kind: 'value', value: view(op.node).get(op.input.key) });
        } else if (step >= phase.deadlineStep) giveUp(client, op, 'timed out');
        return;
      }
    }
  };

  const startFault = (step: number) => {
    faults++;
    const r = rand();
    const shuffled = shuffle(ids, rand);
    if (r < 0.45) {
      // A minority cut off from a majority: the minority may hold the old leader.
      const cut = randomInt(rand, 1, Math.floor(ids.length / 2) + 1);
      sim.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (r < 0.7) {
      // Cut the current leader off, to force an election while it still believes it leads.
      sim.isolate(sim.leader() ?? shuffled[0]!);
    } else if (r < 0.9) {
      sim.isolate(shuffled[0]!);
    } else {
      for (let i = 0; i < 2; i++) sim.dropRate(shuffled[i]!, shuffled[i + 1]!, 0.3 + 0.5 * rand());
    }
    faultActive = true;
    faultEndsAt = step + randomInt(rand, 5, o.maxFaultSteps + 1);
  };

  const heal = () => {
    sim.heal();
    for (const id of [...crashed].sort()) {
      sim.restart(id);
      // A restart rebuilds the node's applied list from its snapshot and log: fold it afresh.
      views.delete(id);
    }
    crashed.clear();
    faultActive = false;
  };

  // Sometimes leave messages in flight (held back, reordered, duplicated) into the next step.
  const deliver = () => {
    const r = rand();
    if (sim.deliver && r < 0.3) sim.deliver({ reorder: true, delayP: 0.3, duplicateP: 0.02 });
    else if (sim.deliverSome && r < 0.3) sim.deliverSome();
    else sim.stabilize();
  };

  const noteLeader = () => {
    const l = sim.leader();
    if (l !== undefined) terms.add(sim.status(l).term);
  };

  for (let step = 0; step < opts.steps; step++) {
    if (faultActive && step >= faultEndsAt) heal();
    else if (!faultActive && rand() < o.faultProbability) startFault(step);
    if (o.crashProbability > 0 && rand() < o.crashProbability && crashed.size < Math.floor((ids.length - 1) / 2)) {
      const victim = pick(ids.filter((id) => !crashed.has(id)));
      sim.crash(victim);
      crashed.add(victim);
      crashes++;
      if (!faultActive) {
        faultActive = true;
        faultEndsAt = step + randomInt(rand, 5, o.maxFaultSteps + 1);
      }
    }
    if (o.transferProbability > 0 && rand() < o.transferProbability) {
      const from = sim.leader();
      const others = ids.filter((id) => id !== from && !crashed.has(id));
      if (from !== undefined && others.length > 0) {
        sim.transferLeader(from, pick(others));
        transfers++;
      }
    }
    const order = shuffle(clients, rand);
    for (const client of order) advance(client, step, true);
    sim.tick();
    deliver();
    noteLeader();
    await yieldToPromises();
  }

  heal();
  for (let i = 0; i < o.drainSteps && clients.some((c) => c.phase.kind !== 'idle'); i++) {
    const step = opts.steps + i;
    for (const client of clients) advance(client, step, false);
    sim.tick();
    sim.stabilize();
    noteLeader();
    await yieldToPromises();
  }
  for (const client of clients) {
    if (client.phase.kind !== 'idle') giveUp(client, client.phase.op, 'timed out');
  }

  // The fate of ops the clients gave up on: applied anywhere → took effect (ret unknown).
  const longest = longestAppliedLog(sim, ids, violations);
  const global = new KvStateMachine();
  global.catchUp(longest);
  const history: Operation<KvInput, KvOutput>[] = [];
  let completed = 0;
  let indeterminate = 0;
  let dropped = 0;
  for (const op of ops) {
    const applied = op.proposed ? global.outcome(op.opId) : undefined;
    if (op.status === 'done') {
      completed++;
      if (op.proposed && !op.ackedEarly && JSON.stringify(applied) !== JSON.stringify(op.output)) {
        violations.push(`op ${op.opId}: node ${op.node} answered ${JSON.stringify(op.output)} but the longest log gives ${JSON.stringify(applied)}`);
      }
      history.push({ clientId: op.clientId, input: op.input, output: op.output!, call: op.call, ret: op.ret });
    } else if (applied !== undefined) {
      indeterminate++;
      history.push({ clientId: op.clientId, input: op.input, output: applied, call: op.call, ret: Infinity });
    } else {
      dropped++;
    }
  }
  return {
    history,
    violations,
    stats: {
      issued: ops.length,
      completed,
      indeterminate,
      dropped,
      faults,
      crashes,
      transfers,
      leaderTerms: terms.size,
      appliedEntries: longest.length,
    },
  };
}

/** Every node's applied list must be a prefix of the longest one (state machine safety). */
function longestAppliedLog(sim: SimClusterLike, ids: readonly NodeId[], violations: string[]): readonly Uint8Array[] {
  const logs = ids.map((id) => ({ id, log: sim.applied(id).filter((d) => d.length > 0) }));
  let longest = logs[0]!;
  for (const l of logs) if (l.log.length > longest.log.length) longest = l;
  for (const l of logs) {
    for (let i = 0; i < l.log.length; i++) {
      if (!bytesEqual(l.log[i]!, longest.log[i]!)) {
        violations.push(`node ${l.id} applied a different entry at position ${i} of its applied commands than node ${longest.id}`);
        break;
      }
    }
  }
  return longest.log;
}

function shuffle<T>(xs: readonly T[], rand: Random): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(rand, 0, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function stripUndefined<T extends object>(x: T): Partial<T> {
  return Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)) as Partial<T>;
}
