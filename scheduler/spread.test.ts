// How the scheduler chooses among nodes that all pass the filters: spread by tasks of the
// service, then by all tasks, and split over label values for placement preferences.

import { describe, expect, it } from 'vitest';
import { schedule, type PendingTask, type PlacedTask, type SchedulerNode } from './index.js';
import { waterFill } from './spread-tree.js';
import { countByNode, GiB, CPU, node, placed, tasks } from './testing/builders.js';

function run(nodes: SchedulerNode[], pending: PendingTask[], placedTasks: PlacedTask[] = []) {
  return schedule({ nodes, placedTasks, pendingTasks: pending });
}

function byLabel(assignments: ReadonlyMap<string, string>, nodes: SchedulerNode[], label: string): Map<string, number> {
  const labelOf = new Map(nodes.map((n) => [n.ID, n.Spec.Labels?.[label] ?? '']));
  const counts = new Map<string, number>();
  for (const id of assignments.values()) counts.set(labelOf.get(id)!, (counts.get(labelOf.get(id)!) ?? 0) + 1);
  return counts;
}

const spread = (...labels: string[]) => ({ Preferences: labels.map((l) => ({ Spread: { SpreadDescriptor: `node.labels.${l}` } })) });

describe('spread without preferences', () => {
  it('spreads a service evenly over equal nodes', () => {
    const r = run([node('a'), node('b'), node('c')], tasks('web', 7));
    expect([...countByNode(r.assignments).values()].sort()).toEqual([2, 2, 3]);
  });

  it('prefers nodes with fewer tasks of the service, then fewer tasks overall', () => {
    const existing = [
      placed('web.0', 'web', 'a'),
      placed('web.00', 'web', 'a'),
      ...[1, 2, 3, 4, 5].map((i) => placed(`db.${i}`, 'db', 'b')),
    ];
    const r = run([node('a'), node('b'), node('c')], tasks('web', 3), existing);
    // c (0 web, 0 total), then b (0 web, 5 total), then c again (1 web, 1 total) before a (2 web).
    expect([...r.assignments.values()]).toEqual(['c', 'b', 'c']);
  });

  it('breaks ties by total tasks, then by node ID', () => {
    const existing = [placed('x.1', 'x', 'a'), placed('x.2', 'x', 'a'), placed('x.3', 'x', 'c')];
    expect(run([node('a'), node('b'), node('c')], tasks('web', 1), existing).assignments.get('web.1')).toBe('b');
    expect(run([node('b'), node('a')], tasks('web', 1)).assignments.get('web.1')).toBe('a');
  });

  it('decides a batch against one view: a later service sees the tasks an earlier one just got', () => {
    const r = run([node('n1'), node('n2')], [...tasks('alpha', 1), ...tasks('beta', 1)]);
    expect(r.assignments).toEqual(
      new Map([
        ['alpha.1', 'n1'],
        ['beta.1', 'n2'],
      ]),
    );
  });

  it('spreads two spec versions of one service as one service (a rolling update in flight)', () => {
    const r = run([node('a'), node('b'), node('c'), node('d')], [...tasks('web', 2, { version: 1 }), ...tasks('web', 2, { version: 2 }).map((t) => ({ ...t, ID: `${t.ID}-v2` }))]);
    expect(new Set(r.assignments.values()).size).toBe(4);
  });
});

describe('placement preferences (spread=node.labels.<key>)', () => {
  it('splits tasks evenly over label values, however many nodes each value has', () => {
    const nodes = [node('a1', { labels: { zone: 'a' } }), ...['b1', 'b2', 'b3'].map((id) => node(id, { labels: { zone: 'b' } }))];
    const r = run(nodes, tasks('web', 6, { placement: spread('zone') }));
    expect(byLabel(r.assignments, nodes, 'zone')).toEqual(new Map([['a', 3], ['b', 3]]));
    expect(countByNode(r.assignments).get('a1')).toBe(3);
  });

  it('counts the tasks already under each value', () => {
    const nodes = [node('a1', { labels: { zone: 'a' } }), node('b1', { labels: { zone: 'b' } })];
    const existing = [1, 2, 3, 4].map((i) => placed(`web.0${i}`, 'web', 'a1'));
    const r = run(nodes, tasks('web', 6, { placement: spread('zone') }), existing);
    expect(countByNode(r.assignments)).toEqual(new Map([['b1', 5], ['a1', 1]]));
  });

  it('nests preferences in order: zones first, then racks within each zone', () => {
    const nodes = [
      node('a-r1-1', { labels: { zone: 'a', rack: 'r1' } }),
      node('a-r1-2', { labels: { zone: 'a', rack: 'r1' } }),
      node('a-r1-3', { labels: { zone: 'a', rack: 'r1' } }),
      node('a-r2-1', { labels: { zone: 'a', rack: 'r2' } }),
      node('b-r3-1', { labels: { zone: 'b', rack: 'r3' } }),
      node('b-r4-1', { labels: { zone: 'b', rack: 'r4' } }),
      node('b-r4-2', { labels: { zone: 'b', rack: 'r4' } }),
    ];
    const r = run(nodes, tasks('web', 8, { placement: spread('zone', 'rack') }));
    expect(byLabel(r.assignments, nodes, 'zone')).toEqual(new Map([['a', 4], ['b', 4]]));
    expect(byLabel(r.assignments, nodes, 'rack')).toEqual(new Map([['r1', 2], ['r2', 2], ['r3', 2], ['r4', 2]]));
  });

  it('puts nodes without the label under their own value', () => {
    const nodes = [node('a1', { labels: { zone: 'a' } }), node('x1'), node('x2')];
    const r = run(nodes, tasks('web', 4, { placement: spread('zone') }));
    expect(countByNode(r.assignments).get('a1')).toBe(2);
  });

  it("gives a full branch's share to the others", () => {
    const nodes = [
      node('a1', { labels: { zone: 'a' }, resources: { NanoCPUs: 4 * CPU, MemoryBytes: 1 * GiB } }),
      node('b1', { labels: { zone: 'b' } }),
      node('c1', { labels: { zone: 'c' } }),
    ];
    const r = run(nodes, tasks('web', 9, { reservations: { MemoryBytes: GiB }, placement: spread('zone') }));
    expect(r.unplaced.size).toBe(0);
    expect(countByNode(r.assignments)).toEqual(new Map([['a1', 1], ['b1', 4], ['c1', 4]]));
  });

  it('spreads over engine labels too', () => {
    const nodes = [node('s1', { engineLabels: { disk: 'ssd' } }), node('s2', { engineLabels: { disk: 'ssd' } }), node('h1', { engineLabels: { disk: 'hdd' } })];
    const r = run(nodes, tasks('web', 4, { placement: { Preferences: [{ Spread: { SpreadDescriptor: 'engine.labels.disk' } }] } }));
    expect(countByNode(r.assignments).get('h1')).toBe(2);
  });
});

describe('determinism', () => {
  it('gives the same decisions whatever the order of nodes and services in the input', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'].map((id, i) => node(id, { labels: { zone: i % 2 === 0 ? 'a' : 'b' } }));
    const pending = [...tasks('web', 7, { placement: spread('zone') }), ...tasks('api', 4), ...tasks('db', 3, { placement: { MaxReplicas: 1 } })];
    const first = run(nodes, pending);
    const second = run([...nodes].reverse(), [...pending.filter((t) => t.ServiceID !== 'web'), ...pending.filter((t) => t.ServiceID === 'web')]);
    expect(new Map([...second.assignments].sort())).toEqual(new Map([...first.assignments].sort()));
  });
});

describe('waterFill', () => {
  it('raises the emptiest branches first', () => {
    expect(waterFill([0, 0, 0], 7)).toEqual([3, 2, 2]);
    expect(waterFill([4, 0], 6)).toEqual([1, 5]);
    expect(waterFill([4, 0], 3)).toEqual([0, 3]);
    expect(waterFill([2, 5, 0], 4)).toEqual([1, 0, 3]);
    expect(waterFill([1, 1], 0)).toEqual([0, 0]);
    expect(waterFill([3], 2)).toEqual([2]);
  });
});
