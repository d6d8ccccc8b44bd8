// The executor's public surface, for the agent and the daemon.
export type {
  BindOptions,
  ConfigReference,
  ContainerSpec,
  ContainerState,
  DependencyGetter,
  Executor,
  ExitStatus,
  FileTarget,
  HealthConfig,
  HealthProbeResult,
  HealthReport,
  HealthStatus,
  MountSpec,
  ReconcileResult,
  ResourceLimits,
  SecretReference,
  TaskController,
  TaskDescriptor,
  TaskEvent,
  TaskInspect,
  TaskSpec,
  TmpfsOptions,
  VolumeOptions,
} from './types.js';
export { RuncExecutor, type ImageSource, type RuncExecutorOptions } from './runc-executor.js';
export { ExecutorError, HostSetupError, InvalidTaskSpecError, RuntimeError, TaskImageError, TaskStateError, TaskTimeoutError, type ExecutorErrorCode } from './errors.js';
export { readTaskLog, type LogEntry, type LogStream, type TaskLogOptions } from './task-log.js';
export { ImageGarbageCollector, type ImageGcOptions } from './image-gc.js';
