// A store transaction as it travels through Raft: one entry's data = one batch of actions.
//
// Layout (all integers unsigned LEB128 varints unless said otherwise):
//
//   u8     format (1)
//   8 B    origin: the proposing store instance (random), so it can find its waiter on apply
//   varint seq: the proposal's number within that instance
//   varint action count
//   per action:
//     u8     op << 4 | kind code        (kind code = position in KINDS)
//     varint expected version           (update, and delete-if-version only)
//     varint payload length, payload    (create/update: the object's JSON without `Version`,
//                                         which apply sets to the entry's index;
//                                         delete: the ID in UTF-8)
//   patch (op 5) instead of update: varint expected version, then the ID, the count of top-level
//     fields removed and their names (each a length-prefixed string), and the JSON of the
//     top-level fields that changed (a task's status report is its Status and UpdatedAt, not its
//     whole Spec). Apply builds the new object from the stored one at the expected version —
//     the same on every manager, since the version pins it — and the changed fields.
//
// JSON carries the objects (they are Docker's JSON shapes anyway); the framing around them is
// binary so an entry costs ~12 bytes plus its objects.
import { KINDS, type Kind, type StoreObject } from './types.js';
import { Reader, WireDecodeError, Writer } from './wire.js';

export const BATCH_FORMAT = 1;
export const ORIGIN_BYTES = 8;

export type StoreAction =
  | { readonly op: 'create'; readonly kind: Kind; readonly object: StoreObject }
  | { readonly op: 'update'; readonly kind: Kind; readonly object: StoreObject; readonly expectVersion: number }
  | {
      readonly op: 'patch';
      readonly kind: Kind;
      readonly id: string;
      /** The top-level fields that changed, with their new values (never ID or Version). */
      readonly set: Readonly<Record<string, unknown>>;
      /** The top-level fields removed. */
      readonly unset: readonly string[];
      readonly expectVersion: number;
    }
  | { readonly op: 'delete'; readonly kind: Kind; readonly id: string; readonly expectVersion: number | null };

export interface Batch {
  readonly origin: Uint8Array;
  readonly seq: number;
  readonly actions: readonly StoreAction[];
}

const OP_CREATE = 1;
const OP_UPDATE = 2;
const OP_DELETE = 3;
const OP_DELETE_IF_VERSION = 4;
const OP_PATCH = 5;

const KIND_CODE = new Map<Kind, number>(KINDS.map((k, i) => [k, i]));

export class BatchDecodeError extends WireDecodeError {
  override readonly code = 'ERR_STORE_BATCH_DECODE';
}

function objectJson(o: StoreObject): string {
  // Version is the entry's index, set on apply; sending it would only cost bytes.
  const { Version: _version, ...rest } = o;
  return JSON.stringify(rest);
}

export function encodeBatch(b: Batch): Uint8Array {
  if (b.origin.byteLength !== ORIGIN_BYTES) throw new RangeError(`store batch: origin must be ${ORIGIN_BYTES} bytes`);
  const w = new Writer(256 * b.actions.length + 32);
  w.byte(BATCH_FORMAT);
  w.bytes(b.origin);
  w.varint(b.seq);
  w.varint(b.actions.length);
  for (const a of b.actions) {
    const kind = KIND_CODE.get(a.kind);
    if (kind === undefined) throw new RangeError(`store batch: unknown kind ${String(a.kind)}`);
    switch (a.op) {
      case 'create':
        w.byte((OP_CREATE << 4) | kind);
        w.string(objectJson(a.object));
        break;
      case 'update':
        w.byte((OP_UPDATE << 4) | kind);
        w.varint(a.expectVersion);
        w.string(objectJson(a.object));
        break;
      case 'patch':
        w.byte((OP_PATCH << 4) | kind);
        w.varint(a.expectVersion);
        w.string(a.id);
        w.varint(a.unset.length);
        for (const k of a.unset) w.string(k);
        w.string(JSON.stringify(a.set));
        break;
      case 'delete':
        if (a.expectVersion === null) {
          w.byte((OP_DELETE << 4) | kind);
        } else {
          w.byte((OP_DELETE_IF_VERSION << 4) | kind);
          w.varint(a.expectVersion);
        }
        w.string(a.id);
        break;
    }
  }
  return w.finish();
}

/** Objects come back without `Version` (apply sets it); throws BatchDecodeError on anything malformed. */
export function decodeBatch(data: Uint8Array): Batch {
  const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const format = r.byte();
  if (format !== BATCH_FORMAT) throw new BatchDecodeError(`unknown format ${format}`);
  const origin = Uint8Array.from(r.bytes(ORIGIN_BYTES));
  const seq = r.varint();
  const count = r.varint();
  if (count > data.byteLength) throw new BatchDecodeError(`action count ${count} exceeds the entry size`);
  const actions: StoreAction[] = [];
  for (let i = 0; i < count; i++) {
    const head = r.byte();
    const op = head >> 4;
    const kind = KINDS[head & 0x0f];
    if (kind === undefined) throw new BatchDecodeError(`unknown kind code ${head & 0x0f}`);
    switch (op) {
      case OP_CREATE:
        actions.push({ op: 'create', kind, object: parseObject(r.string()) });
        break;
      case OP_UPDATE: {
        const expectVersion = r.varint();
        actions.push({ op: 'update', kind, object: parseObject(r.string()), expectVersion });
        break;
      }
      case OP_PATCH: {
        const expectVersion = r.varint();
        const id = r.string();
        const n = r.varint();
        if (n > data.byteLength) throw new BatchDecodeError(`field count ${n} exceeds the entry size`);
        const unset: string[] = [];
        for (let j = 0; j < n; j++) unset.push(r.string());
        actions.push({ op: 'patch', kind, id, set: parseFields(r.string()), unset, expectVersion });
        break;
      }
      case OP_DELETE:
        actions.push({ op: 'delete', kind, id: r.string(), expectVersion: null });
        break;
      case OP_DELETE_IF_VERSION: {
        const expectVersion = r.varint();
        actions.push({ op: 'delete', kind, id: r.string(), expectVersion });
        break;
      }
      default:
        throw new BatchDecodeError(`unknown op ${op}`);
    }
  }
  if (!r.done) throw new BatchDecodeError('trailing bytes');
  return { origin, seq, actions };
}

/** The origin and sequence number of an encoded batch, without decoding its actions. */
export function batchOrigin(data: Uint8Array): { readonly origin: Buffer; readonly seq: number } {
  const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const format = r.byte();
  if (format !== BATCH_FORMAT) throw new BatchDecodeError(`unknown format ${format}`);
  const origin = r.bytes(ORIGIN_BYTES);
  return { origin, seq: r.varint() };
}

function parseFields(json: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new BatchDecodeError(`patch is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BatchDecodeError('patch fields are not an object');
  if ('ID' in v || 'Version' in v) throw new BatchDecodeError('a patch may not set ID or Version');
  return v as Record<string, unknown>;
}

function parseObject(json: string): StoreObject {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new BatchDecodeError(`object is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || typeof (v as { ID?: unknown }).ID !== 'string') {
    throw new BatchDecodeError('object has no string ID');
  }
  return v as StoreObject;
}
