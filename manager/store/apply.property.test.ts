// Property test of the apply path, fed committed entries directly (what every follower does):
// random batches of creates, updates and deletes over a small universe of IDs and names — many
// of them invalid on purpose (stale versions, duplicate names, missing objects), which the
// transaction builder would refuse before proposing but a concurrent leader can still commit.
// After every entry:
// - the batch took effect entirely (every written object at Version.Index = the entry's index)
//   or not at all (the store's contents unchanged), exactly as a plain reference model says;
// - every index (name, ID prefix, tasks by service/node/desired state/slot) answers what a full
//   scan answers, including after rollbacks;
// - unique names stay unique.
// At the end, snapshot → restore yields the same contents and indexes, and a watch opened at
// the start saw exactly the successful changes in order. Seeded by fast-check; a failure prints
// the seed and the shrunk history.
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { encodeBatch, type StoreAction } from './actions.js';
import { MemoryStore } from './memory-store.js';
import { byDesiredState, byIdPrefix, byName, byNodeId, byServiceId, bySlot } from './query.js';
import { normalizeName, SCHEMA } from './tables.js';
import { KINDS, type Kind, type StoreObject, type TaskState } from './types.js';
import type { ChangeEvent } from './watch.js';

const KIND_POOL: readonly Kind[] = ['service', 'task', 'secret'];
const ID_POOL = ['aa1', 'aa2', 'ab1', 'b01', 'b02'];
const NAME_POOL = ['web', 'WEB', 'db', 'cache', 'api', 'queue'];
const NODE_POOL = ['n1', 'n2', ''];
const STATE_POOL: readonly TaskState[] = ['running', 'shutdown'];

type GenAction =
  | {
      op: 'create' | 'update';
      /** Pick create or update by whether the ID exists, so that most batches can succeed. */
      fitting: boolean;
      kind: Kind;
      id: string;
      name: string;
      node: string;
      state: TaskState;
      slot: number;
      svc: string;
      versionSkew: number;
      /** Send an update as the fields it changes (what a leader's transaction proposes). */
      asPatch: boolean;
    }
  | { op: 'delete'; kind: Kind; id: string; checkVersion: boolean; versionSkew: number };

const genAction: fc.Arbitrary<GenAction> = fc.oneof(
  fc.record({
    op: fc.constantFrom('create' as const, 'update' as const),
    fitting: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    kind: fc.constantFrom(...KIND_POOL),
    id: fc.constantFrom(...ID_POOL),
    name: fc.constantFrom(...NAME_POOL),
    node: fc.constantFrom(...NODE_POOL),
    state: fc.constantFrom(...STATE_POOL),
    slot: fc.integer({ min: 1, max: 2 }),
    svc: fc.constantFrom(...ID_POOL),
    // 0 most of the time: the current version; otherwise a stale/future one.
    versionSkew: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 2 }) }),
    asPatch: fc.boolean(),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    kind: fc.constantFrom(...KIND_POOL),
    id: fc.constantFrom(...ID_POOL),
    checkVersion: fc.boolean(),
    versionSkew: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 2 }) }),
  }),
);

const TASK_SPEC = { ContainerSpec: { Image: 'busybox' } };

function makeObject(a: Extract<GenAction, { op: 'create' | 'update' }>): StoreObject {
  const base = { ID: a.id, CreatedAt: '2026-01-01T00:00:00Z', UpdatedAt: '2026-01-01T00:00:00Z' };
  if (a.kind === 'task') {
    return {
      ...base,
      // One object for every task, as a service's tasks share its template: a batch of several
      // creates sends it once (the shared-field create).
      Spec: TASK_SPEC,
      ServiceID: a.svc,
      Slot: a.slot,
      NodeID: a.node,
      DesiredState: a.state,
      Status: { Timestamp: '2026-01-01T00:00:00Z', State: 'new', Message: '' },
    } as unknown as StoreObject;
  }
  if (a.kind === 'service') return { ...base, Spec: { Name: a.name, TaskTemplate: {} } } as unknown as StoreObject;
  return { ...base, Spec: { Name: a.name, Data: 'eA==' } } as unknown as StoreObject;
}

type Model = Map<Kind, Map<string, StoreObject>>;

function snapshotModel(s: MemoryStore): Model {
  return new Map(KINDS.map((k) => [k, new Map(s.find(k).map((o) => [o.ID, o]))]));
}

/** The rules, written plainly: returns the new model, or null when the batch must fail. */
function referenceApply(before: Model, actions: readonly StoreAction[], index: number): Model | null {
  const m: Model = new Map([...before].map(([k, v]) => [k, new Map(v)]));
  const nameTaken = (kind: Kind, o: StoreObject): boolean => {
    if (!SCHEMA[kind].uniqueNames) return false;
    const n = normalizeName(SCHEMA[kind].name(o)!);
    return [...m.get(kind)!.values()].some((x) => x.ID !== o.ID && normalizeName(SCHEMA[kind].name(x)!) === n);
  };
  for (const a of actions) {
    const t = m.get(a.kind)!;
    if (a.op === 'create') {
      if (t.has(a.object.ID) || nameTaken(a.kind, a.object)) return null;
      t.set(a.object.ID, stampAt(a.object, index));
    } else if (a.op === 'update') {
      const cur = t.get(a.object.ID);
      if (cur === undefined || cur.Version.Index !== a.expectVersion || nameTaken(a.kind, a.object)) return null;
      t.set(a.object.ID, stampAt(a.object, index));
    } else if (a.op === 'patch') {
      const cur = t.get(a.id) as unknown as Record<string, unknown> | undefined;
      if (cur === undefined || (cur as unknown as StoreObject).Version.Index !== a.expectVersion) return null;
      // Stored fields in their order (changed ones replaced, removed ones dropped), then new ones.
      const next: Record<string, unknown> = { ID: a.id, Version: { Index: index } };
      for (const k of Object.keys(cur)) {
        if (k === 'ID' || k === 'Version' || a.unset.includes(k)) continue;
        next[k] = k in a.set ? a.set[k] : cur[k];
      }
      for (const k of Object.keys(a.set)) if (!(k in cur)) next[k] = a.set[k];
      if (nameTaken(a.kind, next as unknown as StoreObject)) return null;
      t.set(a.id, next as unknown as StoreObject);
    } else {
      const cur = t.get(a.id);
      if (cur === undefined || (a.expectVersion !== null && cur.Version.Index !== a.expectVersion)) return null;
      t.delete(a.id);
    }
  }
  return m;
}

/** The fields of `next` whose JSON differs from `cur`'s (all of them when there is no `cur`), and those it lacks. */
function patchOf(cur: StoreObject | undefined, next: StoreObject): { set: Record<string, unknown>; unset: string[] } {
  const c = (cur ?? {}) as Record<string, unknown>;
  const n = next as unknown as Record<string, unknown>;
  const set: Record<string, unknown> = {};
  for (const k of Object.keys(n)) if (k !== 'ID' && k !== 'Version' && JSON.stringify(n[k]) !== JSON.stringify(c[k])) set[k] = n[k];
  return { set, unset: Object.keys(c).filter((k) => k !== 'ID' && k !== 'Version' && !(k in n)) };
}

function stampAt(o: StoreObject, index: number): StoreObject {
  const { ID, Version: _version, ...rest } = o;
  return { ID, Version: { Index: index }, ...rest } as StoreObject;
}

function canonical(m: Model): string {
  return JSON.stringify(KINDS.map((k) => [...m.get(k)!.values()].sort((a, b) => (a.ID < b.ID ? -1 : 1))));
}

const ids = (os: readonly StoreObject[]): string[] => os.map((o) => o.ID).sort();

function checkIndexes(s: MemoryStore): void {
  for (const kind of KINDS) {
    const everything = s.find(kind);
    for (const name of NAME_POOL) {
      const scan = everything.filter((o) => SCHEMA[kind].name(o) !== undefined && normalizeName(SCHEMA[kind].name(o)!) === normalizeName(name));
      expect(ids(s.find(kind, byName(name)))).toEqual(ids(scan));
      if (SCHEMA[kind].uniqueNames) expect(scan.length).toBeLessThanOrEqual(1);
    }
    for (const p of ['a', 'aa', 'b0', 'ab1', 'zz']) {
      expect(s.find(kind, byIdPrefix(p)).map((o) => o.ID)).toEqual(everything.map((o) => o.ID).filter((id) => id.startsWith(p)).sort());
    }
  }
  const tasks = s.find('task');
  for (const svc of ID_POOL) {
    expect(ids(s.find('task', byServiceId(svc)))).toEqual(ids(tasks.filter((t) => t.ServiceID === svc)));
    for (const slot of [1, 2]) expect(ids(s.find('task', bySlot(svc, slot)))).toEqual(ids(tasks.filter((t) => t.ServiceID === svc && t.Slot === slot)));
  }
  for (const n of NODE_POOL) expect(ids(s.find('task', byNodeId(n)))).toEqual(ids(tasks.filter((t) => t.NodeID === n)));
  for (const st of STATE_POOL) expect(ids(s.find('task', byDesiredState(st)))).toEqual(ids(tasks.filter((t) => t.DesiredState === st)));
}

describe('apply: atomic batches and consistent indexes (property)', () => {
  it('matches a plain reference model after every committed entry, and after snapshot → restore', () => {
    const silent = pino({ level: 'silent' });
    const outcomes = { applied: 0, refused: 0 };
    fc.assert(
      fc.property(fc.array(fc.array(genAction, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 40, size: 'max' }), (history) => {
        const store = new MemoryStore({ logger: silent, watchRingEvents: 1000 });
        const watch = store.watch({ sinceVersion: 0 });
        const expectedEvents: string[] = [];
        let index = 0;
        for (const batch of history) {
          index += 1 + (batch.length % 2); // indexes with gaps, as no-ops and conf changes leave
          const before = snapshotModel(store);
          const actions: StoreAction[] = batch.map((a) => {
            const cur = before.get(a.kind)!.get(a.id);
            const expectVersion = Math.max(0, (cur?.Version.Index ?? 0) + a.versionSkew);
            if (a.op === 'delete') return { op: 'delete', kind: a.kind, id: a.id, expectVersion: a.checkVersion ? expectVersion : null };
            const op = a.fitting ? (cur === undefined ? 'create' : 'update') : a.op;
            if (op === 'create') return { op: 'create', kind: a.kind, object: makeObject(a) };
            if (a.asPatch) return { op: 'patch', kind: a.kind, id: a.id, ...patchOf(cur, makeObject(a)), expectVersion };
            return { op: 'update', kind: a.kind, object: makeObject(a), expectVersion };
          });
          const want = referenceApply(before, actions, index);
          store.applyEntry({ index, data: encodeBatch({ origin: new Uint8Array(8), seq: index, actions }) });
          expect(store.version).toBe(index);
          expect(canonical(snapshotModel(store))).toBe(canonical(want ?? before));
          outcomes[want === null ? 'refused' : 'applied']++;
          if (want !== null) {
            for (const a of actions) expectedEvents.push(`${index}:${a.kind}:${a.op === 'patch' ? 'update' : a.op}:${a.op === 'delete' || a.op === 'patch' ? a.id : a.object.ID}`);
          }
          checkIndexes(store);
        }
        const seen: ChangeEvent[] = [];
        for (let ev = watch.poll(); ev !== null; ev = watch.poll()) seen.push(ev);
        expect(seen.map((e) => `${e.version}:${e.kind}:${e.action}:${e.object.ID}`)).toEqual(expectedEvents);

        const copy = new MemoryStore({ logger: silent });
        copy.restore({ metadata: { index }, data: store.snapshotData() });
        expect(canonical(snapshotModel(copy))).toBe(canonical(snapshotModel(store)));
        checkIndexes(copy);
        // Same listing order too: a restored manager lists like one that applied every entry.
        for (const k of KINDS) expect(copy.find(k).map((o) => o.ID)).toEqual(store.find(k).map((o) => o.ID));
      }),
      { numRuns: 100 },
    );
    // The generator exercises both paths, not only one.
    expect(outcomes.applied).toBeGreaterThan(200);
    expect(outcomes.refused).toBeGreaterThan(200);
  });
});
