// Assignment messages as bytes, built by hand on the leader: the same bytes `AssignmentsMessage.encode`
// gives (proto/shoal/dispatcher.proto; checked against it in assignment-wire.test.ts), written
// once into a buffer of the exact size — the generated writer grew its buffer by copying, joined
// forks, and Buffer.from copied the result again. Workers decode them with the generated code.
//
// The objects inside travel as JSON (`task_json`…). A task's JSON is built field by field, and
// the JSON of a field that tasks share by reference (the task template a service's tasks are
// created with: `Spec`, and `Endpoint`, `NetworksAttachments`, `Labels`) is kept per object: the
// store's objects are frozen all the way down, so the same object always has the same JSON, and
// 10,000 tasks of one service encode their Spec once. The result is exactly JSON.stringify's.
import { AssignmentsMessage, AssignmentsMessage_Type, DispatcherService } from '../../proto/gen/shoal/dispatcher.js';
import { decodeNodeStreamRequest, decodeUpdateTaskStatusRequest, encodeNodeStreamResponse } from './node-stream-wire.js';
import { varintLength, writeVarint } from '../../proto/wire.js';

/** What an assignment carries (the `Assignment.item` oneof's JSON fields). */
export type AssignedKind = 'task' | 'secret' | 'config' | 'network';

/** Field numbers of `Assignment.item`'s JSON members, as the tag byte (field << 3 | wire type 2). */
const ITEM_TAG: Readonly<Record<AssignedKind, number>> = {
  task: (4 << 3) | 2,
  secret: (5 << 3) | 2,
  config: (6 << 3) | 2,
  network: (7 << 3) | 2,
};

/** One change of a message, its JSON already made (and measured: `bytes` is its UTF-8 length). */
export interface EncodedChange {
  readonly kind: AssignedKind;
  readonly json: string;
  readonly bytes: number;
  /** ASSIGNMENT_ACTION_REMOVE (else UPDATE). */
  readonly remove: boolean;
}

/** An assignments message already encoded: `DISPATCHER_SERVICE` writes its bytes as they are. */
export class EncodedAssignments {
  constructor(readonly bytes: Buffer) {}
}

export function encodedChange(kind: AssignedKind, json: string, remove: boolean): EncodedChange {
  return { kind, json, bytes: Buffer.byteLength(json, 'utf8'), remove };
}

/** The bytes of AssignmentsMessage{type, applies_to, results_in, changes, more}, as the generated encoder writes them. */
export function encodeAssignmentsMessage(type: AssignmentsMessage_Type, appliesTo: string, resultsIn: string, changes: readonly EncodedChange[], more: boolean): Buffer {
  const appliesLen = Buffer.byteLength(appliesTo, 'utf8');
  const resultsLen = Buffer.byteLength(resultsIn, 'utf8');
  let size = 0;
  if (type !== 0) size += 1 + varintLength(type);
  if (appliesLen > 0) size += 1 + varintLength(appliesLen) + appliesLen;
  if (resultsLen > 0) size += 1 + varintLength(resultsLen) + resultsLen;
  for (const c of changes) {
    const assignment = 1 + varintLength(c.bytes) + c.bytes;
    const change = 1 + varintLength(assignment) + assignment + (c.remove ? 2 : 0);
    size += 1 + varintLength(change) + change;
  }
  if (more) size += 2;
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  if (type !== 0) {
    buf[off++] = (1 << 3) | 0;
    off = writeVarint(buf, off, type);
  }
  if (appliesLen > 0) {
    buf[off++] = (2 << 3) | 2;
    off = writeVarint(buf, off, appliesLen);
    off += buf.write(appliesTo, off, appliesLen, 'utf8');
  }
  if (resultsLen > 0) {
    buf[off++] = (3 << 3) | 2;
    off = writeVarint(buf, off, resultsLen);
    off += buf.write(resultsIn, off, resultsLen, 'utf8');
  }
  for (const c of changes) {
    const assignment = 1 + varintLength(c.bytes) + c.bytes;
    buf[off++] = (4 << 3) | 2;
    off = writeVarint(buf, off, 1 + varintLength(assignment) + assignment + (c.remove ? 2 : 0));
    // AssignmentChange.assignment (1), then action (2) when it is not UPDATE (0).
    buf[off++] = (1 << 3) | 2;
    off = writeVarint(buf, off, assignment);
    buf[off++] = ITEM_TAG[c.kind];
    off = writeVarint(buf, off, c.bytes);
    off += buf.write(c.json, off, c.bytes, 'utf8');
    if (c.remove) {
      buf[off++] = (2 << 3) | 0;
      buf[off++] = 1;
    }
  }
  if (more) {
    buf[off++] = (5 << 3) | 0;
    buf[off++] = 1;
  }
  if (off !== size) throw new Error(`assignment message: wrote ${off} bytes of ${size}`);
  return buf;
}

/** Task fields that tasks share by reference (frozen): their JSON is kept per object. */
const SHARED_FIELDS: ReadonlySet<string> = new Set(['Spec', 'Endpoint', 'NetworksAttachments', 'Labels']);
const fieldJson = new WeakMap<object, string>();
/** `"Key":` of the keys met so far (store objects have a few dozen field names). */
const keyPrefix = new Map<string, string>();
const MAX_KEYS = 4096;
/** Deeper than this, JSON.stringify takes over (it throws on a cycle, as it should). */
const MAX_DEPTH = 64;
/** What JSON.stringify would escape in a string (quote, backslash, controls) or check (surrogates). */
// eslint-disable-next-line no-control-regex -- the controls are what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function keyJson(k: string): string {
  let p = keyPrefix.get(k);
  if (p === undefined) {
    p = `${JSON.stringify(k)}:`;
    if (keyPrefix.size < MAX_KEYS) keyPrefix.set(k, p);
  }
  return p;
}

function isPlain(o: object): boolean {
  const proto: unknown = Object.getPrototypeOf(o);
  return (proto === Object.prototype || proto === null) && typeof (o as { toJSON?: unknown }).toJSON !== 'function';
}

/** JSON.stringify(v) for plain data, built here: V8's costs about a microsecond per object it visits. */
function valueJson(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
      return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      if (v === null) return 'null';
      if (depth > MAX_DEPTH) return JSON.stringify(v);
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype || typeof (v as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(v);
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + (valueJson(v[i], depth + 1) ?? 'null');
        return `${out}]`;
      }
      return isPlain(v) ? fieldsJson(v as Record<string, unknown>, depth, false) : JSON.stringify(v);
    default:
      // undefined, a function or a symbol: left out (undefined); a bigint: JSON.stringify throws.
      return JSON.stringify(v) as string | undefined;
  }
}

function fieldsJson(o: Record<string, unknown>, depth: number, top: boolean): string {
  let out = '{';
  let first = true;
  for (const k of Object.keys(o)) {
    const v = o[k];
    let json: string | undefined;
    if (top && typeof v === 'object' && v !== null && SHARED_FIELDS.has(k) && Object.isFrozen(v)) {
      json = fieldJson.get(v);
      if (json === undefined) {
        json = valueJson(v, depth + 1) ?? 'null';
        fieldJson.set(v, json);
      }
    } else {
      json = valueJson(v, depth + 1);
      if (json === undefined) continue;
    }
    out += first ? keyJson(k) + json : `,${keyJson(k)}${json}`;
    first = false;
  }
  return `${out}}`;
}

/**
 * `JSON.stringify(o)` of a store object (plain data), built field by field, with the JSON of its
 * shared frozen fields (SHARED_FIELDS: the store's objects are frozen all the way down) reused
 * from earlier calls. Anything that is not plain data goes to JSON.stringify.
 */
export function objectJson(o: object): string {
  if (Array.isArray(o) || !isPlain(o)) return JSON.stringify(o);
  return fieldsJson(o as Record<string, unknown>, 0, true);
}

/**
 * The Dispatcher service as the leader serves it: the generated definition, except that an
 * Assignments response may be an `EncodedAssignments` (written as its bytes), and NodeStream
 * requests/answers and UpdateTaskStatus requests go through the hand-written codecs of
 * node-stream-wire.ts (the same values and bytes as the generated ones). Mount the dispatcher's
 * implementation with this definition (registerDispatcher and the manager runtime do).
 */
export const DISPATCHER_SERVICE = {
  ...DispatcherService,
  assignments: {
    ...DispatcherService.assignments,
    responseSerialize: (value: AssignmentsMessage | EncodedAssignments): Buffer =>
      value instanceof EncodedAssignments ? value.bytes : Buffer.from(AssignmentsMessage.encode(value).finish()),
  },
  updateTaskStatus: { ...DispatcherService.updateTaskStatus, requestDeserialize: decodeUpdateTaskStatusRequest },
  nodeStream: { ...DispatcherService.nodeStream, requestDeserialize: decodeNodeStreamRequest, responseSerialize: encodeNodeStreamResponse },
} as const;
