// The dispatcher's public surface, for the manager runtime and the agent.
export {
  Dispatcher,
  registerDispatcher,
  DEFAULT_DISPATCHER_CONFIG,
  type DispatcherConfig,
  type DispatcherDeps,
  type Leadership,
  type ManagerPeer,
} from './dispatcher.js';
export { DISPATCHER_SERVICE, EncodedAssignments } from './assignment-wire.js';
export { DispatcherError, type DispatcherErrorCode } from './errors.js';
export { workerTransitionRefusal, isTerminal, taskStateRank, WORKER_REPORTED_STATES } from './task-transitions.js';
export { taskStatusToProto, taskStatusFromProto, taskStateToProto, taskStateFromProto, encodeJson, decodeObjectJson } from './wire.js';
