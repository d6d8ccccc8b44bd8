// Typed errors of the scheduler. Placement itself never throws for a task it cannot place (that
// becomes a reason); these are for specs that can never be valid and for inconsistent input.

export type SchedulerErrorCode = 'INVALID_CONSTRAINT' | 'INVALID_PREFERENCE' | 'INVALID_INPUT';

export class SchedulerError extends Error {
  readonly code: SchedulerErrorCode;

  constructor(code: SchedulerErrorCode, message: string) {
    super(message);
    this.name = 'SchedulerError';
    this.code = code;
  }
}

/** A placement constraint that does not parse; the message names the constraint and what is wrong. */
export class ConstraintSyntaxError extends SchedulerError {
  readonly constraint: string;

  constructor(constraint: string, problem: string) {
    super('INVALID_CONSTRAINT', `invalid placement constraint '${constraint}': ${problem}`);
    this.name = 'ConstraintSyntaxError';
    this.constraint = constraint;
  }
}

/** A placement preference that swarm mode cannot honour (only `spread=node.labels.<key>` or `engine.labels.<key>`). */
export class PreferenceSyntaxError extends SchedulerError {
  readonly descriptor: string;

  constructor(descriptor: string, problem: string) {
    super('INVALID_PREFERENCE', `invalid placement preference '${descriptor}': ${problem}`);
    this.name = 'PreferenceSyntaxError';
    this.descriptor = descriptor;
  }
}

/** The caller handed the scheduler contradictory input (e.g. two nodes with one ID). */
export class SchedulerInputError extends SchedulerError {
  constructor(message: string) {
    super('INVALID_INPUT', message);
    this.name = 'SchedulerInputError';
  }
}
