// The log stream's wire format: Docker's 8-byte frame header, a decoder that survives any chunking,
// the line payload dockerd writes (timestamp, details), the query it accepts, and the docker CLI's
// printing of it (name.slot.task@node    | line).
import { describe, expect, it } from 'vitest';

import { LogSubscriptionOptions_Stream, type LogMessage } from '../../../proto/gen/shoal/logs.js';
import { contextLabel, formatLine, sinceParam, type ContextResolver, type LogsOptions } from '../../commands/service-logs.js';
import { logLine, parseLogQuery, parseSince, pickRunningTask } from './logs.js';
import { encodeFrame, formatDetails, FrameDecoder, parseDetails, STDERR, STDOUT, StreamFramingError, SYSTEM_ERR, timestampNano } from './stdcopy.js';
import type { Task } from '../../../manager/store/types.js';

describe('stdcopy framing', () => {
  it('writes the header dockerd writes: stream, three zeros, big-endian length', () => {
    // The capture in dockerd-20.10-captures.md: one stdout frame of 15 bytes.
    const f = encodeFrame(STDOUT, 'hello from web\n');
    expect(f.subarray(0, 8)).toEqual(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0x0f]));
    expect(f.subarray(8).toString()).toBe('hello from web\n');
    expect(encodeFrame(STDERR, Buffer.alloc(300))[0]).toBe(2);
    expect(encodeFrame(STDERR, Buffer.alloc(300)).readUInt32BE(4)).toBe(300);
  });

  it('decodes frames whatever the chunk boundaries, byte by byte included', () => {
    const stream = Buffer.concat([encodeFrame(STDERR, 'to-stderr\n'), encodeFrame(STDOUT, 'hello from web\n'), encodeFrame(SYSTEM_ERR, 'boom'), encodeFrame(STDOUT, '')]);
    for (const size of [1, 3, 8, 9, stream.length]) {
      const d = new FrameDecoder();
      const frames = [];
      for (let at = 0; at < stream.length; at += size) frames.push(...d.push(stream.subarray(at, at + size)));
      expect(frames.map((f) => [f.stream, f.payload.toString()])).toEqual([
        [STDERR, 'to-stderr\n'],
        [STDOUT, 'hello from web\n'],
        [SYSTEM_ERR, 'boom'],
        [STDOUT, ''],
      ]);
      expect(d.leftover).toBe(0);
    }
  });

  it('keeps an unfinished frame as leftover and refuses a corrupt header', () => {
    const d = new FrameDecoder();
    expect(d.push(encodeFrame(STDOUT, 'abcdef').subarray(0, 10))).toEqual([]);
    expect(d.leftover).toBe(10);
    expect(() => new FrameDecoder().push(Buffer.from([9, 0, 0, 0, 0, 0, 0, 1, 0x41]))).toThrow(StreamFramingError);
    expect(() => new FrameDecoder().push(Buffer.from([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]))).toThrow(/longer than/);
  });
});

describe('log line payload', () => {
  const msg: LogMessage = {
    context: { nodeId: 'node1', serviceId: 'svc1', taskId: 'task1' },
    timestampUnixMs: Date.parse('2026-11-25T17:51:42.823Z'),
    stream: LogSubscriptionOptions_Stream.STREAM_STDOUT,
    data: Buffer.from('hello from web\n'),
    attrs: {},
  };

  it('is the bare line, then with RFC3339Nano timestamp and sorted, escaped details as dockerd writes them', () => {
    expect(logLine(msg, { timestamps: false, details: false }).toString()).toBe('hello from web\n');
    expect(logLine(msg, { timestamps: true, details: true }).toString()).toBe(
      '2026-11-25T17:51:42.823000000Z com.docker.swarm.node.id=node1,com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=task1 hello from web\n',
    );
    expect(timestampNano(0)).toBe('1970-01-01T00:00:00.000000000Z');
    expect(formatDetails({ b: 'x y', a: 'k=v,w' })).toBe('a=k%3Dv%2Cw,b=x+y');
    expect(parseDetails('a=k%3Dv%2Cw,b=x+y')).toEqual({ a: 'k=v,w', b: 'x y' });
  });

  it('reads the query as dockerd does: tail all|N, since as Unix seconds or RFC 3339, boolean flags', () => {
    const q = parseLogQuery(new URLSearchParams('details=1&stderr=1&stdout=1&tail=all'));
    expect(q).toEqual({ stdout: true, stderr: true, follow: false, tail: -1, sinceMs: 0, timestamps: false, details: true });
    expect(parseLogQuery(new URLSearchParams('stdout=1&tail=10&follow=1&timestamps=1')).tail).toBe(10);
    expect(parseLogQuery(new URLSearchParams('stdout=1&tail=0')).tail).toBe(0);
    expect(() => parseLogQuery(new URLSearchParams('tail=ten'))).toThrow(/invalid value for tail/);
    expect(parseSince('1764093102.823000000')).toBe(1764093102823);
    expect(parseSince('2026-11-25T17:51:42.823Z')).toBe(Date.parse('2026-11-25T17:51:42.823Z'));
    expect(() => parseSince('yesterday')).toThrow(/since/);
  });
});

describe('the docker CLI printing (shoal service logs)', () => {
  const resolver: ContextResolver = {
    nodeName: async (id) => ({ node1: 'host-a' })[id] ?? id,
    serviceName: async (id) => ({ svc1: 'web' })[id] ?? id,
    task: async (id) => ({ ID: `${id}xxxxxxxxxxxxxxxxxxxx`, Slot: 3, ServiceID: 'svc1' }),
  };
  const opts: LogsOptions = { follow: false, tail: 'all', timestamps: false, raw: false, noTrunc: false, noTaskIds: false, noResolve: false, details: false };
  const details = 'com.docker.swarm.node.id=node1,com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=task1';

  it('prefixes name.slot.task12@host, padded to the replica count, then four spaces and a bar', async () => {
    expect(await formatLine(resolver, Buffer.from(`${details} hello\n`), 1, opts, new Map())).toBe('web.3.task1xxxxxxx@host-a    | hello\n');
    expect(await formatLine(resolver, Buffer.from(`${details} hello\n`), 2, opts, new Map())).toBe('web.3.task1xxxxxxx@host-a     | hello\n');
    expect(await formatLine(resolver, Buffer.from(`2026-11-25T17:51:42.823000000Z ${details} hi\n`), 1, { ...opts, timestamps: true }, new Map())).toBe(
      '2026-11-25T17:51:42.823000000Z web.3.task1xxxxxxx@host-a    | hi\n',
    );
    expect(await contextLabel(resolver, parseDetails(details), 1, { noTrunc: false, noTaskIds: true })).toBe('web.3@host-a');
    await expect(contextLabel(resolver, { 'com.docker.swarm.node.id': 'n' }, 1, opts)).rejects.toThrow('missing service id in details');
  });

  it('turns --since durations into Unix seconds before now', () => {
    const now = Date.parse('2026-11-25T18:00:00Z');
    expect(sinceParam('10m', now)).toBe(((now - 600_000) / 1000).toFixed(9));
    expect(sinceParam('1h30m', now)).toBe(((now - 5_400_000) / 1000).toFixed(9));
    expect(sinceParam('1764093102', now)).toBe('1764093102');
    expect(sinceParam('2026-11-25T17:00:00Z', now)).toBe((Date.parse('2026-11-25T17:00:00Z') / 1000).toFixed(9));
  });
});

describe('exec picks a running task of a service', () => {
  const task = (id: string, slot: number, node: string, state: string): Task =>
    ({ ID: id, Slot: slot, NodeID: node, DesiredState: 'running', Status: { State: state } }) as unknown as Task;

  it('prefers one on this node, else the lowest slot; never one that is not running', () => {
    const tasks = [task('a', 2, 'n2', 'running'), task('b', 1, 'n3', 'running'), task('c', 3, 'n1', 'starting')];
    expect(pickRunningTask(tasks, 'n1')?.ID).toBe('b');
    expect(pickRunningTask(tasks, 'n2')?.ID).toBe('a');
    expect(pickRunningTask([task('c', 3, 'n1', 'failed')], 'n1')).toBeUndefined();
  });
});
