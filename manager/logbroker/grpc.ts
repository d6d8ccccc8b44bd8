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

/** LogBroker: what workers call (on the leader). */
export function logBrokerImplementation(broker: () => LogBroker | null): LogBrokerServer {
  return {
    listenSubscriptions: (call) => {
      const nodeId = nodeOf(call);
      const b = broker();
      if (nodeId === null) return void call.emit('error', UNAUTHENTICATED);
      if (b === null) return void fail(call, new LogBrokerError('ERR_LOGS_CLOSED', 'the log broker is not running on this manager'));
      const done = b.listen(nodeId, (msg: SubscriptionMessage) => call.write(msg));
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
    publishLogs: (call, cb) => {
      const nodeId = nodeOf(call);
      const b = broker();
      if (nodeId === null || b === null) return void cb(nodeId === null ? UNAUTHENTICATED : { code: grpc.status.UNAVAILABLE, details: 'the log broker is not running on this manager' });
      let subscriptionId = '';
      let closed = false;
      call.on('data', (msg: PublishLogsMessage) => {
        subscriptionId ||= msg.subscriptionId;
        if (msg.close) closed = true;
        b.publish(nodeId, msg);
      });
      call.on('end', () => {
        if (!closed && subscriptionId !== '') b.publisherFailed(nodeId, subscriptionId);
        cb(null, {});
      });
      call.on('error', () => {
        if (!closed && subscriptionId !== '') b.publisherFailed(nodeId, subscriptionId);
      });
    },
    listenExecs: (call) => {
      const nodeId = nodeOf(call);
      const b = broker();
      if (nodeId === null) return void call.emit('error', UNAUTHENTICATED);
      if (b === null) return void fail(call, new LogBrokerError('ERR_LOGS_CLOSED', 'the log broker is not running on this manager'));
      const done = b.listenExecs(nodeId, (req: ExecRequest) => call.write(req));
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
    publishExec: (call, cb) => {
      const nodeId = nodeOf(call);
      const b = broker();
      if (nodeId === null || b === null) return void cb(nodeId === null ? UNAUTHENTICATED : { code: grpc.status.UNAVAILABLE, details: 'the log broker is not running on this manager' });
      let execId = '';
      let exited = false;
      call.on('data', (msg: ExecMessage) => {
        execId ||= msg.execId;
        if (msg.exited) exited = true;
        b.publishExec(nodeId, msg);
      });
      call.on('end', () => {
        if (!exited && execId !== '') b.execPublisherFailed(nodeId, execId);
        cb(null, {});
      });
      call.on('error', () => {
        if (!exited && execId !== '') b.execPublisherFailed(nodeId, execId);
      });
    },
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
