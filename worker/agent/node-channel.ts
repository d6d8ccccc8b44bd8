// What an agent sends often during a session — heartbeats and task status batches — over one
// NodeStream (a bidirectional gRPC stream per session), or over the unary Heartbeat and
// UpdateTaskStatus calls when the manager does not serve NodeStream (an older build answers
// UNIMPLEMENTED). A unary call costs the agent's process a whole gRPC call (a new HTTP/2 stream,
// headers, grpc-js's call layers): with hundreds of agents per process that was most of their idle
// CPU; a request on the open stream is one message each way.
//
// Each request waits for its answer (request_id echoed by the manager) at most `timeoutMs`, as a
// unary call's deadline would: a request that times out is rejected (a status batch stays queued in
// the reporter and is sent again). A stream error or end rejects every waiting request and ends the
// session through `onEnd` (the error's gRPC code tells the session loop what to do next).
import * as grpc from '@grpc/grpc-js';

import { taskStatusToProto } from '../../manager/dispatcher/wire.js';
import {
  DispatcherService,
  type DispatcherClient,
  type HeartbeatResponse,
  type NodeStreamResponse,
  type UpdateTaskStatusResponse,
} from '../../proto/gen/shoal/dispatcher.js';
import { callUnary } from '../../proto/grpc/client.js';
import { decodeNodeStreamResponse, encodeHeartbeatRequest, encodeStatusRequest, type StatusUpdate } from './node-stream-codec.js';

export type { StatusUpdate } from './node-stream-codec.js';

/** What a request asks: a heartbeat, or a batch of task statuses. */
type Body = { readonly $case: 'heartbeat' } | { readonly $case: 'status'; readonly updates: readonly StatusUpdate[] };
type Answer = NonNullable<NodeStreamResponse['body']>;

/** Requests go out as bytes the agent wrote itself (node-stream-codec.ts); answers are read by hand. */
const identity = (b: Buffer): Buffer => b;

interface Waiting {
  readonly body: Body;
  readonly resolve: (answer: Answer) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** An error with a gRPC status code, as grpc-js reports a failed call. */
export class NodeChannelError extends Error {
  constructor(
    message: string,
    readonly code: grpc.status,
    readonly details: string = message,
  ) {
    super(message);
  }
}

export class NodeChannel {
  private stream: grpc.ClientDuplexStream<Buffer, NodeStreamResponse> | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  /** The manager has no NodeStream: every request is a unary call. */
  private unary = false;
  private answered = false;
  private ended = false;

  /**
   * `onEnd` hears the stream's end or error once (not a timeout of one request, nor the fallback
   * to unary calls); `useStream` false: unary calls only.
   */
  constructor(
    private readonly client: DispatcherClient,
    private readonly sessionId: string,
    private readonly timeoutMs: number,
    private readonly onEnd: (err: grpc.ServiceError | NodeChannelError) => void,
    useStream = true,
  ) {
    if (useStream) this.open();
    else this.unary = true;
  }

  /** True while requests go over NodeStream (false: unary calls). */
  get streaming(): boolean {
    return !this.unary;
  }

  heartbeat(): Promise<HeartbeatResponse> {
    return this.request({ $case: 'heartbeat' }).then((a) => {
      if (a.$case !== 'heartbeat') throw new NodeChannelError(`the manager answered a heartbeat with ${a.$case}`, grpc.status.INTERNAL);
      return a.heartbeat;
    });
  }

  updateTaskStatus(updates: readonly StatusUpdate[]): Promise<UpdateTaskStatusResponse> {
    return this.request({ $case: 'status', updates }).then((a) => {
      if (a.$case !== 'status') throw new NodeChannelError(`the manager answered a status batch with ${a.$case}`, grpc.status.INTERNAL);
      return a.status;
    });
  }

  /** Stops the stream (the session ended); waiting requests are rejected. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream?.cancel();
    this.rejectAll(new NodeChannelError('the session ended', grpc.status.CANCELLED));
  }

  private open(): void {
    const stream = this.client.makeBidiStreamRequest<Buffer, NodeStreamResponse>(DispatcherService.nodeStream.path, identity, decodeNodeStreamResponse);
    this.stream = stream;
    stream.on('data', (res: NodeStreamResponse) => {
      this.answered = true;
      const w = this.waiting.get(res.requestId);
      if (w === undefined || res.body === undefined) return; // timed out already
      this.waiting.delete(res.requestId);
      clearTimeout(w.timer);
      w.resolve(res.body);
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (this.ended) return;
      if (err.code === grpc.status.UNIMPLEMENTED && !this.answered) {
        // An older manager: the same requests as unary calls, from now on in this session.
        this.unary = true;
        this.stream = null;
        const waiting = [...this.waiting.values()];
        this.waiting.clear();
        for (const w of waiting) {
          clearTimeout(w.timer);
          this.unaryRequest(w.body).then(w.resolve, w.reject);
        }
        return;
      }
      this.ended = true;
      this.rejectAll(err);
      this.onEnd(err);
    });
    stream.on('end', () => {
      if (this.ended || this.unary) return;
      this.ended = true;
      const err = new NodeChannelError('the manager ended the node stream', grpc.status.UNAVAILABLE);
      this.rejectAll(err);
      this.onEnd(err);
    });
  }

  private rejectAll(err: Error): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  private request(body: Body): Promise<Answer> {
    if (this.ended) return Promise.reject(new NodeChannelError('the session ended', grpc.status.CANCELLED));
    if (this.unary || this.stream === null) return this.unaryRequest(body);
    const stream = this.stream;
    return new Promise<Answer>((resolve, reject) => {
      const requestId = this.nextId++;
      const timer = setTimeout(() => {
        if (this.waiting.delete(requestId)) reject(new NodeChannelError(`no answer from the manager within ${this.timeoutMs} ms`, grpc.status.DEADLINE_EXCEEDED));
      }, this.timeoutMs);
      this.waiting.set(requestId, { body, resolve, reject, timer });
      stream.write(body.$case === 'heartbeat' ? encodeHeartbeatRequest(requestId, this.sessionId) : encodeStatusRequest(requestId, this.sessionId, body.updates));
    });
  }

  private async unaryRequest(body: Body): Promise<Answer> {
    if (body.$case === 'heartbeat') {
      const heartbeat = await callUnary(this.client.heartbeat.bind(this.client), { sessionId: this.sessionId }, this.timeoutMs);
      return { $case: 'heartbeat', heartbeat };
    }
    const updates = body.updates.map((u) => ({ taskId: u.taskId, status: u.status === undefined ? undefined : taskStatusToProto(u.status) }));
    const status = await callUnary(this.client.updateTaskStatus.bind(this.client), { sessionId: this.sessionId, updates }, this.timeoutMs);
    return { $case: 'status', status };
  }
}
