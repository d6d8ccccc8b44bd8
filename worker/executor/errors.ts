// Typed errors of the executor. Messages name the task and say what to fix, because the agent
// copies them into the task's status (`service ps` shows them).

export type ExecutorErrorCode =
  /** The spec cannot become a container (bad user, mount, secret, limit…): the task is REJECTED. */
  | 'ERR_TASK_INVALID_SPEC'
  /** A lifecycle call out of order (start before prepare, prepare after remove…). */
  | 'ERR_TASK_STATE'
  /** runc refused or failed. */
  | 'ERR_TASK_RUNTIME'
  /** The image could not be pulled or mounted (the cause is the image store's error). */
  | 'ERR_TASK_IMAGE'
  /** A host-side step failed (netns, mount, files). */
  | 'ERR_TASK_HOST'
  | 'ERR_TASK_TIMEOUT';

export class ExecutorError extends Error {
  override readonly name: string = 'ExecutorError';
  constructor(
    readonly code: ExecutorErrorCode,
    readonly taskId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`task ${taskId}: ${message}`, options);
  }
}

export class InvalidTaskSpecError extends ExecutorError {
  override readonly name = 'InvalidTaskSpecError';
  constructor(taskId: string, message: string, options?: { cause?: unknown }) {
    super('ERR_TASK_INVALID_SPEC', taskId, message, options);
  }
}

export class TaskStateError extends ExecutorError {
  override readonly name = 'TaskStateError';
  constructor(taskId: string, message: string) {
    super('ERR_TASK_STATE', taskId, message);
  }
}

export class RuntimeError extends ExecutorError {
  override readonly name = 'RuntimeError';
  constructor(
    taskId: string,
    message: string,
    /** What runc wrote on stderr or in its log, trimmed. */
    readonly runtimeOutput: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_TASK_RUNTIME', taskId, runtimeOutput === '' ? message : `${message}: ${runtimeOutput}`, options);
  }
}

export class TaskImageError extends ExecutorError {
  override readonly name = 'TaskImageError';
  constructor(taskId: string, message: string, options?: { cause?: unknown }) {
    super('ERR_TASK_IMAGE', taskId, message, options);
  }
}

export class HostSetupError extends ExecutorError {
  override readonly name = 'HostSetupError';
  constructor(taskId: string, message: string, options?: { cause?: unknown }) {
    super('ERR_TASK_HOST', taskId, message, options);
  }
}

export class TaskTimeoutError extends ExecutorError {
  override readonly name = 'TaskTimeoutError';
  constructor(taskId: string, message: string) {
    super('ERR_TASK_TIMEOUT', taskId, message);
  }
}
