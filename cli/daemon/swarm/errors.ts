// The manager's and the control API's errors as the Docker API answers them (status and body as
// dockerd 20.10 does: manager/controlapi/README.md's table, shared/reference/docker-api.md §1.3).
import { ControlError } from '../../../manager/controlapi/errors.js';
import { ManagerError } from '../../../manager/errors.js';
import { KeyManagerError, LOCKED_MESSAGE } from '../../../manager/keymanager/errors.js';
import {
  ApiError,
  ConflictError,
  InternalError,
  InvalidArgumentError,
  MSG_ALREADY_IN_SWARM,
  NotFoundError,
  UnavailableError,
} from '../api/errors.js';

export function mapControlError(e: ControlError): ApiError {
  switch (e.status) {
    case 'invalid-argument':
      return new InvalidArgumentError(e.message);
    case 'not-found':
      return new NotFoundError(e.message);
    case 'already-exists':
      return new ConflictError(`rpc error: code = AlreadyExists desc = ${e.message}`);
    case 'failed-precondition':
      return new InvalidArgumentError(`rpc error: code = FailedPrecondition desc = ${e.message}`);
    case 'unknown':
      return new InternalError(`rpc error: code = Unknown desc = ${e.message}`);
    case 'unavailable':
      return new UnavailableError(e.message);
    case 'permission-denied':
      return new ApiError(403, 'ERR_FORBIDDEN', e.message);
    default:
      return new InternalError(e.message);
  }
}

export function mapManagerError(e: ManagerError): ApiError {
  switch (e.code) {
    case 'ALREADY_INITIALIZED':
      return new UnavailableError(MSG_ALREADY_IN_SWARM);
    case 'NO_LEADER':
    case 'NOT_LEADER':
    case 'CLOSED':
    case 'TIMEOUT':
    case 'QUORUM_AT_RISK':
    case 'LAST_MANAGER':
    case 'NODE_REMOVED':
      return new UnavailableError(e.message);
    default:
      return new InternalError(e.message);
  }
}

/** The swarm plugin's error mapper (`ctx.api.addErrorMapper`). */
export function mapSwarmError(err: unknown): ApiError | undefined {
  if (err instanceof ControlError) return mapControlError(err);
  if (err instanceof ManagerError) return mapManagerError(err);
  if (err instanceof KeyManagerError) {
    // dockerd: a locked manager is 503 errSwarmLocked; a key that does not open it 401.
    if (err.code === 'ERR_KEYMANAGER_LOCKED') return new UnavailableError(LOCKED_MESSAGE);
    if (err.code === 'ERR_KEYMANAGER_INVALID_KEY') return new ApiError(401, 'ERR_UNAUTHORIZED', 'swarm could not be unlocked: invalid key provided');
    return new InternalError(err.message);
  }
  return undefined;
}
