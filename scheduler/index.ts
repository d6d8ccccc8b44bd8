// The scheduler's public surface: a pure function from cluster state to placement decisions,
// and the parsers the control API uses to refuse specs the scheduler could never honour.

export { schedule } from './scheduler.js';
export { parseConstraint, parseConstraints, nodeMatches, type Constraint, type ConstraintField, type ConstraintOperator } from './constraints.js';
export { parsePreferences, parseSpreadDescriptor, type SpreadOver } from './preferences.js';
export { validatePlacement } from './validate.js';
export { normalizeArch, platformSupported } from './platform.js';
export {
  SchedulerError,
  ConstraintSyntaxError,
  PreferenceSyntaxError,
  SchedulerInputError,
  type SchedulerErrorCode,
} from './errors.js';
export type * from './types.js';
