// Errors the local API answers with. Docker's body is `{"message": "..."}` and the docker CLI turns
// the status into an error class it branches on (404 NotFound, 400 InvalidArgument, 409 Conflict,
// 503 Unavailable, 500 Internal): see ../shared/reference/docker-api.md §1.3. Handlers throw these;
// anything else becomes a 500 with the error's message (or the status an error mapper chooses).

export type ApiErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NOT_FOUND'
  | 'ERR_CONFLICT'
  | 'ERR_UNAVAILABLE'
  | 'ERR_INTERNAL'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_FORBIDDEN'
  | 'ERR_UNAUTHORIZED';

export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** 400: the request is wrong (bad JSON, bad filter, ambiguous ID prefix, unsupported version). */
export class InvalidArgumentError extends ApiError {
  override readonly name = 'InvalidArgumentError';
  constructor(message: string) {
    super(400, 'ERR_INVALID_ARGUMENT', message);
  }
}

/** 404: no such object (`service web not found`) or no such route (`page not found`). */
export class NotFoundError extends ApiError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super(404, 'ERR_NOT_FOUND', message);
  }
}

/** 409: a name or state conflict. */
export class ConflictError extends ApiError {
  override readonly name = 'ConflictError';
  constructor(message: string) {
    super(409, 'ERR_CONFLICT', message);
  }
}

/** 503: the node cannot serve this now (no swarm, not a manager, no leader). */
export class UnavailableError extends ApiError {
  override readonly name = 'UnavailableError';
  constructor(message: string) {
    super(503, 'ERR_UNAVAILABLE', message);
  }
}

/** 500 with a message of our choosing (Docker uses 500 for e.g. "update out of sequence"). */
export class InternalError extends ApiError {
  override readonly name = 'InternalError';
  constructor(message: string) {
    super(500, 'ERR_INTERNAL', message);
  }
}

/** 413: the request body is over the route's limit. */
export class PayloadTooLargeError extends ApiError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limitBytes: number) {
    super(413, 'ERR_PAYLOAD_TOO_LARGE', `request body is larger than the limit of ${limitBytes} bytes`);
  }
}

// Docker's exact texts (moby daemon/cluster/errors.go), as captured from dockerd 20.10.
export const MSG_NO_SWARM =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
export const MSG_WORKER_NOT_MANAGER =
  "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
export const MSG_ALREADY_IN_SWARM =
  'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.';
export const MSG_NOT_IN_SWARM = 'This node is not part of a swarm';

/** Turns a thrown value into a status and message; `mappers` get a first look (e.g. the manager's typed errors). */
export function toApiError(err: unknown, mappers: readonly ((err: unknown) => ApiError | undefined)[] = []): ApiError {
  if (err instanceof ApiError) return err;
  for (const map of mappers) {
    const mapped = map(err);
    if (mapped !== undefined) return mapped;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message === '' ? 'internal error' : message);
}
