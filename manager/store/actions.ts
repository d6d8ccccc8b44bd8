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
//   create with shared fields (op 6), for a top-level field whose value (the same object) is in
//     several creates of the batch — 500 tasks' Spec that is their service's task template:
//     varint count, then the names of this object's fields that the next creates will refer to
//     (each gets the next slot number, in order); varint count, then per field taken from a slot:
//     varint position among the object's fields, name, varint slot; then the object's JSON
//     without those fields. The value is sent once per batch, parsed once and shared.
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
const OP_CREATE_SHARED = 6;

const KIND_CODE = new Map<Kind, number>(KINDS.map((k, i) => [k, i]));

export class BatchDecodeError extends WireDecodeError {
  override readonly code: string = 'ERR_STORE_BATCH_DECODE';
}

/**
 * An entry in a format, op or kind this build does not know: written by a newer Shoal. Unlike a
 * malformed entry (every manager skips it alike), skipping this one would leave this manager's
 * store behind the others', so the caller must stop applying instead.
 */
export class BatchVersionError extends BatchDecodeError {
  override readonly code = 'ERR_STORE_BATCH_VERSION';
}

function objectJson(o: StoreObject): string {
  // Version is the entry's index, set on apply; sending it would only cost bytes.
  const { Version: _version, ...rest } = o;
  return JSON.stringify(rest);
}

/**
 * Two values JSON writes identically, found without writing them: the same reference, or plain
 * objects (or arrays) with the same keys in the same order whose values are each the same
 * primitive or the same reference. Enough for the Status a pass of the orchestrator gives each
 * new task (equal objects, made one per task). The transaction's objects are JSON-faithful
 * copies (no undefined, no NaN), so equal here means equal JSON.
 */
function sameFlat(a: object, b: object): boolean {
  if (a === b) return true;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const kx = Object.keys(x);
  const ky = Object.keys(y);
  if (kx.length !== ky.length) return false;
  for (let i = 0; i < kx.length; i++) {
    const k = kx[i]!;
    if (k !== ky[i] || x[k] !== y[k]) return false;
  }
  return true;
}

/**
 * The object-valued top-level fields of the batch's creates that hold the same value more than
 * once: the same object (a service's task template as every task's Spec), or an equal one in the
 * same field of the previous create (each task's Status). `canon` maps a value to the first of
 * its equals; `shared` holds those first ones. The decoder needs nothing new: a create defines a
 * slot with its field's value and the next ones refer to it, whatever the leader's references.
 */
interface SharedValues {
  readonly shared: Set<object>;
  readonly canon: Map<object, object>;
}

function sharedValues(actions: readonly StoreAction[]): SharedValues | null {
  let seen: Set<object> | null = null;
  let out: SharedValues | null = null;
  const lastByField = new Map<string, object>();
  for (const a of actions) {
    if (a.op !== 'create') continue;
    const o = a.object as unknown as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      if (typeof v !== 'object' || v === null || k === 'Version') continue;
      seen ??= new Set();
      const prev = lastByField.get(k);
      let rep: object = v;
      if (prev !== undefined && prev !== v && !seen.has(v) && sameFlat(prev, v)) {
        out ??= { shared: new Set(), canon: new Map() };
        rep = out.canon.get(prev) ?? prev;
        out.canon.set(v, rep);
        out.shared.add(rep);
      } else if (seen.has(v)) {
        out ??= { shared: new Set(), canon: new Map() };
        rep = out.canon.get(v) ?? v;
        out.shared.add(rep);
      }
      seen.add(v);
      lastByField.set(k, v);
    }
  }
  return out;
}

function writeSharedCreate(w: Writer, kind: number, obj: StoreObject, sv: SharedValues, slots: Map<object, number>): boolean {
  const o = obj as unknown as Record<string, unknown>;
  const defs: string[] = [];
  const refs: { pos: number; name: string; slot: number }[] = [];
  let pos = 0;
  for (const k in o) {
    if (k === 'Version') continue;
    const v = o[k];
    if (typeof v === 'object' && v !== null && k !== 'ID') {
      const rep = sv.canon.get(v) ?? v;
      if (sv.shared.has(rep)) {
        const slot = slots.get(rep);
        if (slot !== undefined) refs.push({ pos, name: k, slot });
        else {
          slots.set(rep, slots.size);
          defs.push(k);
        }
      }
    }
    pos++;
  }
  if (defs.length === 0 && refs.length === 0) return false;
  w.byte((OP_CREATE_SHARED << 4) | kind);
  w.varint(defs.length);
  for (const k of defs) w.string(k);
  w.varint(refs.length);
  for (const r of refs) {
    w.varint(r.pos);
    w.string(r.name);
    w.varint(r.slot);
  }
  if (refs.length === 0) {
    w.string(objectJson(obj));
    return true;
  }
  const rest: Record<string, unknown> = {};
  for (const k in o) if (k !== 'Version' && !refs.some((r) => r.name === k)) rest[k] = o[k];
  w.string(JSON.stringify(rest));
  return true;
}

function readSharedCreate(r: Reader, data: Uint8Array, slots: unknown[]): StoreObject {
  const nDefs = r.varint();
  if (nDefs > data.byteLength) throw new BatchDecodeError(`field count ${nDefs} exceeds the entry size`);
  const defs: string[] = [];
  for (let i = 0; i < nDefs; i++) defs.push(r.string());
  const nRefs = r.varint();
  if (nRefs > data.byteLength) throw new BatchDecodeError(`field count ${nRefs} exceeds the entry size`);
  const refs: { pos: number; name: string; value: unknown }[] = [];
  for (let i = 0; i < nRefs; i++) {
    const pos = r.varint();
    const name = r.string();
    const slot = r.varint();
    if (name === 'ID' || name === 'Version' || name === '__proto__') throw new BatchDecodeError(`a shared field may not be ${name}`);
    if (i > 0 && pos <= refs[i - 1]!.pos) throw new BatchDecodeError('shared fields out of order');
    refs.push({ pos, name, value: slot });
  }
  const parsed = parseObject(r.string()) as unknown as Record<string, unknown>;
  for (const k of defs) {
    if (!Object.prototype.hasOwnProperty.call(parsed, k) || typeof parsed[k] !== 'object' || parsed[k] === null) throw new BatchDecodeError(`shared field ${k} is missing`);
    slots.push(parsed[k]);
  }
  if (refs.length === 0) return parsed as unknown as StoreObject;
  const out: Record<string, unknown> = {};
  const keys = Object.keys(parsed);
  let j = 0;
  let ri = 0;
  const total = keys.length + refs.length;
  for (let pos = 0; pos < total; pos++) {
    const ref = refs[ri];
    if (ref !== undefined && ref.pos === pos) {
      const value = slots[ref.value as number];
      if (value === undefined) throw new BatchDecodeError(`shared field ${ref.name} refers to an unknown slot`);
      if (Object.prototype.hasOwnProperty.call(out, ref.name) || Object.prototype.hasOwnProperty.call(parsed, ref.name)) throw new BatchDecodeError(`field ${ref.name} given twice`);
      out[ref.name] = value;
      ri++;
    } else {
      const k = keys[j++]!;
      if (k === '__proto__') Object.defineProperty(out, k, { value: parsed[k], writable: true, enumerable: true, configurable: true });
      else out[k] = parsed[k];
    }
  }
  if (ri !== refs.length) throw new BatchDecodeError('shared field position past the object');
  return out as unknown as StoreObject;
}

export function encodeBatch(b: Batch): Uint8Array {
  if (b.origin.byteLength !== ORIGIN_BYTES) throw new RangeError(`store batch: origin must be ${ORIGIN_BYTES} bytes`);
  const w = new Writer(256 * b.actions.length + 32);
  w.byte(BATCH_FORMAT);
  w.bytes(b.origin);
  w.varint(b.seq);
  w.varint(b.actions.length);
  const shared = sharedValues(b.actions);
  const slots = new Map<object, number>();
  for (const a of b.actions) {
    const kind = KIND_CODE.get(a.kind);
    if (kind === undefined) throw new RangeError(`store batch: unknown kind ${String(a.kind)}`);
    switch (a.op) {
      case 'create':
        if (shared !== null && writeSharedCreate(w, kind, a.object, shared, slots)) break;
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
  if (format !== BATCH_FORMAT) throw new BatchVersionError(`unknown batch format ${format} (written by a newer Shoal?)`);
  const origin = Uint8Array.from(r.bytes(ORIGIN_BYTES));
  const seq = r.varint();
  const count = r.varint();
  if (count > data.byteLength) throw new BatchDecodeError(`action count ${count} exceeds the entry size`);
  const actions: StoreAction[] = [];
  const slots: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const head = r.byte();
    const op = head >> 4;
    const kind = KINDS[head & 0x0f];
    if (kind === undefined) throw new BatchVersionError(`unknown object kind code ${head & 0x0f} (written by a newer Shoal?)`);
    switch (op) {
      case OP_CREATE:
        actions.push({ op: 'create', kind, object: parseObject(r.string()) });
        break;
      case OP_CREATE_SHARED:
        actions.push({ op: 'create', kind, object: readSharedCreate(r, data, slots) });
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
        throw new BatchVersionError(`unknown store op ${op} (written by a newer Shoal?)`);
    }
  }
  if (!r.done) throw new BatchDecodeError('trailing bytes');
  return { origin, seq, actions };
}

/** The origin and sequence number of an encoded batch, without decoding its actions. */
export function batchOrigin(data: Uint8Array): { readonly origin: Buffer; readonly seq: number } {
  const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const format = r.byte();
  if (format !== BATCH_FORMAT) throw new BatchVersionError(`unknown batch format ${format} (written by a newer Shoal?)`);
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
