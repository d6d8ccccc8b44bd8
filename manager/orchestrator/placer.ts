// The seam through which the replicated orchestrator creates a scale-up's tasks already placed.
//
// A task of a service that needs no network attachment is created PENDING, and the scheduler loop
// then writes it again as ASSIGNED: two writes on every manager before a worker hears of it. When
// the orchestrator has a placer, it asks it for nodes before creating a scale-up's tasks and
// creates them ASSIGNED: one write. The placer is the scheduler's (manager/schedule/placement.ts):
// the same pure scheduler, the same view of nodes and placed tasks, and one lock shared with the
// scheduler loop, so no two decisions are made against each other's uncommitted writes. Nomad's
// scheduler, likewise, writes allocations already placed.
import type { ReadTx } from '../store/memory-store.js';
import type { GenericResource } from '../../scheduler/index.js';
import type { Service } from '../store/types.js';

/** A placed task's status message (Docker's words). */
export const ASSIGNED_MESSAGE = 'scheduler assigned task to node';

/** Where one new task goes: its node, and the generic resource units it was given there. */
export interface Placed {
  readonly nodeId: string;
  readonly units?: readonly GenericResource[];
}

export interface PlacementWant {
  readonly service: Service;
  /** New tasks the service needs. */
  readonly count: number;
}

export interface TaskPlacer {
  /** Runs `fn` while no other placement decides or commits (the scheduler loop's passes take it too). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Nodes for new tasks, decided against the committed state `tx` shows: per service, one entry
   * per task that fits somewhere now (a node's tasks next to each other, so that commit chunks
   * cut between nodes), fewer entries than `count` when the rest fits nowhere (they are created
   * PENDING and the scheduler loop gives the reason). Undefined when tasks already wait for the
   * scheduler loop: those go first, and the new ones join them PENDING.
   */
  placeNew(tx: ReadTx, wants: readonly PlacementWant[]): Map<string, Placed[]> | undefined;
}
