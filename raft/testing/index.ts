// The raft/testing entry point: the simulator (a contract, see README.md) and its checkers.
export { SimCluster, SimError } from './sim.js';
export type { SimOptions, SimStatus, SimRole, ProposeOutcome, DeliveryOptions } from './sim.js';
export { SafetyChecker, SafetyViolation } from './invariants.js';
export { randomRun, LivenessViolation } from './random-run.js';
export type { RandomRunOptions, RandomRunResult } from './random-run.js';
export { TestNet } from './net.js';
