// Typed errors of the manager runtime (membership, leadership), each with a message an operator can act on.
import * as grpc from '@grpc/grpc-js';

export type ManagerErrorCode =
  | 'NO_LEADER'
  | 'NOT_LEADER'
  | 'QUORUM_AT_RISK'
  | 'LAST_MANAGER'
  | 'NOT_A_MEMBER'
  | 'NODE_REMOVED'
  | 'ALREADY_INITIALIZED'
  | 'NOT_INITIALIZED'
  | 'WRONG_TOKEN_ROLE'
  | 'JOIN_FAILED'
  | 'CLOSED'
  | 'TIMEOUT';

export class ManagerError extends Error {
  constructor(readonly code: ManagerErrorCode, message: string) {
    super(message);
    this.name = 'ManagerError';
  }
}

/** No leader is known (an election is under way, or this manager cannot reach a quorum). */
export class NoLeaderError extends ManagerError {
  constructor(detail = '') {
    super('NO_LEADER', `no leader: the swarm has no reachable leader right now (an election is in progress or a quorum of managers is unreachable)${detail === '' ? '' : `; ${detail}`}`);
  }
}

/** This manager is a follower; the call must go to the leader (the control API forwards). */
export class NotLeaderError extends ManagerError {
  constructor(readonly leaderId: string, readonly leaderAddr: string | null) {
    super('NOT_LEADER', `this manager is not the leader; the leader is ${leaderId}${leaderAddr === null ? '' : ` at ${leaderAddr}`}`);
  }
}

/** The gRPC status a ManagerError maps to when it crosses the wire. */
export function grpcStatusOf(err: ManagerError): grpc.status {
  switch (err.code) {
    case 'NO_LEADER':
    case 'NOT_LEADER':
    case 'CLOSED':
      return grpc.status.UNAVAILABLE;
    case 'QUORUM_AT_RISK':
    case 'LAST_MANAGER':
      return grpc.status.FAILED_PRECONDITION;
    case 'NOT_A_MEMBER':
      return grpc.status.NOT_FOUND;
    case 'NODE_REMOVED':
      return grpc.status.PERMISSION_DENIED;
    case 'TIMEOUT':
      return grpc.status.DEADLINE_EXCEEDED;
    default:
      return grpc.status.INTERNAL;
  }
}

/** Rebuilds a ManagerError from a gRPC error that carried one (details = message, code in metadata). */
export function managerErrorFromGrpc(err: grpc.ServiceError): ManagerError {
  const code = err.metadata?.get('shoal-error-code')[0];
  if (typeof code === 'string' && code !== '') {
    if (code === 'NO_LEADER') return new ManagerError('NO_LEADER', err.details);
    return new ManagerError(code as ManagerErrorCode, err.details);
  }
  if (err.code === grpc.status.PERMISSION_DENIED) return new ManagerError('NODE_REMOVED', err.details);
  if (err.code === grpc.status.UNAVAILABLE) return new ManagerError('NO_LEADER', `the manager could not be reached: ${err.details}`);
  return new ManagerError('JOIN_FAILED', err.details);
}

/** A ManagerError as a gRPC error for a handler's callback. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof ManagerError) {
    const metadata = new grpc.Metadata();
    metadata.set('shoal-error-code', err.code);
    return { code: grpcStatusOf(err), details: err.message, metadata };
  }
  return { code: grpc.status.INTERNAL, details: (err as Error).message ?? String(err) };
}
