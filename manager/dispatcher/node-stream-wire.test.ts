// node-stream-wire.ts: the leader's hand-written NodeStream/UpdateTaskStatus codecs read the values
// the generated decoder reads (for anything a worker encodes, unknown fields included) and write
// the bytes the generated encoder writes; a truncated message is refused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { NodeStreamRequest, NodeStreamResponse, UpdateTaskStatusRequest } from '../../proto/gen/shoal/dispatcher.js';
import { TaskState, type TaskStatus as ProtoTaskStatus } from '../../proto/gen/shoal/types.js';
import { decodeNodeStreamRequest, decodeUpdateTaskStatusRequest, encodeNodeStreamResponse } from './node-stream-wire.js';

const text = fc.oneof(fc.constant(''), fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));
const int32 = fc.oneof(fc.constant(0), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const uint32 = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const safeLong = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 }), fc.maxSafeInteger(), fc.maxSafeNat());

const port = fc.record({ name: text, protocol: text, targetPort: uint32, publishedPort: uint32, publishMode: text });
const taskStatus: fc.Arbitrary<ProtoTaskStatus> = fc.record({
  timestampUnixMs: safeLong,
  state: fc.integer({ min: 0, max: 20 }),
  message: text,
  err: text,
  containerId: text,
  pid: int32,
  exitCode: int32,
  portStatus: fc.option(fc.record({ ports: fc.array(port, { maxLength: 3 }) }), { nil: undefined }),
});
const statusRequest = fc.record({
  sessionId: text,
  updates: fc.array(fc.record({ taskId: text, status: fc.option(taskStatus, { nil: undefined }) }), { maxLength: 6 }),
});
const request: fc.Arbitrary<NodeStreamRequest> = fc.record({
  requestId: fc.oneof(fc.constant(0), fc.maxSafeNat()),
  body: fc.oneof(
    fc.constant(undefined),
    fc.record({ sessionId: text }).map((heartbeat) => ({ $case: 'heartbeat' as const, heartbeat })),
    statusRequest.map((status) => ({ $case: 'status' as const, status })),
  ),
});

/** Appends a field the reader does not know (a newer worker's): varint, 64-bit, bytes and 32-bit wire types. */
function withUnknown(bytes: Uint8Array, kind: number): Buffer {
  const extra = [Buffer.from([0xf8, 0x07, 0x96, 0x01]), Buffer.from([0xf9, 0x07, 1, 2, 3, 4, 5, 6, 7, 8]), Buffer.from([0xfa, 0x07, 3, 0x61, 0x62, 0x63]), Buffer.from([0xfd, 0x07, 1, 2, 3, 4])][kind % 4]!;
  return Buffer.concat([bytes, extra]);
}

describe('decodeNodeStreamRequest / decodeUpdateTaskStatusRequest', () => {
  it('read what the generated decoder reads, from anything the generated encoder writes', () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.boolean(), (req, kind, unknown) => {
        const raw = NodeStreamRequest.encode(req).finish();
        const bytes = unknown ? withUnknown(raw, kind) : Buffer.from(raw);
        expect(decodeNodeStreamRequest(bytes)).toEqual(NodeStreamRequest.decode(bytes));
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(statusRequest, (req) => {
        const bytes = Buffer.from(UpdateTaskStatusRequest.encode(req).finish());
        expect(decodeUpdateTaskStatusRequest(bytes)).toEqual(UpdateTaskStatusRequest.decode(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it('reads negative 32-bit numbers (10-byte varints) and a sliced buffer as the generated decoder does', () => {
    const req: NodeStreamRequest = {
      requestId: 7,
      body: { $case: 'status', status: { sessionId: 's', updates: [{ taskId: 't', status: { timestampUnixMs: 1_764_000_000_123, state: TaskState.TASK_STATE_RUNNING, message: 'é', err: '', containerId: 'c', pid: -1, exitCode: -(2 ** 31), portStatus: undefined } }] } },
    };
    const raw = Buffer.from(NodeStreamRequest.encode(req).finish());
    // grpc-js hands the message as a slice of a larger buffer.
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, raw.length]), raw]).subarray(5);
    expect(decodeNodeStreamRequest(framed)).toEqual(req);
  });

  it('refuses a truncated message', () => {
    const raw = Buffer.from(NodeStreamRequest.encode({ requestId: 1, body: { $case: 'heartbeat', heartbeat: { sessionId: 'abcdef' } } }).finish());
    expect(() => decodeNodeStreamRequest(raw.subarray(0, raw.length - 2))).toThrow(RangeError);
  });
});

describe('encodeNodeStreamResponse', () => {
  it('writes the bytes NodeStreamResponse.encode writes', () => {
    const response: fc.Arbitrary<NodeStreamResponse> = fc.record({
      requestId: fc.oneof(fc.constant(0), fc.maxSafeNat()),
      body: fc.oneof(
        fc.constant(undefined),
        fc.oneof(fc.constant(0), fc.maxSafeNat(), fc.constant(-3)).map((periodMs) => ({ $case: 'heartbeat' as const, heartbeat: { periodMs } })),
        fc.array(fc.record({ taskId: text, reason: text }), { maxLength: 4 }).map((refused) => ({ $case: 'status' as const, status: { refused } })),
      ),
    });
    fc.assert(
      fc.property(response, (res) => {
        expect(encodeNodeStreamResponse(res).equals(Buffer.from(NodeStreamResponse.encode(res).finish()))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});
