// NodeChannel against small gRPC servers on loopback that play a manager's Dispatcher: one that
// serves NodeStream (answering out of order, or failing the stream), and one of an older build
// without NodeStream (UNIMPLEMENTED), where the channel must fall back to the unary calls. The
// agent over the real dispatcher's NodeStream is covered by agent.test.ts and failover.test.ts.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';

import {
  DispatcherClient,
  DispatcherService,
  type DispatcherServer,
  type NodeStreamRequest,
  type NodeStreamResponse,
} from '../../proto/gen/shoal/dispatcher.js';
import { NodeChannel, NodeChannelError } from './node-channel.js';

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const unimplemented = (): never => {
  throw new Error('not used by these tests');
};

/** A Dispatcher server on 127.0.0.1:0 with the given methods (the rest answer UNIMPLEMENTED). */
async function serve(impl: Partial<DispatcherServer>): Promise<DispatcherClient> {
  const server = new grpc.Server();
  server.addService(DispatcherService, impl as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new DispatcherClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => {
    client.close();
    server.forceShutdown();
  });
  return client;
}

type Duplex = grpc.ServerDuplexStream<NodeStreamRequest, NodeStreamResponse>;

describe('NodeChannel', () => {
  it('matches answers to requests by request_id, whatever order they come in', async () => {
    const seen: string[] = [];
    const client = await serve({
      session: unimplemented,
      nodeStream: (call: Duplex) => {
        const held: NodeStreamRequest[] = [];
        call.on('data', (req: NodeStreamRequest) => {
          seen.push(req.body?.$case ?? 'none');
          held.push(req);
          if (held.length < 3) return;
          // Answer the last first.
          for (const r of held.reverse()) {
            if (r.body?.$case === 'heartbeat') call.write({ requestId: r.requestId, body: { $case: 'heartbeat', heartbeat: { periodMs: 1234 } } });
            else if (r.body?.$case === 'status') {
              call.write({ requestId: r.requestId, body: { $case: 'status', status: { refused: r.body.status.updates.map((u) => ({ taskId: u.taskId, reason: `seen ${u.taskId}` })) } } });
            }
          }
        });
      },
    });
    const ended: unknown[] = [];
    const ch = new NodeChannel(client, 'sess-1', 5000, (err) => ended.push(err));
    cleanups.push(() => ch.close());
    const [a, b, c] = await Promise.all([ch.updateTaskStatus([{ taskId: 't1' }]), ch.heartbeat(), ch.updateTaskStatus([{ taskId: 't2' }, { taskId: 't3' }])]);
    expect(a.refused.map((r) => r.taskId)).toEqual(['t1']);
    expect(b.periodMs).toBe(1234);
    expect(c.refused.map((r) => r.reason)).toEqual(['seen t2', 'seen t3']);
    expect(seen).toEqual(['status', 'heartbeat', 'status']);
    expect(ch.streaming).toBe(true);
    expect(ended).toEqual([]);
  });

  it('falls back to the unary calls when the manager has no NodeStream (an older build)', async () => {
    const unary: string[] = [];
    const client = await serve({
      session: unimplemented,
      heartbeat: (call, cb) => {
        unary.push(`heartbeat ${call.request.sessionId}`);
        cb(null, { periodMs: 777 });
      },
      updateTaskStatus: (call, cb) => {
        unary.push(`status ${call.request.updates.map((u) => u.taskId).join(',')}`);
        cb(null, { refused: [] });
      },
    });
    const ended: unknown[] = [];
    const ch = new NodeChannel(client, 'sess-2', 5000, (err) => ended.push(err));
    cleanups.push(() => ch.close());
    // The first request goes out on the stream before the manager's UNIMPLEMENTED: it is resent as a unary call.
    expect((await ch.heartbeat()).periodMs).toBe(777);
    expect(ch.streaming).toBe(false);
    expect((await ch.updateTaskStatus([{ taskId: 't9' }])).refused).toEqual([]);
    expect(unary).toEqual(['heartbeat sess-2', 'status t9']);
    expect(ended).toEqual([]);
  });

  it('a stream the manager fails rejects the waiting requests and ends the session with its code', async () => {
    const client = await serve({
      session: unimplemented,
      nodeStream: (call: Duplex) => {
        call.on('data', () => call.emit('error', Object.assign(new Error('session gone'), { code: grpc.status.NOT_FOUND, details: 'session gone' })));
      },
    });
    const ended: (grpc.ServiceError | NodeChannelError)[] = [];
    const ch = new NodeChannel(client, 'sess-3', 5000, (err) => ended.push(err));
    cleanups.push(() => ch.close());
    await expect(ch.updateTaskStatus([{ taskId: 't1' }])).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    expect(ended.map((e) => e.code)).toEqual([grpc.status.NOT_FOUND]);
    // Nothing more goes out on an ended channel.
    await expect(ch.heartbeat()).rejects.toMatchObject({ code: grpc.status.CANCELLED });
  });

  it('a request without an answer times out alone; the stream and later requests carry on', async () => {
    let calls = 0;
    const client = await serve({
      session: unimplemented,
      nodeStream: (call: Duplex) => {
        call.on('data', (req: NodeStreamRequest) => {
          calls++;
          if (calls === 1) return; // never answered
          call.write({ requestId: req.requestId, body: { $case: 'heartbeat', heartbeat: { periodMs: 5 } } });
        });
      },
    });
    const ended: unknown[] = [];
    const ch = new NodeChannel(client, 'sess-4', 200, (err) => ended.push(err));
    cleanups.push(() => ch.close());
    await expect(ch.heartbeat()).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect((await ch.heartbeat()).periodMs).toBe(5);
    expect(ended).toEqual([]);
  });

  it('with useStream false every request is a unary call', async () => {
    let streams = 0;
    const client = await serve({
      session: unimplemented,
      nodeStream: () => {
        streams++;
      },
      heartbeat: (_call, cb) => cb(null, { periodMs: 42 }),
    });
    const ch = new NodeChannel(client, 'sess-5', 5000, () => undefined, false);
    cleanups.push(() => ch.close());
    expect((await ch.heartbeat()).periodMs).toBe(42);
    expect(streams).toBe(0);
  });
});
