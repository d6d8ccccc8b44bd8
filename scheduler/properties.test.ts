// Properties of a scheduling pass over generated clusters and services, checked against a plain
// re-statement of the rules (not the scheduler's own code): no node over its resources, every
// filter holds for every decision, a task is left pending only when no node could take it, the
// reason counts every node once, spread and preferences come out even, and the outcome does not
// depend on input order. A failing run prints its seed; `fc.assert(..., { seed, path })` replays it.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  nodeMatches,
  parseConstraints,
  platformSupported,
  schedule,
  type GenericResource,
  type PendingTask,
  type PlacedTask,
  type Placement,
  type SchedulerNode,
  type SchedulerResult,
} from './index.js';
import { countByNode, CPU, GiB, node, placed, tasks } from './testing/builders.js';

const RUNS = 100;

// ---- generators -------------------------------------------------------------------------------

const nodeArb = fc.record({
  role: fc.constantFrom('manager', 'worker', 'worker'),
  availability: fc.constantFrom('active', 'active', 'active', 'drain', 'pause'),
  state: fc.constantFrom('ready', 'ready', 'ready', 'down'),
  zone: fc.constantFrom('a', 'b', 'c', undefined),
  rack: fc.constantFrom('r1', 'r2'),
  disk: fc.constantFrom('ssd', 'hdd', undefined),
  arch: fc.constantFrom('x86_64', 'x86_64', 'aarch64'),
  cpus: fc.integer({ min: 1, max: 8 }),
  memGiB: fc.integer({ min: 1, max: 8 }),
  gpus: fc.integer({ min: 0, max: 2 }),
  namedGpus: fc.boolean(),
});

type Generated<A> = A extends fc.Arbitrary<infer T> ? T : never;

function buildNodes(specs: Generated<typeof nodeArb>[]): SchedulerNode[] {
  return specs.map((s, i) =>
    node(`n${String(i).padStart(2, '0')}`, {
      role: s.role as 'manager' | 'worker',
      availability: s.availability as 'active' | 'drain' | 'pause',
      state: s.state as 'ready' | 'down',
      labels: { ...(s.zone === undefined ? {} : { zone: s.zone }), rack: s.rack },
      engineLabels: s.disk === undefined ? {} : { disk: s.disk },
      platform: { OS: 'linux', Architecture: s.arch },
      resources: {
        NanoCPUs: s.cpus * CPU,
        MemoryBytes: s.memGiB * GiB,
        GenericResources:
          s.gpus === 0
            ? []
            : s.namedGpus
              ? Array.from({ length: s.gpus }, (_, g) => ({ NamedResourceSpec: { Kind: 'gpu', Value: `GPU-${i}-${g}` } }))
              : [{ DiscreteResourceSpec: { Kind: 'gpu', Value: s.gpus } }],
      },
    }),
  );
}

const CONSTRAINTS = ['node.role!=manager', 'node.role==worker', 'node.labels.zone==a', 'node.labels.zone!=b', 'engine.labels.disk==ssd', 'node.platform.arch==x86_64', 'node.labels.rack!=r2'];

const serviceArb = fc.record({
  count: fc.integer({ min: 1, max: 14 }),
  cpu: fc.constantFrom(0, 0, 0.5 * CPU, 1 * CPU),
  mem: fc.constantFrom(0, 0, 512 * 2 ** 20, 1 * GiB),
  gpu: fc.constantFrom(0, 0, 0, 1),
  constraints: fc.subarray(CONSTRAINTS, { maxLength: 2 }),
  prefs: fc.constantFrom([], ['zone'], ['zone', 'rack'], ['rack']),
  maxReplicas: fc.constantFrom(0, 0, 1, 2, 3),
  platforms: fc.constantFrom([], [{ OS: 'linux', Architecture: 'amd64' }], [{ OS: 'linux', Architecture: 'arm64' }, { OS: 'linux', Architecture: 'amd64' }]),
  hostPort: fc.constantFrom(0, 0, 0, 8080, 9090),
});

function buildTasks(services: Generated<typeof serviceArb>[], prefix = 'svc'): PendingTask[] {
  return services.flatMap((s, i) => {
    const placement: Placement = {
      Constraints: s.constraints,
      Preferences: s.prefs.map((p) => ({ Spread: { SpreadDescriptor: `node.labels.${p}` } })),
      MaxReplicas: s.maxReplicas,
      Platforms: s.platforms,
    };
    return tasks(`${prefix}${i}`, s.count, {
      reservations: {
        NanoCPUs: s.cpu,
        MemoryBytes: s.mem,
        GenericResources: s.gpu > 0 ? [{ DiscreteResourceSpec: { Kind: 'gpu', Value: s.gpu } }] : [],
      },
      placement,
      ...(s.hostPort > 0 ? { ports: [{ Protocol: 'tcp', PublishedPort: s.hostPort, TargetPort: 80, PublishMode: 'host' }] } : {}),
    });
  });
}

/** A cluster that already runs tasks: the output of an earlier pass, turned into placed tasks. */
const clusterArb = fc
  .record({
    nodes: fc.array(nodeArb, { minLength: 0, maxLength: 40, size: 'max' }),
    earlier: fc.array(serviceArb, { maxLength: 2 }),
    pending: fc.array(serviceArb, { minLength: 1, maxLength: 4 }),
  })
  .map(({ nodes, earlier, pending }) => {
    const builtNodes = buildNodes(nodes);
    const earlierTasks = buildTasks(earlier, 'old');
    const first = schedule({ nodes: builtNodes, placedTasks: [], pendingTasks: earlierTasks });
    const placedTasks: PlacedTask[] = earlierTasks
      .filter((t) => first.assignments.has(t.ID))
      .map((t) => ({
        ...t,
        NodeID: first.assignments.get(t.ID)!,
        DesiredState: 'running' as const,
        ...(first.genericResources.has(t.ID) ? { AssignedGenericResources: first.genericResources.get(t.ID)! } : {}),
      }));
    return { nodes: builtNodes, placedTasks, pendingTasks: buildTasks(pending) };
  });

// ---- the rules, restated ----------------------------------------------------------------------

interface NodeUse {
  cpu: number;
  mem: number;
  gpu: number;
  ports: Set<string>;
  byService: Map<string, number>;
}

function gpuOf(r: { GenericResources?: readonly GenericResource[] } | undefined): number {
  return (r?.GenericResources ?? []).reduce((sum, g) => sum + (g.DiscreteResourceSpec?.Value ?? (g.NamedResourceSpec === undefined ? 0 : 1)), 0);
}

function hostPorts(t: PendingTask | PlacedTask): string[] {
  return (t.Endpoint?.Ports ?? []).filter((p) => p.PublishMode === 'host' && p.PublishedPort).map((p) => `${p.PublishedPort}/${p.Protocol ?? 'tcp'}`);
}

/** Final use of every node: tasks already placed plus the pass's assignments. */
function finalUse(nodes: readonly SchedulerNode[], placedTasks: readonly PlacedTask[], pending: readonly PendingTask[], result: SchedulerResult) {
  const use = new Map<string, NodeUse>(nodes.map((n) => [n.ID, { cpu: 0, mem: 0, gpu: 0, ports: new Set(), byService: new Map() }]));
  const add = (t: PendingTask | PlacedTask, nodeId: string) => {
    const u = use.get(nodeId)!;
    const r = t.Spec.Resources?.Reservations;
    u.cpu += r?.NanoCPUs ?? 0;
    u.mem += r?.MemoryBytes ?? 0;
    u.gpu += gpuOf(r);
    for (const p of hostPorts(t)) u.ports.add(p);
    u.byService.set(t.ServiceID, (u.byService.get(t.ServiceID) ?? 0) + 1);
  };
  for (const t of placedTasks) add(t, t.NodeID);
  for (const t of pending) {
    const at = result.assignments.get(t.ID);
    if (at !== undefined) add(t, at);
  }
  return use;
}

function staticOk(n: SchedulerNode, t: PendingTask): boolean {
  return (
    n.Status.State === 'ready' &&
    n.Spec.Availability === 'active' &&
    nodeMatches(parseConstraints(t.Spec.Placement?.Constraints ?? []), n) &&
    platformSupported(t.Spec.Placement?.Platforms ?? [], n.Description?.Platform)
  );
}

// ---- properties -------------------------------------------------------------------------------

describe('scheduling properties', () => {
  it('never puts a node over its resources', () => {
    fc.assert(
      fc.property(clusterArb, ({ nodes, placedTasks, pendingTasks }) => {
        const result = schedule({ nodes, placedTasks, pendingTasks });
        const use = finalUse(nodes, placedTasks, pendingTasks, result);
        for (const n of nodes) {
          const u = use.get(n.ID)!;
          const cap = n.Description!.Resources!;
          expect(u.cpu).toBeLessThanOrEqual(cap.NanoCPUs!);
          expect(u.mem).toBeLessThanOrEqual(cap.MemoryBytes!);
          expect(u.gpu).toBeLessThanOrEqual(gpuOf(cap));
        }
        // Named units: each held by at most one task, and only on the node that has it.
        const holder = new Map<string, string>();
        const held = [
          ...placedTasks.map((t) => [t.NodeID, t.AssignedGenericResources ?? []] as const),
          ...[...result.genericResources].map(([id, units]) => [result.assignments.get(id)!, units] as const),
        ];
        for (const [nodeId, units] of held) {
          for (const unit of units) {
            if (unit.NamedResourceSpec === undefined) continue;
            expect(unit.NamedResourceSpec.Value.startsWith(`GPU-${Number(nodeId.slice(1))}-`)).toBe(true);
            expect(holder.has(unit.NamedResourceSpec.Value)).toBe(false);
            holder.set(unit.NamedResourceSpec.Value, nodeId);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('only places on ready, active nodes that meet constraints, platform, max replicas and host ports', () => {
    fc.assert(
      fc.property(clusterArb, ({ nodes, placedTasks, pendingTasks }) => {
        const result = schedule({ nodes, placedTasks, pendingTasks });
        const byId = new Map(nodes.map((n) => [n.ID, n]));
        const use = finalUse(nodes, placedTasks, pendingTasks, result);
        const portsSeen = new Map<string, number>();
        for (const t of placedTasks) for (const p of hostPorts(t)) portsSeen.set(`${t.NodeID} ${p}`, (portsSeen.get(`${t.NodeID} ${p}`) ?? 0) + 1);
        for (const t of pendingTasks) {
          const at = result.assignments.get(t.ID);
          if (at === undefined) continue;
          const n = byId.get(at)!;
          expect(staticOk(n, t)).toBe(true);
          const max = t.Spec.Placement?.MaxReplicas ?? 0;
          if (max > 0) expect(use.get(at)!.byService.get(t.ServiceID)).toBeLessThanOrEqual(max);
          for (const p of hostPorts(t)) {
            const key = `${at} ${p}`;
            expect(portsSeen.has(key)).toBe(false);
            portsSeen.set(key, 1);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('leaves a task pending only when no node could take it, and its reason counts every node once', () => {
    fc.assert(
      fc.property(clusterArb, ({ nodes, placedTasks, pendingTasks }) => {
        const result = schedule({ nodes, placedTasks, pendingTasks });
        expect(result.assignments.size + result.unplaced.size).toBe(pendingTasks.length);
        const use = finalUse(nodes, placedTasks, pendingTasks, result);
        for (const t of pendingTasks) {
          const reason = result.unplaced.get(t.ID);
          if (reason === undefined) continue;
          expect(result.assignments.has(t.ID)).toBe(false);
          expect(reason.startsWith('no suitable node')).toBe(true);
          const counted = [...reason.matchAll(/ on (\d+) nodes?/g)].reduce((sum, m) => sum + Number(m[1]), 0);
          expect(counted).toBe(nodes.length);
          const r = t.Spec.Resources?.Reservations;
          for (const n of nodes) {
            const u = use.get(n.ID)!;
            const cap = n.Description!.Resources!;
            const max = t.Spec.Placement?.MaxReplicas ?? 0;
            const fits =
              staticOk(n, t) &&
              (max === 0 || (u.byService.get(t.ServiceID) ?? 0) < max) &&
              hostPorts(t).every((p) => !u.ports.has(p)) &&
              u.cpu + (r?.NanoCPUs ?? 0) <= cap.NanoCPUs! &&
              u.mem + (r?.MemoryBytes ?? 0) <= cap.MemoryBytes! &&
              u.gpu + gpuOf(r) <= gpuOf(cap);
            expect(fits, `${t.ID} left pending although ${n.ID} could take it`).toBe(false);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('is deterministic: same input, in any order, gives the same decisions', () => {
    fc.assert(
      fc.property(
        clusterArb.chain((c) =>
          fc.record({
            c: fc.constant(c),
            nodeOrder: fc.shuffledSubarray(c.nodes, { minLength: c.nodes.length, maxLength: c.nodes.length }),
          }),
        ),
        ({ c, nodeOrder }) => {
          const once = schedule(c);
          const again = schedule(c);
          const shuffled = schedule({ ...c, nodes: nodeOrder });
          expect([...again.assignments]).toEqual([...once.assignments]);
          expect([...again.unplaced]).toEqual([...once.unplaced]);
          expect(new Map([...shuffled.assignments].sort())).toEqual(new Map([...once.assignments].sort()));
          expect(new Map([...shuffled.unplaced].sort())).toEqual(new Map([...once.unplaced].sort()));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('spreads each service within 1 task per node when nodes are equal', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 4 }), (nodeCount, counts) => {
        const nodes = Array.from({ length: nodeCount }, (_, i) => node(`n${i}`));
        const pending = counts.flatMap((k, s) => tasks(`s${s}`, k));
        const result = schedule({ nodes, placedTasks: [], pendingTasks: pending });
        expect(result.unplaced.size).toBe(0);
        counts.forEach((_, s) => {
          const mine = new Map([...result.assignments].filter(([id]) => id.startsWith(`s${s}.`)));
          const per = nodes.map((n) => countByNode(mine).get(n.ID) ?? 0);
          expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
        });
        const totals = nodes.map((n) => countByNode(result.assignments).get(n.ID) ?? 0);
        expect(Math.max(...totals) - Math.min(...totals)).toBeLessThanOrEqual(1);
      }),
      { numRuns: RUNS },
    );
  });

  it('gives each task, in decision order, to the node with fewest service tasks, then fewest tasks, then lowest ID, among nodes with room', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ mine: fc.integer({ min: 0, max: 3 }), others: fc.integer({ min: 0, max: 3 }), roomGiB: fc.integer({ min: 0, max: 4 }) }), {
          minLength: 1,
          maxLength: 60,
          size: 'max',
        }),
        fc.integer({ min: 1, max: 80 }),
        (existing, count) => {
          const nodes = existing.map((e, i) => node(`n${String(i).padStart(2, '0')}`, { resources: { NanoCPUs: CPU, MemoryBytes: e.roomGiB * GiB } }));
          const placedTasks = existing.flatMap((e, i) => [
            ...Array.from({ length: e.mine }, (_, j) => placed(`web.old${i}-${j}`, 'web', nodes[i]!.ID)),
            ...Array.from({ length: e.others }, (_, j) => placed(`db.old${i}-${j}`, 'db', nodes[i]!.ID)),
          ]);
          const result = schedule({ nodes, placedTasks, pendingTasks: tasks('web', count, { reservations: { MemoryBytes: GiB } }) });
          const room = existing.map((e) => e.roomGiB);
          const totalRoom = room.reduce((a, b) => a + b, 0);
          expect(result.assignments.size).toBe(Math.min(count, totalRoom));
          const mine = existing.map((e) => e.mine);
          const all = existing.map((e) => e.mine + e.others);
          for (const nodeId of result.assignments.values()) {
            let best = -1;
            for (let i = 0; i < nodes.length; i++) {
              if (room[i] === 0) continue;
              if (best < 0 || mine[i]! < mine[best]! || (mine[i] === mine[best] && all[i]! < all[best]!)) best = i;
            }
            expect(nodeId).toBe(nodes[best]!.ID);
            mine[best]!++;
            all[best]!++;
            room[best]!--;
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('splits tasks evenly over label values, level by level, when capacity allows', () => {
    const layout = fc.array(fc.record({ zone: fc.constantFrom('a', 'b', 'c', 'd'), rack: fc.constantFrom('r1', 'r2', 'r3') }), { minLength: 1, maxLength: 16 });
    fc.assert(
      fc.property(layout, fc.integer({ min: 1, max: 50 }), (labels, count) => {
        const nodes = labels.map((l, i) => node(`n${i}`, { labels: l }));
        const pending = tasks('web', count, { placement: { Preferences: ['zone', 'rack'].map((k) => ({ Spread: { SpreadDescriptor: `node.labels.${k}` } })) } });
        const result = schedule({ nodes, placedTasks: [], pendingTasks: pending });
        expect(result.unplaced.size).toBe(0);
        const perZone = new Map<string, number>();
        const perRack = new Map<string, Map<string, number>>();
        for (const l of labels) {
          perZone.set(l.zone, 0);
          if (!perRack.has(l.zone)) perRack.set(l.zone, new Map());
          perRack.get(l.zone)!.set(l.rack, 0);
        }
        const byId = new Map(nodes.map((n, i) => [n.ID, labels[i]!]));
        for (const id of result.assignments.values()) {
          const l = byId.get(id)!;
          perZone.set(l.zone, perZone.get(l.zone)! + 1);
          perRack.get(l.zone)!.set(l.rack, perRack.get(l.zone)!.get(l.rack)! + 1);
        }
        const spreadOf = (m: Map<string, number>) => Math.max(...m.values()) - Math.min(...m.values());
        expect(spreadOf(perZone)).toBeLessThanOrEqual(1);
        for (const racks of perRack.values()) expect(spreadOf(racks)).toBeLessThanOrEqual(1);
      }),
      { numRuns: RUNS },
    );
  });
});
