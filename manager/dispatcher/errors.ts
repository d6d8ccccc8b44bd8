// Typed errors of the dispatcher, and the gRPC status each becomes on the wire. The agent reads
// the status code (and, for NOT_LEADER, the redirect message before it) to decide what to do.
import * as grpc from '@grpc/grpc-js';

export type DispatcherErrorCode =
  /** This manager is not the leader: open the session at the leader (SessionMessage.leader_addr). */
  | 'ERR_DISPATCHER_NOT_LEADER'
  /** The session ID is not (or no longer) this node's session: open a new session. */
  | 'ERR_DISPATCHER_SESSION_INVALID'
  /** The call's certificate does not name a node. */
  | 'ERR_DISPATCHER_UNAUTHENTICATED'
  /** A node tried to update a task assigned to another node. */
  | 'ERR_DISPATCHER_FOREIGN_TASK'
  /** Too many status updates are waiting to be written: retry later. */
  | 'ERR_DISPATCHER_BUSY'
  /** The dispatcher is stopped (leadership lost, manager shutting down). */
  | 'ERR_DISPATCHER_STOPPED'
  /** The request is malformed (bad JSON description…). */
  | 'ERR_DISPATCHER_INVALID';

const GRPC_STATUS: Readonly<Record<DispatcherErrorCode, grpc.status>> = {
  ERR_DISPATCHER_NOT_LEADER: grpc.status.FAILED_PRECONDITION,
  ERR_DISPATCHER_SESSION_INVALID: grpc.status.NOT_FOUND,
  ERR_DISPATCHER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ERR_DISPATCHER_FOREIGN_TASK: grpc.status.PERMISSION_DENIED,
  ERR_DISPATCHER_BUSY: grpc.status.RESOURCE_EXHAUSTED,
  ERR_DISPATCHER_STOPPED: grpc.status.UNAVAILABLE,
  ERR_DISPATCHER_INVALID: grpc.status.INVALID_ARGUMENT,
};

export class DispatcherError extends Error {
  override readonly name = 'DispatcherError';
  constructor(readonly code: DispatcherErrorCode, message: string) {
    super(message);
  }

  get grpcCode(): grpc.status {
    return GRPC_STATUS[this.code];
  }

  /** What a grpc-js handler passes to its callback or emits on its stream. */
  toServiceError(): grpc.ServiceError {
    return Object.assign(new Error(this.message), { code: this.grpcCode, details: this.message, metadata: new grpc.Metadata() });
  }
}

export function notLeader(leaderAddr: string | null): DispatcherError {
  return new DispatcherError(
    'ERR_DISPATCHER_NOT_LEADER',
    `this manager is not the leader; open the session at the leader${leaderAddr === null ? ' (not known yet: retry with another manager)' : ` at ${leaderAddr}`}`,
  );
}

export function sessionInvalid(nodeId: string, sessionId: string): DispatcherError {
  return new DispatcherError('ERR_DISPATCHER_SESSION_INVALID', `session "${sessionId}" is not the current session of node ${nodeId} (it expired or was replaced): open a new session`);
}
