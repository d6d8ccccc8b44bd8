// The control API's one error type. Every refusal carries a status class (what gRPC code and
// HTTP status it becomes) and a message a person can act on; messages follow swarmkit/dockerd
// where the Docker API surfaces them (shared/reference/docker-api.md §1.3).
import * as grpc from '@grpc/grpc-js';

import {
  AmbiguousError,
  ExistsError,
  InvalidObjectError,
  NameConflictError,
  NoProposerError,
  NotFoundError,
  SequenceConflictError,
  StoreClosedError,
  TransactionTooLargeError,
} from '../store/index.js';

/**
 * The class of a refusal. `unknown` is what swarmkit answers for "update out of sequence"
 * (dockerd shows it as `500 rpc error: code = Unknown desc = update out of sequence`), kept so the
 * Docker API can repeat it exactly.
 */
export type ControlStatus =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'unavailable'
  | 'unknown'
  | 'permission-denied'
  | 'internal';

export type ControlErrorCode =
  | 'ERR_CONTROL_INVALID'
  | 'ERR_CONTROL_NOT_FOUND'
  | 'ERR_CONTROL_AMBIGUOUS'
  | 'ERR_CONTROL_NAME_CONFLICT'
  | 'ERR_CONTROL_EXISTS'
  | 'ERR_CONTROL_SEQUENCE'
  | 'ERR_CONTROL_PRECONDITION'
  | 'ERR_CONTROL_NO_LEADER'
  | 'ERR_CONTROL_NOT_LEADER'
  | 'ERR_CONTROL_LOCKED'
  | 'ERR_CONTROL_INTERNAL';

const STATUS_OF: Readonly<Record<ControlErrorCode, ControlStatus>> = {
  ERR_CONTROL_INVALID: 'invalid-argument',
  ERR_CONTROL_NOT_FOUND: 'not-found',
  ERR_CONTROL_AMBIGUOUS: 'invalid-argument',
  ERR_CONTROL_NAME_CONFLICT: 'already-exists',
  ERR_CONTROL_EXISTS: 'already-exists',
  ERR_CONTROL_SEQUENCE: 'unknown',
  ERR_CONTROL_PRECONDITION: 'failed-precondition',
  ERR_CONTROL_NO_LEADER: 'unavailable',
  ERR_CONTROL_NOT_LEADER: 'unavailable',
  ERR_CONTROL_LOCKED: 'unavailable',
  ERR_CONTROL_INTERNAL: 'internal',
};

export class ControlError extends Error {
  readonly status: ControlStatus;
  constructor(
    readonly code: ControlErrorCode,
    message: string,
    readonly leaderId: string | null = null,
  ) {
    super(message);
    this.name = 'ControlError';
    this.status = STATUS_OF[code];
  }
}

export const invalid = (message: string): ControlError => new ControlError('ERR_CONTROL_INVALID', message);
export const precondition = (message: string): ControlError => new ControlError('ERR_CONTROL_PRECONDITION', message);

const GRPC_OF: Readonly<Record<ControlStatus, grpc.status>> = {
  'invalid-argument': grpc.status.INVALID_ARGUMENT,
  'not-found': grpc.status.NOT_FOUND,
  'already-exists': grpc.status.ALREADY_EXISTS,
  'failed-precondition': grpc.status.FAILED_PRECONDITION,
  unavailable: grpc.status.UNAVAILABLE,
  unknown: grpc.status.UNKNOWN,
  'permission-denied': grpc.status.PERMISSION_DENIED,
  internal: grpc.status.INTERNAL,
};

export function grpcCodeOf(status: ControlStatus): grpc.status {
  return GRPC_OF[status];
}

/** What code an error of another part (store, Raft, manager runtime) becomes at the API. */
export function toControlError(err: unknown): ControlError {
  if (err instanceof ControlError) return err;
  if (err instanceof SequenceConflictError) return new ControlError('ERR_CONTROL_SEQUENCE', err.message);
  if (err instanceof NameConflictError) return new ControlError('ERR_CONTROL_NAME_CONFLICT', err.message);
  if (err instanceof ExistsError) return new ControlError('ERR_CONTROL_EXISTS', err.message);
  if (err instanceof NotFoundError) return new ControlError('ERR_CONTROL_NOT_FOUND', err.message);
  if (err instanceof AmbiguousError) return new ControlError('ERR_CONTROL_AMBIGUOUS', err.message);
  if (err instanceof InvalidObjectError || err instanceof TransactionTooLargeError) return invalid(err.message);
  if (err instanceof NoProposerError || err instanceof StoreClosedError) return new ControlError('ERR_CONTROL_NO_LEADER', `no leader: ${err.message}`);
  const e = err as { code?: unknown; message?: unknown; leaderHint?: unknown; leaderId?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  // Raft's refusal (raft/node.ts ProposalRejectedError) and the manager runtime's (manager/errors.ts),
  // matched by code so this module does not depend on the runtime's internals.
  if (e.code === 'ERR_RAFT_NOT_LEADER' || e.code === 'NOT_LEADER' || e.code === 'NO_LEADER') {
    const hint = e.leaderId ?? e.leaderHint;
    const leader = hint === null || hint === undefined || hint === '' ? null : String(hint);
    if (leader === null || e.code === 'NO_LEADER') {
      return new ControlError('ERR_CONTROL_NO_LEADER', message.startsWith('no leader') ? message : `no leader: ${message}`);
    }
    return new ControlError('ERR_CONTROL_NOT_LEADER', message, leader);
  }
  if (e.code === 'ERR_RAFT_TIMEOUT' || e.code === 'ERR_RAFT_NODE_CLOSED' || e.code === 'ERR_RAFT_PROPOSAL_DROPPED') {
    return new ControlError('ERR_CONTROL_NO_LEADER', `no leader: ${message}; the outcome of the change is unknown, read it back before retrying`);
  }
  if (e.code === 'ERR_KEYMANAGER_LOCKED') return new ControlError('ERR_CONTROL_LOCKED', message);
  return new ControlError('ERR_CONTROL_INTERNAL', message);
}

/** Metadata key carrying the ControlErrorCode over gRPC, so a forwarding manager can rebuild the error. */
export const ERROR_CODE_METADATA = 'shoal-control-error';

export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = toControlError(err);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA, e.code);
  return { code: grpcCodeOf(e.status), details: e.message, metadata };
}

/** Rebuilds a ControlError from a gRPC error a Control call returned (forwarding, clients). */
export function fromGrpcError(err: grpc.ServiceError): ControlError {
  const code = err.metadata?.get(ERROR_CODE_METADATA)[0];
  if (typeof code === 'string' && code in STATUS_OF) return new ControlError(code as ControlErrorCode, err.details);
  switch (err.code) {
    case grpc.status.INVALID_ARGUMENT:
      return invalid(err.details);
    case grpc.status.NOT_FOUND:
      return new ControlError('ERR_CONTROL_NOT_FOUND', err.details);
    case grpc.status.ALREADY_EXISTS:
      return new ControlError('ERR_CONTROL_EXISTS', err.details);
    case grpc.status.FAILED_PRECONDITION:
      return precondition(err.details);
    case grpc.status.UNAVAILABLE:
      return new ControlError('ERR_CONTROL_NO_LEADER', err.details);
    default:
      return new ControlError('ERR_CONTROL_INTERNAL', err.details);
  }
}
