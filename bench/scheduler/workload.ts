// The scheduler benchmark's cluster and services: a mix of constraints, spread preferences,
// reservations, max-replicas and image platforms, sized so that every task fits.

import type { PendingTask, SchedulerNode, TaskSpec } from '../../scheduler/index.js';

export interface Workload {
  readonly nodes: SchedulerNode[];
  readonly pending: PendingTask[];
}

const ZONES = ['a', 'b', 'c'];
const RACKS_PER_ZONE = 8;
const MANAGERS = 3;

export function makeNodes(count: number): SchedulerNode[] {
  const nodes: SchedulerNode[] = [];
  for (let i = 0; i < count; i++) {
    const zone = ZONES[i % ZONES.length]!;
    nodes.push({
      ID: `node-${i.toString().padStart(6, '0')}`,
      Spec: {
        Role: i < MANAGERS ? 'manager' : 'worker',
        // 1 in 100 drained, 1 in 97 down: the filters have something to refuse.
        Availability: i % 100 === 99 ? 'drain' : 'active',
        Labels: { zone, rack: `${zone}${Math.floor(i / ZONES.length) % RACKS_PER_ZONE}` },
      },
      Description: {
        Hostname: `host-${i}`,
        Platform: { OS: 'linux', Architecture: i % 10 === 7 ? 'aarch64' : 'x86_64' },
        Resources: { NanoCPUs: 8e9, MemoryBytes: 32 * 2 ** 30 },
        Engine: { Labels: { storage: i % 2 === 0 ? 'ssd' : 'hdd' } },
      },
      Status: { State: i % 97 === 96 ? 'down' : 'ready' },
    });
  }
  return nodes;
}

function serviceSpec(s: number): TaskSpec {
  const constraints = [[], ['node.role!=manager'], ['node.labels.zone!=c'], ['engine.labels.storage==ssd', 'node.platform.os==linux']][s % 4]!;
  const preferences = [
    [],
    [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }],
    [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }, { Spread: { SpreadDescriptor: 'node.labels.rack' } }],
  ][s % 3]!;
  const platforms =
    s % 10 === 9
      ? [{ OS: 'linux', Architecture: 'amd64' }]
      : [
          { OS: 'linux', Architecture: 'amd64' },
          { OS: 'linux', Architecture: 'arm64' },
        ];
  return {
    Resources: { Reservations: { NanoCPUs: 1e7, MemoryBytes: 64 * 2 ** 20 } },
    Placement: {
      Constraints: constraints,
      Preferences: preferences,
      Platforms: platforms,
      ...(s % 5 === 0 ? { MaxReplicas: 20 } : {}),
    },
  };
}

export function makeWorkload(nodeCount: number, services: number, tasks: number): Workload {
  const pending: PendingTask[] = [];
  const perService = Math.ceil(tasks / services);
  for (let s = 0; s < services && pending.length < tasks; s++) {
    const spec = serviceSpec(s);
    const ServiceID = `svc-${s.toString().padStart(4, '0')}`;
    for (let k = 0; k < perService && pending.length < tasks; k++) {
      pending.push({ ID: `${ServiceID}-task-${k}`, ServiceID, SpecVersion: { Index: 1 }, Spec: spec });
    }
  }
  return { nodes: makeNodes(nodeCount), pending };
}
