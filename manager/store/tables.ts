// One table per kind: objects by ID, a sorted ID list for prefix lookups, a name index, and the
// secondary indexes the hot queries need (tasks by service / node / desired state / slot; nodes
// by role; services by the secrets, configs and networks they reference).
//
// Names are compared case-insensitively (normalized to lower case) and are unique per kind for
// clusters, services, networks, secrets and configs. Node names (Spec.Name, else the hostname)
// are indexed but not unique: several hosts may share a hostname.
import type { Kind, Node, ObjectByKind, Service, StoreObject, Task } from './types.js';

export type IndexName = 'serviceId' | 'nodeId' | 'desiredState' | 'slot' | 'role' | 'secret' | 'config' | 'network';

interface KindSchema {
  readonly uniqueNames: boolean;
  readonly name: (o: StoreObject) => string | undefined;
  readonly indexes: Partial<Record<IndexName, (o: StoreObject) => readonly string[]>>;
}

const specName = (o: StoreObject): string | undefined => (o as { Spec?: { Name?: unknown } }).Spec?.Name as string | undefined;
const one = (v: string | undefined | null): readonly string[] => (v === undefined || v === null ? [] : [v]);

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

export const SCHEMA: Readonly<Record<Kind, KindSchema>> = {
  cluster: { uniqueNames: true, name: specName, indexes: {} },
  node: {
    uniqueNames: false,
    name: (o) => {
      const n = o as Node;
      return n.Spec?.Name || n.Description?.Hostname || undefined;
    },
    indexes: { role: (o) => one((o as Node).Spec?.Role) },
  },
  service: {
    uniqueNames: true,
    name: specName,
    indexes: {
      secret: (o) => serviceRefs(o as Service, 'secret'),
      config: (o) => serviceRefs(o as Service, 'config'),
      network: (o) => serviceRefs(o as Service, 'network'),
    },
  },
  task: {
    uniqueNames: false,
    name: () => undefined,
    indexes: {
      serviceId: (o) => one((o as Task).ServiceID),
      nodeId: (o) => one((o as Task).NodeID),
      desiredState: (o) => one((o as Task).DesiredState),
      slot: (o) => {
        const t = o as Task;
        return t.ServiceID ? [slotKey(t.ServiceID, t.Slot)] : [];
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

function addTo(m: Map<string, Set<string>>, key: string, id: string): void {
  let s = m.get(key);
  if (s === undefined) m.set(key, (s = new Set()));
  s.add(id);
}

function removeFrom(m: Map<string, Set<string>>, key: string, id: string): void {
  const s = m.get(key);
  if (s === undefined) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}

export class Table<K extends Kind> {
  readonly schema: KindSchema;
  private readonly byId = new Map<string, ObjectByKind[K]>();
  private sortedIds: string[] = [];
  private readonly names = new Map<string, Set<string>>();
  private readonly secondary = new Map<IndexName, Map<string, Set<string>>>();

  constructor(readonly kind: K) {
    this.schema = SCHEMA[kind];
    for (const ix of Object.keys(this.schema.indexes) as IndexName[]) this.secondary.set(ix, new Map());
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
    const out: ObjectByKind[K][] = [];
    for (let i = lowerBound(this.sortedIds, prefix); i < this.sortedIds.length && out.length < limit; i++) {
      const id = this.sortedIds[i]!;
      if (!id.startsWith(prefix)) break;
      out.push(this.byId.get(id)!);
    }
    return out;
  }

  byIndex(index: IndexName, key: string): ObjectByKind[K][] {
    const ix = this.secondary.get(index);
    if (ix === undefined) throw new RangeError(`store: ${this.kind} has no index ${index}`);
    return this.idsToObjects(ix.get(key));
  }

  hasIndex(index: IndexName): boolean {
    return this.secondary.has(index);
  }

  /** Inserts or replaces (by ID), keeping every index in step. */
  put(o: ObjectByKind[K]): void {
    const prev = this.byId.get(o.ID);
    if (prev !== undefined) this.unindex(prev);
    else this.sortedIds.splice(lowerBound(this.sortedIds, o.ID), 0, o.ID);
    this.byId.set(o.ID, o);
    this.index(o);
  }

  remove(id: string): ObjectByKind[K] | undefined {
    const prev = this.byId.get(id);
    if (prev === undefined) return undefined;
    this.unindex(prev);
    this.byId.delete(id);
    this.sortedIds.splice(lowerBound(this.sortedIds, id), 1);
    return prev;
  }

  clear(): void {
    this.byId.clear();
    this.sortedIds = [];
    this.names.clear();
    for (const m of this.secondary.values()) m.clear();
  }

  private index(o: ObjectByKind[K]): void {
    const name = this.schema.name(o);
    if (name !== undefined) addTo(this.names, normalizeName(name), o.ID);
    for (const [ix, keys] of Object.entries(this.schema.indexes) as [IndexName, (o: StoreObject) => readonly string[]][]) {
      const m = this.secondary.get(ix)!;
      for (const k of keys(o)) addTo(m, k, o.ID);
    }
  }

  private unindex(o: ObjectByKind[K]): void {
    const name = this.schema.name(o);
    if (name !== undefined) removeFrom(this.names, normalizeName(name), o.ID);
    for (const [ix, keys] of Object.entries(this.schema.indexes) as [IndexName, (o: StoreObject) => readonly string[]][]) {
      const m = this.secondary.get(ix)!;
      for (const k of keys(o)) removeFrom(m, k, o.ID);
    }
  }

  private idsToObjects(ids: Set<string> | undefined): ObjectByKind[K][] {
    if (ids === undefined) return [];
    const out: ObjectByKind[K][] = [];
    for (const id of ids) out.push(this.byId.get(id)!);
    return out;
  }
}
