// Each filter, seen as a user sees it: where tasks land, and the reason on the ones that stay pending.

import { describe, expect, it } from 'vitest';
import { schedule, SchedulerInputError, type PendingTask, type PlacedTask, type SchedulerNode } from './index.js';
import { countByNode, CPU, GiB, node, placed, tasks } from './testing/builders.js';

function run(nodes: SchedulerNode[], pending: PendingTask[], placedTasks: PlacedTask[] = []) {
  return schedule({ nodes, placedTasks, pendingTasks: pending });
}

describe('ready filter', () => {
  it('places nothing on down, disconnected, drained or paused nodes, and says so', () => {
    const nodes = [
      node('up'),
      node('down1', { state: 'down' }),
      node('down2', { state: 'down' }),
      node('gone', { state: 'disconnected' }),
      node('drained', { availability: 'drain' }),
      node('paused', { availability: 'pause' }),
    ];
    const r = run(nodes, tasks('web', 3, { placement: { MaxReplicas: 1 } }));
    expect([...r.assignments.values()]).toEqual(['up']);
    expect(r.unplaced.get('web.2')).toBe(
      'no suitable node (node down on 2 nodes; node disconnected on 1 node; node drained on 1 node; node paused on 1 node; max replicas per node (1) reached on 1 node)',
    );
  });

  it('explains an empty cluster', () => {
    expect(run([], tasks('web', 1)).unplaced.get('web.1')).toBe('no suitable node (no nodes in the cluster)');
  });
});

describe('resources filter', () => {
  it('counts reservations of tasks already on the node and of earlier decisions in the pass', () => {
    const nodes = [node('a', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 4 * GiB } }), node('b', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 2 * GiB } })];
    const existing = [placed('old.1', 'old', 'a', { reservations: { MemoryBytes: 2 * GiB } })];
    const r = run(nodes, tasks('web', 3, { reservations: { MemoryBytes: 1 * GiB } }), existing);
    // a has 2 GiB left, b has 2 GiB: four 1 GiB tasks would fit, three are asked.
    expect(r.assignments.size).toBe(3);
    const more = run(nodes, tasks('web', 5, { reservations: { MemoryBytes: 1 * GiB } }), existing);
    expect(more.assignments.size).toBe(4);
    expect(more.unplaced.get('web.5')).toBe('no suitable node (insufficient memory on 2 nodes)');
  });

  it('names CPU, memory and generic resources separately', () => {
    const nodes = [
      node('small-cpu', { resources: { NanoCPUs: 0.5 * CPU, MemoryBytes: 8 * GiB } }),
      node('small-mem', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 256 * 2 ** 20 } }),
      node('no-gpu', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 8 * GiB } }),
      node('gpu', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 8 * GiB, GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 2 } }] } }),
    ];
    const r = run(nodes, tasks('ml', 2, { reservations: { NanoCPUs: 1 * CPU, MemoryBytes: 1 * GiB, GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 2 } }] } }));
    expect(r.assignments.get('ml.1')).toBe('gpu');
    expect(r.unplaced.get('ml.2')).toBe(
      'no suitable node (insufficient generic resource gpu on 2 nodes; insufficient CPU on 1 node; insufficient memory on 1 node)',
    );
  });

  it('counts named generic resources as one unit each', () => {
    const gpus = [1, 2, 3].map((i) => ({ NamedResourceSpec: { Kind: 'gpu', Value: `GPU-${i}` } }));
    const nodes = [node('gpu', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 8 * GiB, GenericResources: gpus } })];
    const r = run(nodes, tasks('ml', 4, { reservations: { GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 1 } }] } }));
    expect(r.assignments.size).toBe(3);
    expect(r.unplaced.get('ml.4')).toBe('no suitable node (insufficient generic resource gpu on 1 node)');
  });

  it('gives each task its own named units, skipping those held by tasks already running', () => {
    const gpus = ['GPU-c', 'GPU-a', 'GPU-b', 'GPU-d'].map((Value) => ({ NamedResourceSpec: { Kind: 'gpu', Value } }));
    const nodes = [node('n1', { resources: { NanoCPUs: 4 * CPU, MemoryBytes: 8 * GiB, GenericResources: [...gpus, { DiscreteResourceSpec: { Kind: 'fpga', Value: 3 } }] } })];
    const running: PlacedTask = {
      ...placed('old.1', 'old', 'n1', { reservations: { GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 1 } }] } }),
      AssignedGenericResources: [{ NamedResourceSpec: { Kind: 'gpu', Value: 'GPU-a' } }],
    };
    const reserve = { GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 1 } }, { DiscreteResourceSpec: { Kind: 'fpga', Value: 1 } }] };
    const r = run(nodes, tasks('ml', 4, { reservations: reserve }), [running]);
    expect(r.assignments.size).toBe(3);
    expect(r.genericResources.get('ml.1')).toEqual([{ NamedResourceSpec: { Kind: 'gpu', Value: 'GPU-b' } }, { DiscreteResourceSpec: { Kind: 'fpga', Value: 1 } }]);
    expect(r.genericResources.get('ml.2')![0]).toEqual({ NamedResourceSpec: { Kind: 'gpu', Value: 'GPU-c' } });
    expect(r.genericResources.get('ml.3')![0]).toEqual({ NamedResourceSpec: { Kind: 'gpu', Value: 'GPU-d' } });
    expect(r.genericResources.has('ml.4')).toBe(false);
    expect(r.unplaced.get('ml.4')).toBe('no suitable node (insufficient generic resource gpu on 1 node)');
    expect(run(nodes, tasks('web', 1)).genericResources.size).toBe(0);
  });

  it('lets tasks without reservations run anywhere, even on nodes that report no resources', () => {
    const bare: SchedulerNode = { ID: 'bare', Spec: { Role: 'worker', Availability: 'active' }, Status: { State: 'ready' } };
    expect(run([bare], tasks('web', 2)).assignments.size).toBe(2);
    expect(run([bare], tasks('web', 1, { reservations: { NanoCPUs: 1 } })).unplaced.get('web.1')).toBe(
      'no suitable node (insufficient CPU on 1 node)',
    );
  });
});

describe('constraint filter', () => {
  it('places only where every constraint holds and names the first one that fails', () => {
    const nodes = [
      node('m1', { role: 'manager', labels: { zone: 'a' } }),
      node('w1', { labels: { zone: 'a' } }),
      node('w2', { labels: { zone: 'b' } }),
      node('w3', { labels: { zone: 'b' } }),
    ];
    const r = run(nodes, tasks('web', 2, { placement: { Constraints: ['node.labels.zone==a', 'node.role!=manager'], MaxReplicas: 1 } }));
    expect([...r.assignments.values()]).toEqual(['w1']);
    expect(r.unplaced.get('web.2')).toBe(
      'no suitable node (constraint node.labels.zone==a not met on 2 nodes; constraint node.role!=manager not met on 1 node; max replicas per node (1) reached on 1 node)',
    );
  });

  it('matches engine labels, hostnames and node ids', () => {
    const nodes = [node('n1', { engineLabels: { disk: 'ssd' }, hostname: 'alpha' }), node('n2', { hostname: 'beta' })];
    expect([...run(nodes, tasks('a', 2, { placement: { Constraints: ['engine.labels.disk==ssd'] } })).assignments.values()]).toEqual(['n1', 'n1']);
    expect([...run(nodes, tasks('b', 2, { placement: { Constraints: ['node.hostname!=alpha'] } })).assignments.values()]).toEqual(['n2', 'n2']);
    expect([...run(nodes, tasks('c', 1, { placement: { Constraints: ['node.id==n2'] } })).assignments.values()]).toEqual(['n2']);
  });

  it('leaves tasks with a constraint that cannot parse pending, with the parse error as reason', () => {
    const r = run([node('n1')], tasks('web', 2, { placement: { Constraints: ['node.labels.zone=a'] } }));
    expect(r.assignments.size).toBe(0);
    expect(r.unplaced.get('web.1')).toBe("invalid placement constraint 'node.labels.zone=a': expected one operator from ==, != (e.g. node.labels.zone==a)");
  });
});

describe('platform filter', () => {
  it("places on nodes whose OS and architecture the image supports, x86_64 being amd64", () => {
    const nodes = [
      node('intel', { platform: { OS: 'linux', Architecture: 'x86_64' } }),
      node('arm', { platform: { OS: 'linux', Architecture: 'aarch64' } }),
      node('win', { platform: { OS: 'windows', Architecture: 'x86_64' } }),
    ];
    const amd64 = run(nodes, tasks('web', 2, { placement: { Platforms: [{ OS: 'linux', Architecture: 'amd64' }], MaxReplicas: 1 } }));
    expect([...amd64.assignments.values()]).toEqual(['intel']);
    expect(amd64.unplaced.get('web.2')).toBe(
      'no suitable node (image platform linux/amd64 not supported on 2 nodes; max replicas per node (1) reached on 1 node)',
    );
    const multi = run(nodes, tasks('web', 3, { placement: { Platforms: [{ OS: 'linux', Architecture: 'amd64' }, { OS: 'linux', Architecture: 'arm64' }], MaxReplicas: 1 } }));
    expect(new Set(multi.assignments.values())).toEqual(new Set(['intel', 'arm']));
    expect(multi.unplaced.get('web.3')).toContain('image platforms linux/amd64, linux/arm64 not supported on 1 node');
    const anyArch = run(nodes, tasks('web', 3, { placement: { Platforms: [{ OS: 'linux' }], MaxReplicas: 1 } }));
    expect(anyArch.assignments.size).toBe(2);
  });
});

describe('host ports filter', () => {
  const ports = [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] as const;

  it('puts one task per node when each publishes the same host port, and counts ports already in use', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const existing = [placed('other.1', 'other', 'c', { ports })];
    const r = run(nodes, tasks('web', 3, { ports }), existing);
    expect(new Set(r.assignments.values())).toEqual(new Set(['a', 'b']));
    expect(r.unplaced.get('web.3')).toBe('no suitable node (host-mode port 8080/tcp in use on 3 nodes)');
  });

  it('ignores ingress ports and tells udp from tcp', () => {
    const nodes = [node('a')];
    expect(run(nodes, tasks('web', 3, { ports: [{ PublishedPort: 8080, TargetPort: 80, PublishMode: 'ingress' }] })).assignments.size).toBe(3);
    const existing = [placed('dns.1', 'dns', 'a', { ports: [{ Protocol: 'udp', PublishedPort: 53, PublishMode: 'host' }] })];
    expect(run(nodes, tasks('tcpdns', 1, { ports: [{ Protocol: 'tcp', PublishedPort: 53, PublishMode: 'host' }] }), existing).assignments.size).toBe(1);
  });
});

describe('max replicas filter', () => {
  it('caps tasks of the service per node, counting tasks already there', () => {
    const nodes = [node('a'), node('b')];
    const existing = [placed('web.0', 'web', 'a'), placed('web.00', 'web', 'a')];
    const r = run(nodes, tasks('web', 3, { placement: { MaxReplicas: 2 } }), existing);
    expect(countByNode(r.assignments)).toEqual(new Map([['b', 2]]));
    expect(r.unplaced.get('web.3')).toBe('no suitable node (max replicas per node (2) reached on 2 nodes)');
  });

  it('does not count tasks that are being shut down', () => {
    const existing: PlacedTask[] = [{ ...placed('web.0', 'web', 'a'), DesiredState: 'shutdown' }];
    expect(run([node('a')], tasks('web', 1, { placement: { MaxReplicas: 1 } }), existing).assignments.get('web.1')).toBe('a');
  });
});

describe('tasks that name their node (global services)', () => {
  it('are placed on that node when it passes every filter, and otherwise say why', () => {
    const nodes = [node('a'), node('b', { availability: 'drain' }), node('c', { resources: { NanoCPUs: CPU, MemoryBytes: GiB } })];
    const pending = [
      ...tasks('g', 1, { nodeId: 'a', reservations: { MemoryBytes: 2 * GiB } }),
      { ...tasks('g', 1, { reservations: { MemoryBytes: 2 * GiB } })[0]!, ID: 'g.b', NodeID: 'b' },
      { ...tasks('g', 1, { reservations: { MemoryBytes: 2 * GiB } })[0]!, ID: 'g.c', NodeID: 'c' },
      { ...tasks('g', 1, { reservations: { MemoryBytes: 2 * GiB } })[0]!, ID: 'g.x', NodeID: 'x' },
    ];
    const r = run(nodes, pending);
    expect(r.assignments).toEqual(new Map([['g.1', 'a']]));
    expect(r.unplaced).toEqual(
      new Map([
        ['g.b', 'no suitable node (node drained on 1 node)'],
        ['g.c', 'no suitable node (insufficient memory on 1 node)'],
        ['g.x', 'no suitable node (node x is not in the cluster)'],
      ]),
    );
  });
});

describe('reason text', () => {
  it('lists refusals most frequent first, singular for one node', () => {
    const nodes = [
      node('a', { labels: { zone: 'b' } }),
      node('b', { labels: { zone: 'a' }, resources: { NanoCPUs: CPU, MemoryBytes: GiB } }),
      node('c', { labels: { zone: 'a' }, resources: { NanoCPUs: CPU, MemoryBytes: GiB } }),
      node('d', { labels: { zone: 'a' }, resources: { NanoCPUs: CPU, MemoryBytes: GiB } }),
      node('e', { labels: { zone: 'b' } }),
    ];
    const r = run(nodes, tasks('db', 1, { reservations: { MemoryBytes: 2 * GiB }, placement: { Constraints: ['node.labels.zone==a'] } }));
    expect(r.unplaced.get('db.1')).toBe('no suitable node (insufficient memory on 3 nodes; constraint node.labels.zone==a not met on 2 nodes)');
  });
});

describe('input the scheduler refuses', () => {
  it('throws a typed error for a node or a pending task listed twice', () => {
    expect(() => run([node('a'), node('a')], [])).toThrow('node a is listed twice');
    const twice = [...tasks('web', 1), ...tasks('web', 1)];
    let caught: unknown;
    try {
      run([node('a')], twice);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchedulerInputError);
    expect((caught as SchedulerInputError).code).toBe('INVALID_INPUT');
    expect((caught as Error).message).toBe('task web.1 is listed twice among the tasks to place');
    // One copy placed, the other left pending for want of room: still refused.
    const small = node('a', { resources: { NanoCPUs: CPU, MemoryBytes: GiB } });
    expect(() => run([small], [...tasks('db', 1, { reservations: { MemoryBytes: GiB } }), ...tasks('db', 1, { reservations: { MemoryBytes: GiB } })])).toThrow(
      'task db.1 is listed twice',
    );
  });

  it('ignores tasks on nodes that left the cluster', () => {
    const r = run([node('a', { resources: { NanoCPUs: CPU, MemoryBytes: GiB } })], tasks('web', 1, { reservations: { MemoryBytes: GiB } }), [
      placed('old.1', 'old', 'gone', { reservations: { MemoryBytes: GiB } }),
    ]);
    expect(r.assignments.get('web.1')).toBe('a');
  });
});
