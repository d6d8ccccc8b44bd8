export { SchedulerLoop, type SchedulerLoopOptions, type PassReport } from './scheduler-loop.js';
export { toSchedulerNode } from './node-view.js';
export { Placement, clusterState, type ClusterState } from './placement.js';
