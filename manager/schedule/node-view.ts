// A store Node as the scheduler's pure functions read it (placement and constraint matching).
import type { Resources, SchedulerNode } from '../../scheduler/index.js';
import type { Node } from '../store/types.js';

export function toSchedulerNode(n: Node): SchedulerNode {
  const d = n.Description;
  return {
    ID: n.ID,
    Spec: { Role: n.Spec.Role, Availability: n.Spec.Availability, ...(n.Spec.Labels !== undefined ? { Labels: n.Spec.Labels } : {}) },
    ...(d !== undefined
      ? {
          Description: {
            ...(d.Hostname !== undefined ? { Hostname: d.Hostname } : {}),
            ...(d.Platform !== undefined ? { Platform: d.Platform } : {}),
            ...(d.Resources !== undefined ? { Resources: d.Resources as Resources } : {}),
            ...(d.Engine?.Labels !== undefined ? { Engine: { Labels: d.Engine.Labels } } : {}),
          },
        }
      : {}),
    Status: { State: n.Status.State, ...(n.Status.Addr !== undefined ? { Addr: n.Status.Addr } : {}) },
  };
}
