// Encoding of membership changes in the data of `conf` entries. Rare and tiny, so JSON is fine.
import type { ConfChange, NodeId } from './types.js';

export class ConfChangeError extends Error {
  readonly code = 'ERR_RAFT_CONF_CHANGE';
}

const TYPES: ReadonlySet<string> = new Set(['addNode', 'addLearner', 'removeNode']);

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(cc));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new ConfChangeError('conf change entry is not valid JSON');
  }
  if (typeof v !== 'object' || v === null) throw new ConfChangeError('conf change entry is not an object');
  const o = v as { type?: unknown; nodeId?: unknown; context?: unknown };
  if (typeof o.type !== 'string' || !TYPES.has(o.type)) throw new ConfChangeError(`conf change has an unknown type ${String(o.type)}`);
  if (typeof o.nodeId !== 'string' && typeof o.nodeId !== 'number') throw new ConfChangeError('conf change has no node id');
  const cc: ConfChange = { type: o.type as ConfChange['type'], nodeId: o.nodeId as NodeId };
  return typeof o.context === 'string' ? { ...cc, context: o.context } : cc;
}
