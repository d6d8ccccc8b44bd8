// NodeStream (and UpdateTaskStatus) messages as the leader reads and answers them, by hand: every
// status report and heartbeat of every worker comes through here. They give the same values as
// the generated decoder and the same bytes as the generated encoder (node-stream-wire.test.ts
// checks both); the generated code kept a recursion counter on its reader per nested message,
// built a default object per message, and went through strings for 64-bit numbers.
import {
  NodeStreamResponse,
  type NodeStreamRequest,
  type TaskStatusUpdate,
  type UpdateTaskStatusRequest,
  type UpdateTaskStatusResponse,
} from '../../proto/gen/shoal/dispatcher.js';
import type { PortConfig as ProtoPortConfig, TaskStatus as ProtoTaskStatus } from '../../proto/gen/shoal/types.js';
import { ProtoReader as Reader, varintLength, writeVarint } from '../../proto/wire.js';

function readPortConfig(r: Reader): ProtoPortConfig {
  const p: ProtoPortConfig = { name: '', protocol: '', targetPort: 0, publishedPort: 0, publishMode: '' };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) p.name = r.string();
    else if (tag === 18) p.protocol = r.string();
    else if (tag === 24) p.targetPort = r.uint32();
    else if (tag === 32) p.publishedPort = r.uint32();
    else if (tag === 42) p.publishMode = r.string();
    else r.skip(tag);
  }
  return p;
}

function readPortStatus(r: Reader): { ports: ProtoPortConfig[] } {
  const ports: ProtoPortConfig[] = [];
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) ports.push(r.nested(r.delimited(), readPortConfig));
    else r.skip(tag);
  }
  return { ports };
}

function readTaskStatus(r: Reader): ProtoTaskStatus {
  const s: ProtoTaskStatus = { timestampUnixMs: 0, state: 0, message: '', err: '', containerId: '', pid: 0, exitCode: 0, portStatus: undefined };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 8) s.timestampUnixMs = r.long(true);
    else if (tag === 16) s.state = r.int32();
    else if (tag === 26) s.message = r.string();
    else if (tag === 34) s.err = r.string();
    else if (tag === 42) s.containerId = r.string();
    else if (tag === 48) s.pid = r.int32();
    else if (tag === 56) s.exitCode = r.int32();
    else if (tag === 66) {
      // PortStatus{repeated PortConfig ports = 1}; a second one replaces the first (as generated).
      s.portStatus = r.nested(r.delimited(), readPortStatus);
    } else r.skip(tag);
  }
  return s;
}

function readUpdate(r: Reader): TaskStatusUpdate {
  const u: TaskStatusUpdate = { taskId: '', status: undefined };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) u.taskId = r.string();
    else if (tag === 18) u.status = r.nested(r.delimited(), readTaskStatus);
    else r.skip(tag);
  }
  return u;
}

function readStatusRequest(r: Reader): UpdateTaskStatusRequest {
  const req: UpdateTaskStatusRequest = { sessionId: '', updates: [] };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) req.sessionId = r.string();
    else if (tag === 18) req.updates.push(r.nested(r.delimited(), readUpdate));
    else r.skip(tag);
  }
  return req;
}

function readSessionId(r: Reader): { sessionId: string } {
  const req = { sessionId: '' };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) req.sessionId = r.string();
    else r.skip(tag);
  }
  return req;
}

/** NodeStreamRequest from its bytes: the same value NodeStreamRequest.decode gives. */
export function decodeNodeStreamRequest(buf: Buffer): NodeStreamRequest {
  const r = new Reader(buf);
  const out: NodeStreamRequest = { requestId: 0, body: undefined };
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 8) out.requestId = r.long(false);
    else if (tag === 18) out.body = { $case: 'heartbeat', heartbeat: r.nested(r.delimited(), readSessionId) };
    else if (tag === 26) out.body = { $case: 'status', status: r.nested(r.delimited(), readStatusRequest) };
    else r.skip(tag);
  }
  return out;
}

/** UpdateTaskStatusRequest from its bytes (the unary call): the same value its generated decode gives. */
export function decodeUpdateTaskStatusRequest(buf: Buffer): UpdateTaskStatusRequest {
  return readStatusRequest(new Reader(buf));
}

const isSmallUint = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/**
 * NodeStreamResponse as bytes: the same bytes NodeStreamResponse.encode gives. Only the common
 * shapes are built by hand (non-negative numbers); anything else goes to the generated encoder.
 */
export function encodeNodeStreamResponse(res: NodeStreamResponse): Buffer {
  const body = res.body;
  if (!isSmallUint(res.requestId) || (body?.$case === 'heartbeat' && !isSmallUint(body.heartbeat.periodMs))) {
    return Buffer.from(NodeStreamResponse.encode(res).finish());
  }
  let size = res.requestId !== 0 ? 1 + varintLength(res.requestId) : 0;
  let inner = 0;
  let refused: UpdateTaskStatusResponse['refused'] = [];
  if (body?.$case === 'heartbeat') {
    inner = body.heartbeat.periodMs !== 0 ? 1 + varintLength(body.heartbeat.periodMs) : 0;
  } else if (body?.$case === 'status') {
    refused = body.status.refused;
    for (const x of refused) inner += 1 + varintLength(refusedLength(x)) + refusedLength(x);
  }
  if (body !== undefined) size += 1 + varintLength(inner) + inner;
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  if (res.requestId !== 0) {
    buf[off++] = 8;
    off = writeVarint(buf, off, res.requestId);
  }
  if (body?.$case === 'heartbeat') {
    buf[off++] = 18;
    off = writeVarint(buf, off, inner);
    if (body.heartbeat.periodMs !== 0) {
      buf[off++] = 8;
      off = writeVarint(buf, off, body.heartbeat.periodMs);
    }
  } else if (body?.$case === 'status') {
    buf[off++] = 26;
    off = writeVarint(buf, off, inner);
    for (const x of refused) {
      buf[off++] = 10;
      off = writeVarint(buf, off, refusedLength(x));
      off = writeString(buf, off, 10, x.taskId);
      off = writeString(buf, off, 18, x.reason);
    }
  }
  if (off !== size) throw new Error(`node stream response: wrote ${off} bytes of ${size}`);
  return buf;
}

function stringFieldLength(s: string): number {
  if (s === '') return 0;
  const n = Buffer.byteLength(s, 'utf8');
  return 1 + varintLength(n) + n;
}

function refusedLength(x: { taskId: string; reason: string }): number {
  return stringFieldLength(x.taskId) + stringFieldLength(x.reason);
}

function writeString(buf: Buffer, off: number, tag: number, s: string): number {
  if (s === '') return off;
  const n = Buffer.byteLength(s, 'utf8');
  buf[off++] = tag;
  off = writeVarint(buf, off, n);
  return off + buf.write(s, off, n, 'utf8');
}
