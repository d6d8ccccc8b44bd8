// wire.ts: the fast ISO timestamp and the status conversion the leader runs per status item.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { TaskState as P } from '../../proto/gen/shoal/types.js';
import { isoTimestamp, taskStatusFromProto, taskStatusToProto } from './wire.js';

function iso(ms: number): string {
  try {
    return new Date(ms).toISOString();
  } catch (err) {
    return `throws ${(err as Error).name}`;
  }
}

function fast(ms: number): string {
  try {
    return isoTimestamp(ms);
  } catch (err) {
    return `throws ${(err as Error).name}`;
  }
}

describe('isoTimestamp', () => {
  it('is exactly Date#toISOString, also across seconds, for fractions, and out of range', () => {
    for (const ms of [0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1.5, 59_999, 60_000, 1_764_140_000_999.9, 253_402_300_799_999, 253_402_300_800_000, -1, -1000.5, 8.64e15, 8.64e15 + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(fast(ms)).toBe(iso(ms));
    }
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 253_402_300_799_999 }), fc.double({ min: -1e13, max: 3e14, noNaN: true })), (ms) => fast(ms) === iso(ms)),
      { numRuns: 2000 },
    );
  });
});

describe('taskStatusFromProto', () => {
  it('round-trips a status with container and port details, and leaves absent fields out', () => {
    const full = {
      Timestamp: '2026-11-26T07:00:00.123Z',
      State: 'running' as const,
      Message: 'started',
      Err: 'none',
      ContainerStatus: { ContainerID: 'c1', PID: 42, ExitCode: 0 },
      PortStatus: { Ports: [{ Protocol: 'udp' as const, TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' as const }] },
    };
    expect(JSON.stringify(taskStatusFromProto(taskStatusToProto(full)))).toBe(JSON.stringify(full));
    const bare = taskStatusFromProto({ timestampUnixMs: 1000, state: P.TASK_STATE_PREPARING, message: 'preparing', err: '', containerId: '', pid: 0, exitCode: 0 });
    expect(bare).toEqual({ Timestamp: '1970-01-01T00:00:01.000Z', State: 'preparing', Message: 'preparing' });
    expect(Object.keys(bare!)).toEqual(['Timestamp', 'State', 'Message']);
    expect(taskStatusFromProto({ timestampUnixMs: 0, state: 12345 as P, message: '', err: '', containerId: '', pid: 0, exitCode: 0 })).toBeNull();
  });
});
