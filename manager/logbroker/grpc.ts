// The broker on the cluster port: LogBroker (workers: ListenSubscriptions, PublishLogs, ListenExecs,
// PublishExec; the node is the one its verified certificate names) and Logs (managers: SubscribeLogs,
// Exec — what a follower's daemon calls on the leader). Authorization (any node for LogBroker,
// swarm-manager for Logs) happened before any of this, in proto/grpc/authz.ts.
import * as grpc from '@grpc/grpc-js';

import {
  LogBrokerService,
  LogsService,
  type ExecMessage,
  type ExecRequest,
  type LogBrokerServer,
  type LogsServer,
  type PublishLogsMessage,
  type SubscribeLogsMessage,
  type SubscriptionMessage,
} from '../../proto/gen/shoal/logs.js';
import { peerIdentity } from '../../proto/grpc/authz.js';
import type { ServiceRegistration } from '../manager.js';
import { LogSubscriptionOptions_Stream } from '../../proto/gen/shoal/logs.js';
import type { LogBroker } from './broker.js';
import { LogBrokerError } from './errors.js';
import { FORWARDED_HEADER, INCOMPLETE_TRAILER, openExec, openLogs, type BrokerLocator } from './route.js';

/** A subscriber's gRPC stream may buffer this much before it is dropped as too slow. */
export const MAX_STREAM_BUFFER_BYTES = 16 * 1024 * 1024;

function fail(call: grpc.ServerWritableStream<unknown, unknown>, err: unknown): void {
  const e = err instanceof LogBrokerError ? err : new LogBrokerError('ERR_LOGS_CLOSED', (err as Error).message);
  call.emit('error', { code: e.grpcCode, details: e.message });
}

function nodeOf(call: { getAuthContext(): { sslPeerCertificate?: import('node:tls').PeerCertificate } | null }): string | null {
  return peerIdentity(call)?.nodeId ?? null;
}

const UNAUTHENTICATED = { code: grpc.status.UNAUTHENTICATED, details: 'the call carries no node certificate' };

const NOT_RUNNING = 'the log broker is not running on this manager';

/** A worker-held stream the broker writes requests to (subscriptions, execs) until it ends. */
function serveListen<T>(call: grpc.ServerWritableStream<unknown, T>, broker: LogBroker | null, listen: (b: LogBroker, nodeId: string, write: (msg: T) => void) => () => void): void {
  const nodeId = nodeOf(call);
  if (nodeId === null) return void call.emit('error', UNAUTHENTICATED);
  if (broker === null) return void fail(call, new LogBrokerError('ERR_LOGS_CLOSED', NOT_RUNNING));
  const done = listen(broker, nodeId, (msg) => call.write(msg));
  call.on('cancelled', done);
  call.on('close', done);
  call.on('error', done);
}

/**
 * A worker's publishing stream (log lines, exec output): every message goes to the broker; a
 * stream that ends or breaks before its last message (`isLast`) reports its publisher failed.
 */
function servePublish<T>(
  call: grpc.ServerReadableStream<T, unknown>,
  cb: grpc.sendUnaryData<Record<string, never>>,
  broker: LogBroker | null,
  o: { readonly idOf: (msg: T) => string; readonly isLast: (msg: T) => boolean; readonly publish: (b: LogBroker, nodeId: string, msg: T) => void; readonly failed: (b: LogBroker, nodeId: string, id: string) => void },
): void {
  const nodeId = nodeOf(call);
  if (nodeId === null || broker === null) return void cb(nodeId === null ? UNAUTHENTICATED : { code: grpc.status.UNAVAILABLE, details: NOT_RUNNING });
  let id = '';
  let last = false;
  call.on('data', (msg: T) => {
    id ||= o.idOf(msg);
    if (o.isLast(msg)) last = true;
    o.publish(broker, nodeId, msg);
  });
  call.on('end', () => {
    if (!last && id !== '') o.failed(broker, nodeId, id);
    cb(null, {});
  });
  call.on('error', () => {
    if (!last && id !== '') o.failed(broker, nodeId, id);
  });
}

/** LogBroker: what workers call (on the leader). */
export function logBrokerImplementation(broker: () => LogBroker | null): LogBrokerServer {
  return {
    listenSubscriptions: (call) => serveListen(call, broker(), (b, nodeId, write: (m: SubscriptionMessage) => void) => b.listen(nodeId, write)),
    publishLogs: (call, cb) =>
      servePublish(call, cb, broker(), {
        idOf: (m: PublishLogsMessage) => m.subscriptionId,
        isLast: (m) => m.close,
        publish: (b, nodeId, m) => b.publish(nodeId, m),
        failed: (b, nodeId, id) => b.publisherFailed(nodeId, id),
      }),
    listenExecs: (call) => serveListen(call, broker(), (b, nodeId, write: (m: ExecRequest) => void) => b.listenExecs(nodeId, write)),
    publishExec: (call, cb) =>
      servePublish(call, cb, broker(), {
        idOf: (m: ExecMessage) => m.execId,
        isLast: (m) => m.exited,
        publish: (b, nodeId, m) => b.publishExec(nodeId, m),
        failed: (b, nodeId, id) => b.execPublisherFailed(nodeId, id),
      }),
  };
}

/** Logs: what another manager's daemon calls here (this manager leads, or forwards once to the leader). */
export function logsImplementation(locator: BrokerLocator): LogsServer {
  return {
    subscribeLogs: (call) => {
      const forwarded = call.metadata.get(FORWARDED_HEADER).length > 0;
      let cancelled = false;
      let handle: { cancel(): void } | null = null;
      call.on('cancelled', () => {
        cancelled = true;
        handle?.cancel();
      });
      openLogs(
        locator,
        { selector: call.request.selector ?? { serviceIds: [], nodeIds: [], taskIds: [] }, options: call.request.options ?? { streams: [], follow: false, tail: 0, sinceUnixMs: 0 } },
        {
          write: (messages) => {
            if (call.writableLength > MAX_STREAM_BUFFER_BYTES) throw new LogBrokerError('ERR_LOGS_SLOW_READER', `the log reader is too slow: more than ${MAX_STREAM_BUFFER_BYTES} bytes are waiting to be sent`);
            const msg: SubscribeLogsMessage = { messages: [...messages] };
            call.write(msg);
          },
          end: (outcome) => {
            if (cancelled) return;
            if (outcome.error !== undefined) return void fail(call, outcome.error);
            const trailer = new grpc.Metadata();
            if (outcome.incomplete.length > 0) trailer.set(INCOMPLETE_TRAILER, outcome.incomplete.join(','));
            call.end(trailer);
          },
        },
        { forwardAllowed: !forwarded },
      ).then(
        (h) => {
          handle = h;
          if (cancelled) h.cancel();
        },
        (err: unknown) => fail(call, err),
      );
    },
    exec: (call) => {
      const forwarded = call.metadata.get(FORWARDED_HEADER).length > 0;
      let cancelled = false;
      let handle: { cancel(): void } | null = null;
      call.on('cancelled', () => {
        cancelled = true;
        handle?.cancel();
      });
      openExec(
        locator,
        call.request,
        {
          output: (stream, data) => {
            const msg: ExecMessage = {
              execId: '',
              stream: stream === 'stderr' ? LogSubscriptionOptions_Stream.STREAM_STDERR : LogSubscriptionOptions_Stream.STREAM_STDOUT,
              data: Buffer.from(data),
              exited: false,
              exitCode: 0,
              error: '',
              nodeId: '',
            };
            call.write(msg);
          },
          exit: (r) => {
            if (cancelled) return;
            call.write({ execId: '', stream: LogSubscriptionOptions_Stream.STREAM_UNSPECIFIED, data: Buffer.alloc(0), exited: true, exitCode: r.exitCode, error: r.error, nodeId: r.nodeId });
            call.end();
          },
        },
        { forwardAllowed: !forwarded },
      ).then(
        (h) => {
          handle = h;
          if (cancelled) return void h.cancel();
          // Started: the forwarding manager may answer its client now.
          call.write({ execId: '', stream: LogSubscriptionOptions_Stream.STREAM_UNSPECIFIED, data: Buffer.alloc(0), exited: false, exitCode: 0, error: '', nodeId: '' });
        },
        (err: unknown) => fail(call, err),
      );
    },
  };
}

/** The two services for the cluster port. */
export function logBrokerRegistrations(broker: () => LogBroker | null, locator: BrokerLocator): ServiceRegistration[] {
  return [
    { definition: LogBrokerService, implementation: logBrokerImplementation(broker) },
    { definition: LogsService, implementation: logsImplementation(locator) },
  ];
}
