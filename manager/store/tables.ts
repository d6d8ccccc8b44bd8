// One table per kind: objects by ID, a sorted ID list for prefix lookups, a name index, and the
// secondary indexes the hot queries need (tasks by service / node / desired state / slot; nodes
// by role; services by the secrets, configs and networks they reference).
//
// Names are compared case-insensitively (normalized to lower case) and are unique per kind for
// clusters, services, networks, secrets and configs. Node names (Spec.Name, else the hostname)
// are indexed but not unique: several hosts may share a hostname.
import type { Kind, Node, ObjectByKind, Service, StoreObject, Task } from './types.js';

export type IndexName = 'serviceId' | 'nodeId' | 'desiredState' | 'slot' | 'role' | 'secret' | 'config' | 'network';

/**
 * A secondary index: `one` for a field with at most one key per object (no array is made per
 * call, which matters on every task write), `many` for a set of keys.
 */
export type IndexDef =
  | {
      readonly one: (o: StoreObject) => string | undefined;
      /** Optional: true when two versions certainly have the same key (saves building it twice on every write). */
      readonly same?: (a: StoreObject, b: StoreObject) => boolean;
    }
  | { readonly many: (o: StoreObject) => readonly string[] };

interface KindSchema {
  readonly uniqueNames: boolean;
  readonly name: (o: StoreObject) => string | undefined;
  readonly indexes: Partial<Record<IndexName, IndexDef>>;
}

const specName = (o: StoreObject): string | undefined => (o as { Spec?: { Name?: unknown } }).Spec?.Name as string | undefined;
const str = (v: string | undefined | null): string | undefined => (v === undefined || v === null ? undefined : v);

function serviceRefs(s: Service, pick: 'secret' | 'config' | 'network'): readonly string[] {
  const out = new Set<string>();
  const c = s.Spec?.TaskTemplate?.ContainerSpec;
  if (pick === 'secret') for (const r of c?.Secrets ?? []) out.add(r.SecretID);
  if (pick === 'config') for (const r of c?.Configs ?? []) out.add(r.ConfigID);
  if (pick === 'network') {
    for (const n of s.Spec?.TaskTemplate?.Networks ?? []) out.add(n.Target);
    for (const n of s.Spec?.Networks ?? []) out.add(n.Target);
  }
  return [...out];
}

/** The keys `o` has in an index. */
export function indexKeys(def: IndexDef, o: StoreObject): readonly string[] {
  if ('many' in def) return def.many(o);
  const k = def.one(o);
  return k === undefined ? [] : [k];
}

export const SCHEMA: Readonly<Record<Kind, KindSchema>> = {
  cluster: { uniqueNames: true, name: specName, indexes: {} },
  node: {
    uniqueNames: false,
    name: (o) => {
      const n = o as Node;
      return n.Spec?.Name || n.Description?.Hostname || undefined;
    },
    indexes: { role: { one: (o) => str((o as Node).Spec?.Role) } },
  },
  service: {
    uniqueNames: true,
    name: specName,
    indexes: {
      secret: { many: (o) => serviceRefs(o as Service, 'secret') },
      config: { many: (o) => serviceRefs(o as Service, 'config') },
      network: { many: (o) => serviceRefs(o as Service, 'network') },
    },
  },
  task: {
    uniqueNames: false,
    name: () => undefined,
    indexes: {
      serviceId: { one: (o) => str((o as Task).ServiceID) },
      nodeId: { one: (o) => str((o as Task).NodeID) },
      desiredState: { one: (o) => str((o as Task).DesiredState) },
      slot: {
        one: (o) => {
          const t = o as Task;
          return t.ServiceID ? slotKey(t.ServiceID, t.Slot) : undefined;
        },
        same: (a, b) => (a as Task).ServiceID === (b as Task).ServiceID && (a as Task).Slot === (b as Task).Slot,
      },
    },
  },
  network: { uniqueNames: true, name: specName, indexes: {} },
  secret: { uniqueNames: true, name: specName, indexes: {} },
  config: { uniqueNames: true, name: specName, indexes: {} },
};

export function slotKey(serviceId: string, slot: number): string {
  return `${serviceId}/${slot}`;
}

export function normalizeName(name: string): string {
  return name.toLowerCase();
}

/** First position in the sorted array whose value is ≥ key. */
function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Index key → the IDs that have it: the ID itself while there is one (most keys: a slot, a
 * name), a Set from the second on. A Set per key cost an allocation and a hash table for each of
 * 10,000 tasks' slots.
 */
type Postings = Map<string, string | Set<string>>;

function addTo(m: Postings, key: string, id: string): void {
  const v = m.get(key);
  if (v === undefined) m.set(key, id);
  else if (typeof v === 'string') {
    if (v !== id) m.set(key, new Set([v, id]));
  } else v.add(id);
}

function removeFrom(m: Postings, key: string, id: string): void {
  const v = m.get(key);
  if (v === undefined) return;
  if (typeof v === 'string') {
    if (v === id) m.delete(key);
    return;
  }
  v.delete(id);
  if (v.size === 0) m.delete(key);
}

interface Secondary {
  readonly name: IndexName;
  readonly def: IndexDef;
  readonly one: ((o: StoreObject) => string | undefined) | undefined;
  readonly same: ((a: StoreObject, b: StoreObject) => boolean) | undefined;
  readonly map: Postings;
}

/** Writes to the ID list between two merges before a merge is forced (at least this many; else the table's size). */
const MIN_ID_CHANGES_BEFORE_MERGE = 1024;

export class Table<K extends Kind> {
  readonly schema: KindSchema;
  private readonly byId = new Map<string, ObjectByKind[K]>();
  /**
   * IDs for prefix lookups: the live IDs are (sortedIds ∪ addedIds) minus removedIds. A write
   * only appends to addedIds or removedIds; a prefix lookup (rare: a user's short ID) or too many
   * such changes merges them into sortedIds in O(n + k log k). Splicing a sorted array on every
   * create and delete cost O(n) each (and O(n²) for a restore of a big snapshot).
   */
  private sortedIds: string[] = [];
  private addedIds: string[] = [];
  private readonly removedIds = new Set<string>();
  private readonly names: Postings = new Map();
  private readonly secondary: readonly Secondary[];
  private readonly secondaryByName = new Map<IndexName, Secondary>();

  constructor(readonly kind: K) {
    this.schema = SCHEMA[kind];
    const list: Secondary[] = [];
    for (const [name, def] of Object.entries(this.schema.indexes) as [IndexName, IndexDef][]) {
      const ix: Secondary = { name, def, one: 'one' in def ? def.one : undefined, same: 'one' in def ? def.same : undefined, map: new Map() };
      list.push(ix);
      this.secondaryByName.set(name, ix);
    }
    this.secondary = list;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): ObjectByKind[K] | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<ObjectByKind[K]> {
    return this.byId.values();
  }

  /** Objects whose (case-insensitive) name is exactly `name`. */
  byName(name: string): ObjectByKind[K][] {
    return this.idsToObjects(this.names.get(normalizeName(name)));
  }

  /** Objects whose ID starts with `prefix`, in ID order, at most `limit`. */
  byIdPrefix(prefix: string, limit = Number.POSITIVE_INFINITY): ObjectByKind[K][] {
    this.mergeIds();
    const out: ObjectByKind[K][] = [];
    for (let i = lowerBound(this.sortedIds, prefix); i < this.sortedIds.length && out.length < limit; i++) {
      const id = this.sortedIds[i]!;
      if (!id.startsWith(prefix)) break;
      out.push(this.byId.get(id)!);
    }
    return out;
  }

  byIndex(index: IndexName, key: string): ObjectByKind[K][] {
    const ix = this.secondaryByName.get(index);
    if (ix === undefined) throw new RangeError(`store: ${this.kind} has no index ${index}`);
    return this.idsToObjects(ix.map.get(key));
  }

  hasIndex(index: IndexName): boolean {
    return this.secondaryByName.has(index);
  }

  /** Inserts or replaces (by ID), keeping every index in step; only the keys that changed are touched. */
  put(o: ObjectByKind[K]): void {
    const prev = this.byId.get(o.ID);
    if (prev === undefined) this.insert(o);
    else this.replace(o, prev);
  }

  /** Adds an object whose ID is not in the table (the caller checked). */
  insert(o: ObjectByKind[K]): void {
    const id = o.ID;
    this.byId.set(id, o);
    if (this.removedIds.has(id)) this.removedIds.delete(id);
    else this.addedIds.push(id);
    this.maybeMergeIds();
    this.index(o);
  }

  /** Replaces `prev`, the object stored under the same ID (the caller read it), with `o`. */
  replace(o: ObjectByKind[K], prev: ObjectByKind[K]): void {
    const id = o.ID;
    this.byId.set(id, o);
    const name = this.schema.name(o);
    const prevName = this.schema.name(prev);
    if (name !== prevName) {
      if (prevName !== undefined) removeFrom(this.names, normalizeName(prevName), id);
      if (name !== undefined) addTo(this.names, normalizeName(name), id);
    }
    for (const ix of this.secondary) {
      if (ix.one !== undefined) {
        if (ix.same !== undefined && ix.same(prev, o)) continue;
        const a = ix.one(prev);
        const b = ix.one(o);
        if (a === b) continue;
        if (a !== undefined) removeFrom(ix.map, a, id);
        if (b !== undefined) addTo(ix.map, b, id);
      } else {
        const a = indexKeys(ix.def, prev);
        const b = indexKeys(ix.def, o);
        for (const k of a) if (!b.includes(k)) removeFrom(ix.map, k, id);
        for (const k of b) if (!a.includes(k)) addTo(ix.map, k, id);
      }
    }
  }

  remove(id: string): ObjectByKind[K] | undefined {
    const prev = this.byId.get(id);
    if (prev === undefined) return undefined;
    this.unindex(prev);
    this.byId.delete(id);
    this.removedIds.add(id);
    this.maybeMergeIds();
    return prev;
  }

  clear(): void {
    this.byId.clear();
    this.sortedIds = [];
    this.addedIds = [];
    this.removedIds.clear();
    this.names.clear();
    for (const ix of this.secondary) ix.map.clear();
  }

  private maybeMergeIds(): void {
    if (this.addedIds.length + this.removedIds.size > Math.max(MIN_ID_CHANGES_BEFORE_MERGE, this.sortedIds.length)) this.mergeIds();
  }

  private mergeIds(): void {
    if (this.addedIds.length === 0 && this.removedIds.size === 0) return;
    const removed = this.removedIds;
    const keep = (id: string): boolean => !removed.has(id);
    const a = removed.size === 0 ? this.sortedIds : this.sortedIds.filter(keep);
    const b = (removed.size === 0 ? this.addedIds : this.addedIds.filter(keep)).sort();
    const out = new Array<string>(a.length + b.length);
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < a.length && j < b.length) out[n++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
    while (i < a.length) out[n++] = a[i++]!;
    while (j < b.length) out[n++] = b[j++]!;
    this.sortedIds = out;
    this.addedIds = [];
    removed.clear();
  }

  private index(o: ObjectByKind[K]): void {
    const name = this.schema.name(o);
    if (name !== undefined) addTo(this.names, normalizeName(name), o.ID);
    for (const ix of this.secondary) {
      if (ix.one !== undefined) {
        const k = ix.one(o);
        if (k !== undefined) addTo(ix.map, k, o.ID);
      } else for (const k of indexKeys(ix.def, o)) addTo(ix.map, k, o.ID);
    }
  }

  private unindex(o: ObjectByKind[K]): void {
    const name = this.schema.name(o);
    if (name !== undefined) removeFrom(this.names, normalizeName(name), o.ID);
    for (const ix of this.secondary) {
      if (ix.one !== undefined) {
        const k = ix.one(o);
        if (k !== undefined) removeFrom(ix.map, k, o.ID);
      } else for (const k of indexKeys(ix.def, o)) removeFrom(ix.map, k, o.ID);
    }
  }

  private idsToObjects(ids: string | Set<string> | undefined): ObjectByKind[K][] {
    if (ids === undefined) return [];
    if (typeof ids === 'string') return [this.byId.get(ids)!];
    const out: ObjectByKind[K][] = [];
    for (const id of ids) out.push(this.byId.get(id)!);
    return out;
  }
}
