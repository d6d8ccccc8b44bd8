// The whole store as one byte string, for Raft snapshots (sealed by raft/storage like every
// other record).
//
//   u8     format (1)
//   varint version (the store's applied index when it was taken)
//   varint kinds present
//   per kind: u8 kind code, varint object count, varint length + JSON array of the objects
//
// One JSON array per kind keeps the per-object overhead at a comma; objects keep their
// `Version` here (unlike in transactions) since it differs from object to object.
import { KINDS, type Kind, type StoreObject } from './types.js';
import { Reader, WireDecodeError, Writer } from './wire.js';

export const SNAPSHOT_FORMAT = 1;

export class SnapshotDecodeError extends WireDecodeError {
  override readonly code = 'ERR_STORE_SNAPSHOT_DECODE';
}

export interface StoreContents {
  readonly version: number;
  readonly objects: ReadonlyMap<Kind, readonly StoreObject[]>;
}

export function encodeSnapshot(c: StoreContents): Uint8Array {
  const w = new Writer(4096);
  w.byte(SNAPSHOT_FORMAT);
  w.varint(c.version);
  const present = KINDS.filter((k) => (c.objects.get(k)?.length ?? 0) > 0);
  w.varint(present.length);
  for (const k of present) {
    const objs = c.objects.get(k)!;
    w.byte(KINDS.indexOf(k));
    w.varint(objs.length);
    w.string(JSON.stringify(objs));
  }
  return w.finish();
}

export function decodeSnapshot(data: Uint8Array): StoreContents {
  try {
    const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const format = r.byte();
    if (format !== SNAPSHOT_FORMAT) throw new SnapshotDecodeError(`unknown store snapshot format ${format}`);
    const version = r.varint();
    const kinds = r.varint();
    if (kinds > KINDS.length) throw new SnapshotDecodeError(`${kinds} kinds in a store snapshot (at most ${KINDS.length})`);
    const objects = new Map<Kind, StoreObject[]>();
    for (let i = 0; i < kinds; i++) {
      const code = r.byte();
      const kind = KINDS[code];
      if (kind === undefined) throw new SnapshotDecodeError(`unknown kind code ${code} in a store snapshot`);
      if (objects.has(kind)) throw new SnapshotDecodeError(`kind ${kind} appears twice in a store snapshot`);
      const count = r.varint();
      const list: unknown = JSON.parse(r.string());
      if (!Array.isArray(list) || list.length !== count) throw new SnapshotDecodeError(`store snapshot: ${kind} list does not hold ${count} objects`);
      for (const o of list) {
        const m = o as { ID?: unknown; Version?: { Index?: unknown } } | null;
        if (typeof m?.ID !== 'string' || typeof m.Version?.Index !== 'number') {
          throw new SnapshotDecodeError(`store snapshot: a ${kind} lacks an ID or a Version`);
        }
      }
      objects.set(kind, list as StoreObject[]);
    }
    if (!r.done) throw new SnapshotDecodeError('trailing bytes after a store snapshot');
    return { version, objects };
  } catch (err) {
    if (err instanceof SnapshotDecodeError) throw err;
    throw new SnapshotDecodeError(`store snapshot is malformed: ${(err as Error).message}`, { cause: err });
  }
}
