// Find queries: which objects of a kind to return, answered from the table's indexes, and the
// same test applied to a single object (a transaction overlays its own writes on the results).
import { indexKeys, normalizeName, SCHEMA, slotKey, type IndexName, type Table } from './tables.js';
import type { Kind, NodeRole, ObjectByKind, StoreObject, TaskState } from './types.js';

export type By =
  | { readonly by: 'all' }
  | { readonly by: 'name'; readonly name: string }
  | { readonly by: 'namePrefix'; readonly prefix: string }
  | { readonly by: 'idPrefix'; readonly prefix: string }
  | { readonly by: 'index'; readonly index: IndexName; readonly key: string };

export const all: By = { by: 'all' };
export const byName = (name: string): By => ({ by: 'name', name });
export const byNamePrefix = (prefix: string): By => ({ by: 'namePrefix', prefix });
export const byIdPrefix = (prefix: string): By => ({ by: 'idPrefix', prefix });
export const byServiceId = (serviceId: string): By => ({ by: 'index', index: 'serviceId', key: serviceId });
export const byNodeId = (nodeId: string): By => ({ by: 'index', index: 'nodeId', key: nodeId });
export const byDesiredState = (state: TaskState): By => ({ by: 'index', index: 'desiredState', key: state });
export const bySlot = (serviceId: string, slot: number): By => ({ by: 'index', index: 'slot', key: slotKey(serviceId, slot) });
export const byRole = (role: NodeRole): By => ({ by: 'index', index: 'role', key: role });
export const byReferencedSecret = (secretId: string): By => ({ by: 'index', index: 'secret', key: secretId });
export const byReferencedConfig = (configId: string): By => ({ by: 'index', index: 'config', key: configId });
export const byReferencedNetwork = (networkId: string): By => ({ by: 'index', index: 'network', key: networkId });

export function findIn<K extends Kind>(t: Table<K>, q: By): ObjectByKind[K][] {
  switch (q.by) {
    case 'all':
      return [...t.all()];
    case 'name':
      return t.byName(q.name);
    case 'idPrefix':
      return t.byIdPrefix(q.prefix);
    case 'index':
      return t.byIndex(q.index, q.key);
    case 'namePrefix': {
      const p = normalizeName(q.prefix);
      const out: ObjectByKind[K][] = [];
      for (const o of t.all()) {
        const n = t.schema.name(o);
        if (n !== undefined && normalizeName(n).startsWith(p)) out.push(o);
      }
      return out;
    }
  }
}

/** Does `o` (of the table's kind) satisfy `q`? */
export function matches(kind: Kind, q: By, o: StoreObject): boolean {
  const schema = SCHEMA[kind];
  switch (q.by) {
    case 'all':
      return true;
    case 'idPrefix':
      return o.ID.startsWith(q.prefix);
    case 'name': {
      const n = schema.name(o);
      return n !== undefined && normalizeName(n) === normalizeName(q.name);
    }
    case 'namePrefix': {
      const n = schema.name(o);
      return n !== undefined && normalizeName(n).startsWith(normalizeName(q.prefix));
    }
    case 'index': {
      const def = schema.indexes[q.index];
      if (def === undefined) throw new RangeError(`store: ${kind} has no index ${q.index}`);
      return indexKeys(def, o).includes(q.key);
    }
  }
}
