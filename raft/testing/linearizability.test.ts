// The checker, on histories small enough to reason about by hand, then on generated ones:
// histories cut from a real sequential execution are linearizable by construction and must
// check 'ok'; one read changed to a value nobody wrote must check 'illegal'.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checkLinearizability,
  HistoryError,
  kvModel,
  type KvInput,
  type KvOutput,
  type Model,
  type Operation,
} from './linearizability.js';

type KvOp = Operation<KvInput, KvOutput>;

const put = (clientId: number, key: string, value: string, call: number, ret: number): KvOp => ({
  clientId,
  input: { kind: 'put', key, value },
  output: ret === Infinity ? { kind: 'unknown' } : { kind: 'ok' },
  call,
  ret,
});
const get = (clientId: number, key: string, value: string | null, call: number, ret: number): KvOp => ({
  clientId,
  input: { kind: 'get', key },
  output: { kind: 'value', value },
  call,
  ret,
});
const cas = (
  clientId: number,
  key: string,
  expected: string | null,
  value: string,
  swapped: boolean | 'unknown',
  call: number,
  ret: number,
): KvOp => ({
  clientId,
  input: { kind: 'cas', key, expected, value },
  output: swapped === 'unknown' ? { kind: 'unknown' } : { kind: 'cas', swapped },
  call,
  ret,
});

const check = (history: readonly KvOp[]) => checkLinearizability(kvModel, history, { timeBudgetMs: 30_000 });

describe('linearizability checker: hand-written register histories', () => {
  it('accepts the empty history and a plain sequential one', () => {
    expect(check([]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 2, 3), put(1, 'x', 'b', 4, 5), get(2, 'x', 'b', 6, 7)]).result).toBe('ok');
  });

  it('accepts a read of the initial (never written) value before any write', () => {
    expect(check([get(1, 'x', null, 0, 1), put(2, 'x', 'a', 2, 3)]).result).toBe('ok');
  });

  it('rejects a stale read after a completed write, and names the read', () => {
    const stale = get(3, 'x', '1', 4, 5);
    const r = check([put(1, 'x', '1', 0, 1), put(2, 'x', '2', 2, 3), stale]);
    expect(r.result).toBe('illegal');
    if (r.result !== 'illegal') return;
    expect(r.diagnostic.firstUnlinearizable).toBe(stale);
    expect(r.diagnostic.longestLinearization.map((o) => o.input)).toEqual([
      { kind: 'put', key: 'x', value: '1' },
      { kind: 'put', key: 'x', value: '2' },
    ]);
    expect(r.diagnostic.stateAfter).toBe('2');
    expect(r.message).toContain('could not linearize: client 3 [4, 5] get(x) → "1"');
  });

  it('rejects a read of a value that was never written', () => {
    const r = check([put(1, 'x', 'a', 0, 1), get(2, 'x', 'ghost', 2, 3)]);
    expect(r.result).toBe('illegal');
    if (r.result === 'illegal') expect(r.diagnostic.firstUnlinearizable.output).toEqual({ kind: 'value', value: 'ghost' });
  });

  it('accepts both outcomes of a read concurrent with a write', () => {
    // put [0, 10] overlaps get [3, 4]: the read may see the old or the new value.
    expect(check([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 3, 4)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 3, 4)]).result).toBe('ok');
    // ...but once one read saw the new value, a later read may not see the old one.
    expect(check([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 3, 4), get(3, 'x', null, 5, 6)]).result).toBe('illegal');
  });

  it('write foo, write bar, read foo: illegal when sequential, legal when the second write overlaps the read', () => {
    expect(check([put(1, 'x', 'foo', 0, 1), put(1, 'x', 'bar', 2, 3), get(2, 'x', 'foo', 4, 5)]).result).toBe('illegal');
    expect(check([put(1, 'x', 'foo', 0, 1), put(1, 'x', 'bar', 2, 6), get(2, 'x', 'foo', 4, 5)]).result).toBe('ok');
  });

  it('treats intervals as closed: touching operations are concurrent', () => {
    expect(check([put(1, 'x', 'a', 0, 5), get(2, 'x', null, 5, 6)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 5), get(2, 'x', null, 6, 7)]).result).toBe('illegal');
  });

  it('keeps keys independent and reports which key failed', () => {
    const history = [
      put(1, 'a', '1', 0, 1),
      put(2, 'b', '1', 0, 1),
      get(3, 'a', '1', 2, 3),
      get(3, 'b', null, 2, 3), // stale on b only
    ];
    const r = check(history);
    expect(r.result).toBe('illegal');
    if (r.result !== 'illegal') return;
    expect(r.partitions).toBe(2);
    expect(r.diagnostic.partition.every((o) => o.input.key === 'b')).toBe(true);
  });

  it('checks compare-and-swap both ways', () => {
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 3), get(3, 'x', 'b', 4, 5)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'z', 'b', false, 2, 3), get(3, 'x', 'a', 4, 5)]).result).toBe('ok');
    // A swap that could not have matched, and a refusal that must have matched.
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'z', 'b', true, 2, 3)]).result).toBe('illegal');
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', false, 2, 3)]).result).toBe('illegal');
    // Two concurrent CAS from the same expected value: only one may win.
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 5), cas(3, 'x', 'a', 'c', true, 2, 5)]).result).toBe('illegal');
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 5), cas(3, 'x', 'a', 'c', false, 2, 5)]).result).toBe('ok');
  });

  it('lets a witness order be replayed against the model', () => {
    const history = [put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 1, 2), put(3, 'x', 'b', 3, 4), get(2, 'x', 'b', 5, 6)];
    const r = check(history);
    expect(r.result).toBe('ok');
    if (r.result !== 'ok') return;
    const order = r.linearizations[0]!;
    expect(order).toHaveLength(4);
    let state = kvModel.init();
    for (const o of order) {
      const step = kvModel.step(state, o.input, o.output);
      expect(Array.isArray(step)).toBe(false);
      if (Array.isArray(step)) return;
      const s = step as { ok: boolean; next?: string | null };
      expect(s.ok).toBe(true);
      state = s.next ?? null;
    }
    // Real-time order is kept: an op that returned before another was called comes first.
    for (let i = 0; i < order.length; i++) for (let j = i + 1; j < order.length; j++) expect(order[j]!.ret >= order[i]!.call).toBe(true);
  });

  it('refuses malformed operations with a typed error', () => {
    expect(() => check([put(1, 'x', 'a', 5, 4)])).toThrow(HistoryError);
    expect(() => check([put(1, 'x', 'a', Number.NaN, 4)])).toThrow(/call time/);
  });
});

describe('linearizability checker: indeterminate operations', () => {
  it('lets an indeterminate put take effect at any point after its call', () => {
    expect(check([put(1, 'x', 'a', 0, Infinity), get(2, 'x', 'a', 5, 6)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, Infinity), get(2, 'x', null, 5, 6), get(2, 'x', 'a', 7, 8)]).result).toBe('ok');
  });

  it('lets an indeterminate put never take effect', () => {
    expect(check([put(1, 'x', 'a', 0, Infinity), get(2, 'x', null, 5, 6), put(3, 'x', 'b', 7, 8), get(2, 'x', 'b', 9, 10)]).result).toBe('ok');
  });

  it('does not let an indeterminate put take effect before its call or be undone', () => {
    expect(check([get(2, 'x', 'a', 0, 1), put(1, 'x', 'a', 2, Infinity)]).result).toBe('illegal');
    expect(check([put(1, 'x', 'a', 0, Infinity), get(2, 'x', 'a', 5, 6), get(2, 'x', null, 7, 8)]).result).toBe('illegal');
  });

  it('handles an indeterminate cas, and a read whose outcome is unknown constrains nothing', () => {
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', 'unknown', 2, Infinity), get(3, 'x', 'b', 5, 6)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', 'unknown', 2, Infinity), get(3, 'x', 'a', 5, 6)]).result).toBe('ok');
    expect(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'z', 'b', 'unknown', 2, Infinity), get(3, 'x', 'b', 5, 6)]).result).toBe('illegal');
    const unknownRead: KvOp = { clientId: 4, input: { kind: 'get', key: 'x' }, output: { kind: 'unknown' }, call: 0, ret: Infinity };
    expect(check([put(1, 'x', 'a', 0, 1), unknownRead, get(3, 'x', 'a', 5, 6)]).result).toBe('ok');
  });

  it('accepts an indeterminate write whose output is known from elsewhere (ret = Infinity, output ok)', () => {
    const known: KvOp = { clientId: 1, input: { kind: 'put', key: 'x', value: 'a' }, output: { kind: 'ok' }, call: 0, ret: Infinity };
    expect(check([known, get(2, 'x', 'a', 5, 6)]).result).toBe('ok');
    // Known to have happened: it must fit somewhere after its call, but nothing afterwards forbids it.
    expect(check([known, get(2, 'x', null, 5, 6)]).result).toBe('ok');
  });
});

describe('linearizability checker: budgets and other models', () => {
  it("answers 'unknown' when the search step bound or the time budget runs out", () => {
    const history = [put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 2, 3), put(1, 'x', 'b', 4, 5)];
    const r = checkLinearizability(kvModel, history, { maxSearchSteps: 1 });
    expect(r.result).toBe('unknown');
    if (r.result === 'unknown') expect(r.reason).toBe('search step bound exhausted');
    const many: KvOp[] = [];
    for (let i = 0; i < 3000; i++) many.push(put(1, 'x', `v${i}`, 2 * i, 2 * i + 1));
    const t = checkLinearizability(kvModel, many, { timeBudgetMs: 0 });
    expect(t.result).toBe('unknown');
    if (t.result === 'unknown') expect(t.reason).toBe('time budget exhausted');
  });

  it('works with a model whose state is a number and whose step is nondeterministic', () => {
    // A counter where "add" either returns the new total or is lost (an at-most-once increment),
    // and "read" returns the total.
    type In = { kind: 'add'; n: number } | { kind: 'read' };
    const counter: Model<number, In, number | null> = {
      init: () => 0,
      step: (s, input, output) => {
        if (input.kind === 'read') return output === s ? [s] : [];
        return output === null ? [s + input.n, s] : output === s + input.n ? [s + input.n] : [];
      },
      equal: (a, b) => a === b,
      hash: (s) => s,
    };
    const o = (input: In, output: number | null, call: number, ret: number): Operation<In, number | null> => ({ clientId: 1, input, output, call, ret });
    const lost = [o({ kind: 'add', n: 5 }, null, 0, Infinity), o({ kind: 'add', n: 1 }, 1, 2, 3), o({ kind: 'read' }, 1, 4, 5)];
    expect(checkLinearizability(counter, lost).result).toBe('ok');
    const applied = [o({ kind: 'add', n: 5 }, null, 0, Infinity), o({ kind: 'add', n: 1 }, 1, 2, 3), o({ kind: 'read' }, 6, 4, 5)];
    expect(checkLinearizability(counter, applied).result).toBe('ok');
    const wrong = [o({ kind: 'add', n: 5 }, null, 0, Infinity), o({ kind: 'add', n: 1 }, 1, 2, 3), o({ kind: 'read' }, 3, 4, 5)];
    expect(checkLinearizability(counter, wrong).result).toBe('illegal');
  });
});

// ---------------------------------------------------------------------------------------------
// Generated histories. Each operation gets a linearization point t (strictly increasing); the
// sequential execution at those points gives every output; the interval [call, ret] is then
// widened at random around t. Such a history is linearizable by construction.

interface GenOp {
  readonly kind: 'get' | 'put' | 'cas';
  readonly key: number;
  readonly before: number;
  readonly after: number;
  readonly client: number;
  /** 0: completed, 1: indeterminate and applied, 2: indeterminate and never applied. */
  readonly fate: number;
  readonly casMatches: boolean;
}

const genOp: fc.Arbitrary<GenOp> = fc.record({
  kind: fc.constantFrom('get', 'put', 'cas') as fc.Arbitrary<'get' | 'put' | 'cas'>,
  key: fc.integer({ min: 0, max: 2 }),
  before: fc.integer({ min: 0, max: 40 }),
  after: fc.integer({ min: 0, max: 40 }),
  client: fc.integer({ min: 0, max: 4 }),
  fate: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constant(2) }),
  casMatches: fc.boolean(),
});

function historyFrom(gen: readonly GenOp[]): KvOp[] {
  const store = new Map<string, string | null>();
  const out: KvOp[] = [];
  gen.forEach((g, i) => {
    const t = 10 * i + 50;
    const key = `k${g.key}`;
    const current = store.get(key) ?? null;
    const value = `v${i}`;
    const call = t - g.before;
    const indeterminate = g.fate !== 0 && g.kind !== 'get';
    const applied = !(indeterminate && g.fate === 2);
    const ret = indeterminate ? Infinity : t + g.after;
    let input: KvInput;
    let output: KvOutput;
    if (g.kind === 'get') {
      input = { kind: 'get', key };
      output = { kind: 'value', value: current };
    } else if (g.kind === 'put') {
      input = { kind: 'put', key, value };
      output = indeterminate ? { kind: 'unknown' } : { kind: 'ok' };
      if (applied) store.set(key, value);
    } else {
      const expected = g.casMatches ? current : `nope${i}`;
      input = { kind: 'cas', key, expected, value };
      const swapped = expected === current;
      output = indeterminate ? { kind: 'unknown' } : { kind: 'cas', swapped };
      if (applied && swapped) store.set(key, value);
    }
    out.push({ clientId: g.client, input, output, call, ret });
  });
  return out;
}

describe('linearizability checker: generated histories', () => {
  it("checks 'ok' on every history cut from a sequential execution", () => {
    fc.assert(
      fc.property(fc.array(genOp, { minLength: 0, maxLength: 60 }), (gen) => {
        const r = check(historyFrom(gen));
        expect(r.result).toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it("checks 'illegal' once one read returns a value that was never written", () => {
    fc.assert(
      fc.property(fc.array(genOp, { minLength: 1, maxLength: 60 }), fc.nat(), (gen, pick) => {
        const history = historyFrom(gen);
        const reads = history.map((o, i) => (o.input.kind === 'get' ? i : -1)).filter((i) => i >= 0);
        fc.pre(reads.length > 0);
        const victim = reads[pick % reads.length]!;
        const mutated = history.slice();
        mutated[victim] = { ...history[victim]!, output: { kind: 'value', value: 'never-written' } };
        const r = check(mutated);
        expect(r.result).toBe('illegal');
        if (r.result === 'illegal') expect(r.diagnostic.firstUnlinearizable).toBe(mutated[victim]);
      }),
      { numRuns: 300 },
    );
  });
});

/** A small seeded generator so the scale histories are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Clients that each issue one operation at a time with random durations; each operation takes
 * effect at a random instant inside its interval; outputs come from executing in that order.
 */
function clientHistory(seed: number, clients: number, opsPerClient: number, keys: number): KvOp[] {
  const rand = prng(seed);
  const planned: { clientId: number; call: number; ret: number; at: number; kind: number; key: string }[] = [];
  for (let c = 0; c < clients; c++) {
    let t = rand() * 20;
    for (let i = 0; i < opsPerClient; i++) {
      const call = t;
      const ret = call + 1 + rand() * 60;
      planned.push({ clientId: c, call, ret, at: call + rand() * (ret - call), kind: Math.floor(rand() * 3), key: `k${Math.floor(rand() * keys)}` });
      t = ret + rand() * 5;
    }
  }
  planned.sort((a, b) => a.at - b.at);
  const store = new Map<string, string | null>();
  return planned.map((p, i): KvOp => {
    const current = store.get(p.key) ?? null;
    if (p.kind === 0) return { clientId: p.clientId, input: { kind: 'get', key: p.key }, output: { kind: 'value', value: current }, call: p.call, ret: p.ret };
    const value = `v${i}`;
    if (p.kind === 1) {
      store.set(p.key, value);
      return { clientId: p.clientId, input: { kind: 'put', key: p.key, value }, output: { kind: 'ok' }, call: p.call, ret: p.ret };
    }
    const expected = rand() < 0.7 ? current : 'stale';
    if (expected === current) store.set(p.key, value);
    return {
      clientId: p.clientId,
      input: { kind: 'cas', key: p.key, expected, value },
      output: { kind: 'cas', swapped: expected === current },
      call: p.call,
      ret: p.ret,
    };
  });
}

describe('linearizability checker: scale', () => {
  it('checks 4000 operations from 8 clients over 10 keys, and finds one bad read among them', () => {
    const history = clientHistory(7, 8, 500, 10);
    const ok = check(history);
    expect(ok.result).toBe('ok');
    expect(ok.partitions).toBe(10);
    // Corrupt a read near the end: the search has to exhaust its options on that key.
    let victim = -1;
    for (let i = history.length - 1; i >= 0 && victim < 0; i--) if (history[i]!.input.kind === 'get' && history[i]!.call > 3000) victim = i;
    expect(victim).toBeGreaterThanOrEqual(0);
    const mutated = history.slice();
    mutated[victim] = { ...history[victim]!, output: { kind: 'value', value: 'never-written' } };
    const bad = check(mutated);
    expect(bad.result).toBe('illegal');
    if (bad.result === 'illegal') expect(bad.diagnostic.firstUnlinearizable).toBe(mutated[victim]);
  });
});
