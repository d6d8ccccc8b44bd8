// A linearizability checker for client histories, written for Shoal from the published
// algorithm: Wing & Gong's backtracking search over the operations that may take effect next,
// with Lowe's memoization of (set of linearized operations, model state) and Horn & Kroening's
// P-compositionality (check each independent part of the history on its own).
//
// A history is a list of operations with closed real-time intervals [call, ret]. It is
// linearizable when there is one total order of the operations, consistent with real time
// (an operation that returned before another was called comes first), under which the
// sequential model accepts every operation's observed output. An operation whose outcome the
// client never learned (it timed out, its node crashed) has ret = Infinity: it may take effect
// at any moment after its call, or, when the model allows it, never.
//
// This is test tooling: it reads the clock (for its time budget) and may be slow on purpose-made
// adversarial histories; the budget turns "too slow" into the answer 'unknown'.

/** One client operation as the client observed it. */
export interface Operation<Input, Output> {
  readonly clientId: number | string;
  readonly input: Input;
  readonly output: Output;
  /** When the client issued the operation. */
  readonly call: number;
  /** When the client saw the answer; `Infinity` when it never did (indeterminate). */
  readonly ret: number;
}

/** A deterministic step: is the output legal from this state, and if so the state after it. */
export interface StepResult<State> {
  readonly ok: boolean;
  readonly next?: State;
}

/**
 * The sequential specification. `step` answers either one `StepResult` or, for a
 * nondeterministic model, the list of every possible next state (empty = illegal).
 */
export interface Model<State, Input, Output> {
  init(): State;
  step(state: State, input: Input, output: Output): StepResult<State> | readonly State[];
  equal(a: State, b: State): boolean;
  /** Equal states must have equal hashes. */
  hash(state: State): number | string;
  /** Split a history into parts that can be checked independently (e.g. one per key). */
  partition?(history: readonly Operation<Input, Output>[]): readonly (readonly Operation<Input, Output>[])[];
  describeOperation?(input: Input, output: Output): string;
  describeState?(state: State): string;
}

export interface CheckOptions {
  /** Wall-clock budget for the whole check; past it the answer is 'unknown'. Default 10 000. */
  readonly timeBudgetMs?: number;
  /** Upper bound on search steps for the whole check, a second guard next to the time budget. */
  readonly maxSearchSteps?: number;
}

/** Where the search got furthest in a part that is not linearizable. */
export interface IllegalDiagnostic<State, Input, Output> {
  /** Index of the failing part in the partition, and the operations of that part. */
  readonly partitionIndex: number;
  readonly partition: readonly Operation<Input, Output>[];
  /** The longest order of operations (of that part) the model accepted. */
  readonly longestLinearization: readonly Operation<Input, Output>[];
  /** The model state after that order. */
  readonly stateAfter: State;
  /**
   * The operation that had to be linearized next (its return came before anything else could
   * go) and could not be: neither it nor any operation concurrent with it was accepted.
   */
  readonly firstUnlinearizable: Operation<Input, Output>;
  /** The operations that were candidates at that point (called, not yet linearized). */
  readonly candidates: readonly Operation<Input, Output>[];
}

export type CheckResult<State, Input, Output> =
  | {
      readonly result: 'ok';
      readonly partitions: number;
      readonly operations: number;
      readonly searchSteps: number;
      readonly elapsedMs: number;
      /** One witness order per part. */
      readonly linearizations: readonly (readonly Operation<Input, Output>[])[];
    }
  | {
      readonly result: 'illegal';
      readonly partitions: number;
      readonly operations: number;
      readonly searchSteps: number;
      readonly elapsedMs: number;
      readonly diagnostic: IllegalDiagnostic<State, Input, Output>;
      /** A readable account of the diagnostic. */
      readonly message: string;
    }
  | {
      readonly result: 'unknown';
      readonly partitions: number;
      readonly operations: number;
      readonly searchSteps: number;
      readonly elapsedMs: number;
      readonly reason: 'time budget exhausted' | 'search step bound exhausted';
    };

export class HistoryError extends Error {
  readonly code = 'ERR_LINEARIZABILITY_HISTORY';
  constructor(message: string) {
    super(message);
  }
}

const DEFAULT_TIME_BUDGET_MS = 10_000;
const DEFAULT_MAX_SEARCH_STEPS = 50_000_000;
/** How many search steps between two looks at the clock. */
const CLOCK_CHECK_EVERY_STEPS = 1024;

/** Check a whole history; parts from `model.partition` are checked one after the other. */
export function checkLinearizability<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<State, Input, Output> {
  for (const op of history) validateOperation(op);
  const started = performance.now();
  const deadline = started + (options.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS);
  const budget: SearchBudget = {
    deadline,
    stepsLeft: options.maxSearchSteps ?? DEFAULT_MAX_SEARCH_STEPS,
    stepsUsed: 0,
  };
  const parts = model.partition ? model.partition(history) : [history];
  const linearizations: (readonly Operation<Input, Output>[])[] = [];
  const common = () => ({
    partitions: parts.length,
    operations: history.length,
    searchSteps: budget.stepsUsed,
    elapsedMs: performance.now() - started,
  });
  for (let p = 0; p < parts.length; p++) {
    const outcome = checkPart(model, parts[p]!, budget);
    if (outcome.kind === 'ok') {
      linearizations.push(outcome.order);
      continue;
    }
    if (outcome.kind === 'out of budget') return { result: 'unknown', ...common(), reason: outcome.reason };
    const diagnostic: IllegalDiagnostic<State, Input, Output> = {
      partitionIndex: p,
      partition: parts[p]!,
      longestLinearization: outcome.longest,
      stateAfter: outcome.stateAfter,
      firstUnlinearizable: outcome.blocked,
      candidates: outcome.candidates,
    };
    return { result: 'illegal', ...common(), diagnostic, message: describeDiagnostic(model, diagnostic) };
  }
  return { result: 'ok', ...common(), linearizations };
}

function validateOperation(op: Operation<unknown, unknown>): void {
  if (!Number.isFinite(op.call)) throw new HistoryError(`operation of client ${op.clientId}: call time ${op.call} is not a finite number`);
  if (Number.isNaN(op.ret)) throw new HistoryError(`operation of client ${op.clientId}: return time is NaN`);
  if (op.ret < op.call) {
    throw new HistoryError(`operation of client ${op.clientId}: returns at ${op.ret} before its call at ${op.call}`);
  }
}

/** Render a diagnostic for a person: the accepted prefix, the state, and who could not go next. */
export function describeDiagnostic<State, Input, Output>(
  model: Model<State, Input, Output>,
  d: IllegalDiagnostic<State, Input, Output>,
): string {
  const op = (o: Operation<Input, Output>) => {
    const what = model.describeOperation ? model.describeOperation(o.input, o.output) : JSON.stringify({ input: o.input, output: o.output });
    return `client ${o.clientId} [${o.call}, ${o.ret}] ${what}`;
  };
  const state = model.describeState ? model.describeState(d.stateAfter) : JSON.stringify(d.stateAfter);
  const lines = [
    `not linearizable (part ${d.partitionIndex}, ${d.partition.length} operations)`,
    `longest accepted order (${d.longestLinearization.length} operations${d.longestLinearization.length > 10 ? ', last 10 shown' : ''}):`,
    ...d.longestLinearization.slice(-10).map((o) => `  ${op(o)}`),
    `state after it: ${state}`,
    `could not linearize: ${op(d.firstUnlinearizable)}`,
    `candidates at that point: ${d.candidates.length}`,
    ...d.candidates.slice(0, 10).map((o) => `  ${op(o)}`),
  ];
  return lines.join('\n');
}

interface SearchBudget {
  readonly deadline: number;
  stepsLeft: number;
  stepsUsed: number;
}

type PartOutcome<State, Input, Output> =
  | { kind: 'ok'; order: Operation<Input, Output>[] }
  | { kind: 'out of budget'; reason: 'time budget exhausted' | 'search step bound exhausted' }
  | {
      kind: 'illegal';
      longest: Operation<Input, Output>[];
      stateAfter: State;
      blocked: Operation<Input, Output>;
      candidates: Operation<Input, Output>[];
    };

/** A call or return event in the doubly linked event list. */
interface Event {
  readonly opId: number;
  readonly isCall: boolean;
  /** For a call event, its return event. */
  match: Event | null;
  prev: Event | null;
  next: Event | null;
}

/** A frame of the search stack: the op linearized, the state before it, the states it could lead to. */
interface Frame<State> {
  readonly call: Event;
  readonly before: State;
  readonly candidates: readonly State[];
  /** Which candidate is the current state. */
  chosen: number;
}


function buildEventList(ops: readonly Operation<unknown, unknown>[]): Event {
  const raw: { time: number; isCall: boolean; opId: number; ev: Event }[] = [];
  for (let i = 0; i < ops.length; i++) {
    const call: Event = { opId: i, isCall: true, match: null, prev: null, next: null };
    const ret: Event = { opId: i, isCall: false, match: null, prev: null, next: null };
    call.match = ret;
    raw.push({ time: ops[i]!.call, isCall: true, opId: i, ev: call });
    raw.push({ time: ops[i]!.ret, isCall: false, opId: i, ev: ret });
  }
  // Closed intervals: at equal times calls come first, so touching intervals are concurrent.
  raw.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.opId - b.opId;
  });
  const head: Event = { opId: -1, isCall: false, match: null, prev: null, next: null };
  let tail = head;
  for (const r of raw) {
    r.ev.prev = tail;
    tail.next = r.ev;
    tail = r.ev;
  }
  return head;
}

/** Unlink a call and its return; they keep their own pointers so `unlift` can relink them. */
function lift(call: Event): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** Undo `lift`, in reverse order. Lifts are undone last-in first-out, which keeps this exact. */
function unlift(call: Event): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

function normalizeStep<State>(result: StepResult<State> | readonly State[]): readonly State[] {
  if (Array.isArray(result)) return result as readonly State[];
  const r = result as StepResult<State>;
  return r.ok ? [r.next as State] : [];
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function stateHash32(h: number | string): number {
  if (typeof h === 'string') return hashString(h);
  if (Number.isInteger(h)) return mix32(h ^ Math.floor(h / 0x100000000));
  return hashString(String(h));
}

const FULL_WORD = 0xffffffff;

/** Two UTF-16 code units holding a 32-bit number, for building compact string keys. */
function char32(x: number): string {
  return String.fromCharCode(x & 0xffff, x >>> 16);
}

function checkPart<State, Input, Output>(
  model: Model<State, Input, Output>,
  part: readonly Operation<Input, Output>[],
  budget: SearchBudget,
): PartOutcome<State, Input, Output> {
  // Number operations in call order (stable), which keeps the cached sets compact.
  const ops = [...part].sort((a, b) => a.call - b.call);
  const n = ops.length;
  const head = buildEventList(ops);
  const bits = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  // Visited (linearized set, state) pairs. Operations are numbered in call order, so a set is a
  // run of full words followed by a narrow frontier; the key holds where the frontier starts, the
  // state's 32-bit hash and the frontier's words. States with equal keys are told apart by `equal`.
  const cache = new Map<string, State[]>();
  const stack: Frame<State>[] = [];
  let state = model.init();

  // The deepest dead end is where the longest accepted order stopped: every push is eventually
  // followed by a dead end at that depth or deeper.
  let deadEndDepth = -1;
  let deadEnd: { stateAfter: State; blocked: number; candidates: number[]; order: number[] } | null = null;

  /** Record (bits ∪ {opId}, s) in the cache; false when it was already there. */
  const remember = (opId: number, s: State): boolean => {
    const word = opId >>> 5;
    const mask = 1 << (opId & 31);
    bits[word]! |= mask;
    let from = 0;
    while (from < bits.length && bits[from] === FULL_WORD) from++;
    let to = bits.length;
    while (to > from && bits[to - 1] === 0) to--;
    let key = char32(from) + char32(stateHash32(model.hash(s)));
    for (let i = from; i < to; i++) key += char32(bits[i]!);
    bits[word]! &= ~mask;
    const bucket = cache.get(key);
    if (!bucket) {
      cache.set(key, [s]);
      return true;
    }
    for (const seen of bucket) if (model.equal(seen, s)) return false;
    bucket.push(s);
    return true;
  };

  /** Try candidates[from..] for a call; on the first new one, push a frame and linearize it. */
  const tryFrom = (call: Event, before: State, candidates: readonly State[], from: number, lifted: boolean): boolean => {
    for (let c = from; c < candidates.length; c++) {
      const next = candidates[c]!;
      if (!remember(call.opId, next)) continue;
      stack.push({ call, before, candidates, chosen: c });
      state = next;
      bits[call.opId >>> 5]! |= 1 << (call.opId & 31);
      if (!lifted) lift(call);
      return true;
    }
    return false;
  };

  let entry: Event | null = head.next;
  while (head.next !== null) {
    budget.stepsUsed++;
    if (--budget.stepsLeft < 0) return { kind: 'out of budget', reason: 'search step bound exhausted' };
    if (budget.stepsUsed % CLOCK_CHECK_EVERY_STEPS === 0 && performance.now() > budget.deadline) {
      return { kind: 'out of budget', reason: 'time budget exhausted' };
    }
    if (entry === null) throw new Error('linearizability: event list ended without a return event (bug)');
    if (entry.isCall) {
      const op = ops[entry.opId]!;
      const candidates = normalizeStep(model.step(state, op.input, op.output));
      if (tryFrom(entry, state, candidates, 0, false)) {
        entry = head.next;
      } else {
        entry = entry.next;
      }
      continue;
    }
    // A return event: its operation must already be linearized and is not. Backtrack.
    if (stack.length > deadEndDepth) {
      deadEndDepth = stack.length;
      const pending: number[] = [];
      for (let e: Event | null = head.next; e !== null && e !== entry; e = e.next) if (e.isCall) pending.push(e.opId);
      deadEnd = { stateAfter: state, blocked: entry.opId, candidates: pending, order: stack.map((f) => f.call.opId) };
    }
    if (stack.length === 0) {
      const d = deadEnd!;
      return {
        kind: 'illegal',
        longest: d.order.map((i) => ops[i]!),
        stateAfter: d.stateAfter,
        blocked: ops[d.blocked]!,
        candidates: d.candidates.map((i) => ops[i]!),
      };
    }
    const top = stack.pop()!;
    const id = top.call.opId;
    bits[id >>> 5]! &= ~(1 << (id & 31));
    state = top.before;
    // Another possible outcome of the same operation at the same point, if the model has one.
    if (tryFrom(top.call, top.before, top.candidates, top.chosen + 1, true)) {
      entry = head.next;
      continue;
    }
    // Otherwise put it back and try the next operation after it instead.
    unlift(top.call);
    entry = top.call.next;
  }
  return { kind: 'ok', order: stack.map((f) => ops[f.call.opId]!) };
}

// ---------------------------------------------------------------------------------------------
// A ready model: a key-value map of registers with get, put and compare-and-swap, partitioned by
// key (each key is an independent register, so the map is linearizable iff every key is).

export type KvInput =
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

/**
 * What the client saw. `unknown` means the client never learned the outcome: a put or cas
 * with it may or may not have taken effect; a get with it constrains nothing.
 */
export type KvOutput =
  | { readonly kind: 'value'; readonly value: string | null }
  | { readonly kind: 'ok' }
  | { readonly kind: 'cas'; readonly swapped: boolean }
  | { readonly kind: 'unknown' };

/** The value of one key; `null` = never written. */
export type RegisterState = string | null;

function kvStep(state: RegisterState, input: KvInput, output: KvOutput): StepResult<RegisterState> | readonly RegisterState[] {
  switch (input.kind) {
    case 'get':
      if (output.kind === 'unknown') return { ok: true, next: state };
      return output.kind === 'value' && output.value === state ? { ok: true, next: state } : { ok: false };
    case 'put':
      // Indeterminate: it took effect, or it did not (yet); ret = Infinity lets it go at any later point.
      if (output.kind === 'unknown') return state === input.value ? [state] : [input.value, state];
      return output.kind === 'ok' ? { ok: true, next: input.value } : { ok: false };
    case 'cas': {
      const matches = state === input.expected;
      if (output.kind === 'unknown') return matches && state !== input.value ? [input.value, state] : [state];
      if (output.kind !== 'cas') return { ok: false };
      if (output.swapped) return matches ? { ok: true, next: input.value } : { ok: false };
      return matches ? { ok: false } : { ok: true, next: state };
    }
  }
}

function describeKv(input: KvInput, output: KvOutput): string {
  const out =
    output.kind === 'value' ? JSON.stringify(output.value) : output.kind === 'cas' ? (output.swapped ? 'swapped' : 'not swapped') : output.kind;
  switch (input.kind) {
    case 'get':
      return `get(${input.key}) → ${out}`;
    case 'put':
      return `put(${input.key}, ${JSON.stringify(input.value)}) → ${out}`;
    case 'cas':
      return `cas(${input.key}, ${JSON.stringify(input.expected)} → ${JSON.stringify(input.value)}) → ${out}`;
  }
}

/** Per-key get/put/cas registers, checked key by key. */
export const kvModel: Model<RegisterState, KvInput, KvOutput> = {
  init: () => null,
  step: kvStep,
  equal: (a, b) => a === b,
  hash: (s) => (s === null ? '\u0000null' : s),
  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      let list = byKey.get(op.input.key);
      if (!list) {
        list = [];
        byKey.set(op.input.key, list);
      }
      list.push(op);
    }
    return [...byKey.values()];
  },
  describeOperation: describeKv,
  describeState: (s) => JSON.stringify(s),
};
