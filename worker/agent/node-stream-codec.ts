// The agent's side of NodeStream by hand: heartbeat and status requests written straight from the
// agent's own TaskStatus objects into one buffer of the exact size, and the manager's answers
// read without the generated decoder. Same bytes as `NodeStreamRequest.encode` of what
// `taskStatusToProto` gives, same values as `NodeStreamResponse.decode` (node-stream-codec.test.ts
// checks both with fast-check). What it saves per status batch and heartbeat: the proto status
// objects, `Date.parse` of every status's ISO timestamp, the generated writer's forks and joins and
// the copy of its result; per answer, the generated reader's recursion counter and default objects.
// The manager's side of the same messages is manager/dispatcher/node-stream-wire.ts.
import { NodeStreamRequest, type NodeStreamResponse } from '../../proto/gen/shoal/dispatcher.js';
import type { TaskStatus } from '../../manager/store/types.js';
import { taskStateToProto, taskStatusToProto } from '../../manager/dispatcher/wire.js';
import { ProtoReader as Reader, varintLength, writeVarint } from '../../proto/wire.js';

/** One task's status as the agent reports it (a status-less update is legal on the wire). */
export interface StatusUpdate {
  readonly taskId: string;
  readonly status?: TaskStatus;
}

const INT32_MAX = 0x7fffffff;

/** A number the hand-written path writes as a plain varint (the generated int32/int64 agree). */
function plainInt32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= INT32_MAX;
}

/**
 * Milliseconds since the epoch of an ISO timestamp, as `Date.parse` gives. The agent's timestamps
 * are `toISOString()` strings (YYYY-MM-DDTHH:mm:ss.sssZ) and come in runs within one second: the
 * second's value is kept and only the milliseconds are read; anything else goes to `Date.parse`.
 */
let isoSecondPrefix = '';
let isoSecondMs = 0;
export function isoMs(s: string): number {
  if (s.length === 24 && s.charCodeAt(19) === 46 /* . */ && s.charCodeAt(23) === 90 /* Z */) {
    const a = s.charCodeAt(20) - 48;
    const b = s.charCodeAt(21) - 48;
    const c = s.charCodeAt(22) - 48;
    if (a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9) {
      const millis = a * 100 + b * 10 + c;
      if (isoSecondPrefix !== '' && s.startsWith(isoSecondPrefix)) return isoSecondMs + millis;
      const parsed = Date.parse(s);
      if (Number.isFinite(parsed)) {
        isoSecondPrefix = s.slice(0, 19);
        isoSecondMs = parsed - millis;
      }
      return parsed;
    }
  }
  return Date.parse(s);
}

/** A status the hand-written path can write: no ports, no negative or odd numbers. */
function plainStatus(s: TaskStatus): boolean {
  if (s.PortStatus?.Ports !== undefined && s.PortStatus.Ports.length > 0) return false;
  const c = s.ContainerStatus;
  if (c === undefined) return true;
  return (c.PID === undefined || plainInt32(c.PID)) && (c.ExitCode === undefined || plainInt32(c.ExitCode));
}

function stringField(s: string): number {
  if (s === '') return 0;
  const n = Buffer.byteLength(s, 'utf8');
  return 1 + varintLength(n) + n;
}

function writeString(buf: Buffer, off: number, tag: number, s: string): number {
  if (s === '') return off;
  const n = Buffer.byteLength(s, 'utf8');
  buf[off++] = tag;
  off = writeVarint(buf, off, n);
  return off + buf.write(s, off, n, 'utf8');
}

function varintField(n: number): number {
  return n === 0 ? 0 : 1 + varintLength(n);
}

/** The fields of one status written by hand (see `taskStatusToProto` for their defaults). */
interface StatusFields {
  ms: number;
  state: number;
  message: string;
  err: string;
  containerId: string;
  pid: number;
  exitCode: number;
  /** The status message's length. */
  len: number;
}

function statusFields(s: TaskStatus): StatusFields | null {
  const ms = isoMs(s.Timestamp);
  const timestamp = Number.isFinite(ms) ? ms : 0;
  if (!(Number.isSafeInteger(timestamp) && timestamp >= 0)) return null;
  const c = s.ContainerStatus;
  const f: StatusFields = {
    ms: timestamp,
    state: taskStateToProto(s.State),
    message: s.Message,
    err: s.Err ?? '',
    containerId: c?.ContainerID ?? '',
    pid: c?.PID ?? 0,
    exitCode: c?.ExitCode ?? 0,
    len: 0,
  };
  f.len =
    varintField(f.ms) + varintField(f.state) + stringField(f.message) + stringField(f.err) + stringField(f.containerId) + varintField(f.pid) + varintField(f.exitCode);
  return f;
}

function writeStatus(buf: Buffer, off: number, f: StatusFields): number {
  if (f.ms !== 0) {
    buf[off++] = 8;
    off = writeVarint(buf, off, f.ms);
  }
  if (f.state !== 0) {
    buf[off++] = 16;
    off = writeVarint(buf, off, f.state);
  }
  off = writeString(buf, off, 26, f.message);
  off = writeString(buf, off, 34, f.err);
  off = writeString(buf, off, 42, f.containerId);
  if (f.pid !== 0) {
    buf[off++] = 48;
    off = writeVarint(buf, off, f.pid);
  }
  if (f.exitCode !== 0) {
    buf[off++] = 56;
    off = writeVarint(buf, off, f.exitCode);
  }
  return off;
}

/** The generated encoder's bytes for what the hand-written path does not cover. */
function generated(requestId: number, sessionId: string, updates: readonly StatusUpdate[]): Buffer {
  const protoUpdates = updates.map((u) => (u.status === undefined ? { taskId: u.taskId, status: undefined } : { taskId: u.taskId, status: taskStatusToProto(u.status) }));
  return Buffer.from(NodeStreamRequest.encode({ requestId, body: { $case: 'status', status: { sessionId, updates: protoUpdates } } }).finish());
}

/**
 * A NodeStreamRequest of its exact size with `request_id` and the body field's tag and length
 * (`inner` bytes) written: the body goes in its last `inner` bytes.
 */
function envelope(requestId: number, bodyTag: number, inner: number): Buffer {
  const buf = Buffer.allocUnsafe(varintField(requestId) + 1 + varintLength(inner) + inner);
  let off = 0;
  if (requestId !== 0) {
    buf[off++] = 8;
    off = writeVarint(buf, off, requestId);
  }
  buf[off++] = bodyTag;
  writeVarint(buf, off, inner);
  return buf;
}

/** NodeStreamRequest{request_id, status: UpdateTaskStatusRequest{session_id, updates}} as bytes. */
export function encodeStatusRequest(requestId: number, sessionId: string, updates: readonly StatusUpdate[]): Buffer {
  if (!Number.isSafeInteger(requestId) || requestId < 0) return generated(requestId, sessionId, updates);
  const fields: (StatusFields | null)[] = new Array<StatusFields | null>(updates.length);
  const lens: number[] = new Array<number>(updates.length);
  let inner = stringField(sessionId);
  for (let i = 0; i < updates.length; i++) {
    const u = updates[i]!;
    let f: StatusFields | null = null;
    if (u.status !== undefined) {
      if (!plainStatus(u.status)) return generated(requestId, sessionId, updates);
      f = statusFields(u.status);
      if (f === null) return generated(requestId, sessionId, updates);
    }
    fields[i] = f;
    const len = stringField(u.taskId) + (f === null ? 0 : 1 + varintLength(f.len) + f.len);
    lens[i] = len;
    inner += 1 + varintLength(len) + len;
  }
  const buf = envelope(requestId, 26, inner);
  let off = buf.length - inner;
  off = writeString(buf, off, 10, sessionId);
  for (let i = 0; i < updates.length; i++) {
    buf[off++] = 18;
    off = writeVarint(buf, off, lens[i]!);
    off = writeString(buf, off, 10, updates[i]!.taskId);
    const f = fields[i];
    if (f !== null && f !== undefined) {
      buf[off++] = 18;
      off = writeVarint(buf, off, f.len);
      off = writeStatus(buf, off, f);
    }
  }
  if (off !== buf.length) throw new Error(`node stream request: wrote ${off} bytes of ${buf.length}`);
  return buf;
}

/** NodeStreamRequest{request_id, heartbeat: HeartbeatRequest{session_id}} as bytes. */
export function encodeHeartbeatRequest(requestId: number, sessionId: string): Buffer {
  if (!Number.isSafeInteger(requestId) || requestId < 0) {
    return Buffer.from(NodeStreamRequest.encode({ requestId, body: { $case: 'heartbeat', heartbeat: { sessionId } } }).finish());
  }
  const inner = stringField(sessionId);
  const buf = envelope(requestId, 18, inner);
  const off = writeString(buf, buf.length - inner, 10, sessionId);
  if (off !== buf.length) throw new Error(`node stream heartbeat: wrote ${off} bytes of ${buf.length}`);
  return buf;
}

// ------------------------------------------------------------------------------ answers

function readHeartbeat(r: Reader): { periodMs: number } {
  const out = { periodMs: 0 };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 8) out.periodMs = r.long(true);
    else r.skip(tag);
  }
  return out;
}

function readRefused(r: Reader): { taskId: string; reason: string } {
  const out = { taskId: '', reason: '' };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) out.taskId = r.string();
    else if (tag === 18) out.reason = r.string();
    else r.skip(tag);
  }
  return out;
}

function readStatusAnswer(r: Reader): { refused: { taskId: string; reason: string }[] } {
  const out: { refused: { taskId: string; reason: string }[] } = { refused: [] };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) out.refused.push(r.nested(r.delimited(), readRefused));
    else r.skip(tag);
  }
  return out;
}

/** NodeStreamResponse from its bytes: the same value `NodeStreamResponse.decode` gives. */
export function decodeNodeStreamResponse(buf: Buffer): NodeStreamResponse {
  const r = new Reader(buf);
  const out: NodeStreamResponse = { requestId: 0, body: undefined };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 8) out.requestId = r.long(false);
    else if (tag === 18) out.body = { $case: 'heartbeat', heartbeat: r.nested(r.delimited(), readHeartbeat) };
    else if (tag === 26) out.body = { $case: 'status', status: r.nested(r.delimited(), readStatusAnswer) };
    else r.skip(tag);
  }
  return out;
}
