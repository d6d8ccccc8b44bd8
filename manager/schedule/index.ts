export { SchedulerLoop, type SchedulerLoopOptions, type PassReport } from './scheduler-loop.js';
