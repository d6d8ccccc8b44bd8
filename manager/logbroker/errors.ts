// Typed errors of the log broker and exec routing, and the gRPC status each becomes on the wire.
import * as grpc from '@grpc/grpc-js';

export type LogBrokerErrorCode =
  /** Nothing matches: no such task, or the task is not assigned to a node. */
  | 'ERR_LOGS_NOT_FOUND'
  /** The task is not running, so there is no container to exec into. */
  | 'ERR_EXEC_NOT_RUNNING'
  /** The task's node has no open ListenExecs / ListenSubscriptions stream with this manager. */
  | 'ERR_NODE_UNAVAILABLE'
  /** This manager is not the leader (workers publish to the leader's broker) and no leader is known. */
  | 'ERR_NO_LEADER'
  /** The request is malformed (no command, no stream selected…). */
  | 'ERR_LOGS_INVALID'
  /** The subscriber reads too slowly: its buffer passed the limit. */
  | 'ERR_LOGS_SLOW_READER'
  /** The broker stopped (manager closing). */
  | 'ERR_LOGS_CLOSED';

const GRPC_STATUS: Readonly<Record<LogBrokerErrorCode, grpc.status>> = {
  ERR_LOGS_NOT_FOUND: grpc.status.NOT_FOUND,
  ERR_EXEC_NOT_RUNNING: grpc.status.FAILED_PRECONDITION,
  ERR_NODE_UNAVAILABLE: grpc.status.UNAVAILABLE,
  ERR_NO_LEADER: grpc.status.UNAVAILABLE,
  ERR_LOGS_INVALID: grpc.status.INVALID_ARGUMENT,
  ERR_LOGS_SLOW_READER: grpc.status.RESOURCE_EXHAUSTED,
  ERR_LOGS_CLOSED: grpc.status.UNAVAILABLE,
};

const CODE_OF_STATUS = new Map<grpc.status, LogBrokerErrorCode>([
  [grpc.status.NOT_FOUND, 'ERR_LOGS_NOT_FOUND'],
  [grpc.status.FAILED_PRECONDITION, 'ERR_EXEC_NOT_RUNNING'],
  [grpc.status.INVALID_ARGUMENT, 'ERR_LOGS_INVALID'],
  [grpc.status.RESOURCE_EXHAUSTED, 'ERR_LOGS_SLOW_READER'],
]);

export class LogBrokerError extends Error {
  override readonly name = 'LogBrokerError';
  constructor(
    readonly code: LogBrokerErrorCode,
    message: string,
  ) {
    super(message);
  }

  get grpcCode(): grpc.status {
    return GRPC_STATUS[this.code];
  }

  /** The error a remote broker's status stands for (a follower reading the leader's answer). */
  static fromGrpc(err: grpc.ServiceError): LogBrokerError {
    return new LogBrokerError(CODE_OF_STATUS.get(err.code) ?? 'ERR_NODE_UNAVAILABLE', err.details || err.message);
  }
}
