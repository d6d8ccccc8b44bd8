// The agent's hand-written NodeStream requests and answer reader against the generated code:
// the same bytes for every status batch and heartbeat the agent can send (including the shapes the
// hand-written path leaves to the generated encoder: ports, negative numbers, odd timestamps), and
// the same values for every answer the manager can send.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { taskStatusToProto } from '../../manager/dispatcher/wire.js';
import type { TaskState, TaskStatus } from '../../manager/store/types.js';
import { NodeStreamRequest, NodeStreamResponse } from '../../proto/gen/shoal/dispatcher.js';
import { decodeNodeStreamResponse, encodeHeartbeatRequest, encodeStatusRequest, isoMs, type StatusUpdate } from './node-stream-codec.js';

const STATES: readonly TaskState[] = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'];

const text = fc.oneof(fc.constant(''), fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));
const int32 = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const timestamp = fc.oneof(
  // What the agent writes: toISOString() of now-ish times, often within one second.
  fc.integer({ min: 1_700_000_000_000, max: 1_700_000_003_000 }).map((ms) => new Date(ms).toISOString()),
  fc.integer({ min: -8.64e15, max: 8.64e15 }).map((ms) => new Date(ms).toISOString()),
  fc.constantFrom('', 'not a date', '2026-11-26T12:00:00Z', '2026-11-26T12:00:00.5Z', '2026-11-26T12:00:00.123+01:00', '1969-12-31T23:59:59.999Z'),
);
const ports = fc.array(
  fc.record(
    {
      Name: fc.string({ maxLength: 8 }),
      Protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
      TargetPort: fc.integer({ min: 0, max: 65535 }),
      PublishedPort: fc.integer({ min: 0, max: 65535 }),
      PublishMode: fc.constantFrom('ingress' as const, 'host' as const),
    },
    { requiredKeys: ['TargetPort'] },
  ),
  { maxLength: 3 },
);
const status: fc.Arbitrary<TaskStatus> = fc.record(
  {
    Timestamp: timestamp,
    State: fc.constantFrom(...STATES),
    Message: text,
    Err: text,
    ContainerStatus: fc.record({ ContainerID: text, PID: int32, ExitCode: int32 }, { requiredKeys: [] }),
    PortStatus: fc.record({ Ports: ports }),
  },
  { requiredKeys: ['Timestamp', 'State', 'Message'] },
);
const update: fc.Arbitrary<StatusUpdate> = fc.oneof(
  fc.record({ taskId: text, status }),
  fc.record({ taskId: text }),
);
const requestId = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

function generatedStatus(id: number, sessionId: string, updates: readonly StatusUpdate[]): Buffer {
  const protoUpdates = updates.map((u) => ({ taskId: u.taskId, status: u.status === undefined ? undefined : taskStatusToProto(u.status) }));
  return Buffer.from(NodeStreamRequest.encode({ requestId: id, body: { $case: 'status', status: { sessionId, updates: protoUpdates } } }).finish());
}

describe('node-stream-codec', () => {
  it('writes a status batch as the generated encoder does', () => {
    fc.assert(
      fc.property(requestId, text, fc.array(update, { maxLength: 6 }), (id, sessionId, updates) => {
        expect(encodeStatusRequest(id, sessionId, updates).equals(generatedStatus(id, sessionId, updates))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('writes the statuses a task runner makes (one second of timestamps, running with a PID) as the generated encoder does', () => {
    const base = Date.UTC(2026, 10, 26, 12, 0, 0);
    const updates: StatusUpdate[] = [];
    for (let i = 0; i < 2100; i += 7) {
      updates.push({ taskId: `task-${i}`, status: { Timestamp: new Date(base + i).toISOString(), State: 'running', Message: 'started', ContainerStatus: { ContainerID: `task-${i}`, PID: 1000 + i } } });
    }
    expect(encodeStatusRequest(42, 'session-1', updates).equals(generatedStatus(42, 'session-1', updates))).toBe(true);
  });

  it('writes a heartbeat as the generated encoder does', () => {
    fc.assert(
      fc.property(requestId, text, (id, sessionId) => {
        const want = Buffer.from(NodeStreamRequest.encode({ requestId: id, body: { $case: 'heartbeat', heartbeat: { sessionId } } }).finish());
        expect(encodeHeartbeatRequest(id, sessionId).equals(want)).toBe(true);
      }),
    );
  });

  it('reads every answer as the generated decoder does', () => {
    const answer: fc.Arbitrary<NodeStreamResponse> = fc.record({
      requestId,
      body: fc.oneof(
        fc.constant(undefined),
        fc.record({ $case: fc.constant('heartbeat' as const), heartbeat: fc.record({ periodMs: fc.integer({ min: -(2 ** 40), max: 2 ** 40 }) }) }),
        fc.record({ $case: fc.constant('status' as const), status: fc.record({ refused: fc.array(fc.record({ taskId: text, reason: text }), { maxLength: 4 }) }) }),
      ),
    });
    fc.assert(
      fc.property(answer, (res) => {
        const bytes = Buffer.from(NodeStreamResponse.encode(res).finish());
        expect(decodeNodeStreamResponse(bytes)).toEqual(NodeStreamResponse.decode(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a truncated answer', () => {
    const bytes = Buffer.from(NodeStreamResponse.encode({ requestId: 7, body: { $case: 'status', status: { refused: [{ taskId: 'abc', reason: 'no' }] } } }).finish());
    expect(() => decodeNodeStreamResponse(bytes.subarray(0, bytes.length - 2))).toThrow(RangeError);
  });

  it('reads ISO timestamps as Date.parse does', () => {
    fc.assert(
      fc.property(timestamp, (s) => {
        expect(Object.is(isoMs(s), Date.parse(s))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
