// Convergence progress as the user sees it: per-slot bars, the verify wait, terminal redraw vs
// plain lines.
import { describe, expect, it } from 'vitest';
import { ProgressView, renderBar, snapshot, type ProgressService, type ProgressTask } from './progress.js';

const template = { ContainerSpec: { Image: 'busybox' } };
const service: ProgressService = { ID: 'svc', Spec: { Name: 'web', Mode: { Replicated: { Replicas: 3 } }, TaskTemplate: template } };
const task = (id: string, slot: number, state: string, extra: Partial<ProgressTask> = {}): ProgressTask => ({
  ID: id,
  ServiceID: 'svc',
  Slot: slot,
  NodeID: 'n1',
  DesiredState: 'running',
  CreatedAt: `2026-01-01T00:00:0${slot}Z`,
  Spec: template,
  Status: { State: state },
  ...extra,
});

describe('snapshot', () => {
  it('shows one bar per slot and counts running tasks', () => {
    const s = snapshot(service, [task('a', 1, 'running'), task('b', 2, 'preparing'), task('c', 3, 'pending', { NodeID: '' })], new Set(['n1']));
    expect(s.converged).toBe(false);
    expect(s.lines).toEqual([
      { id: 'overall progress', text: '1 out of 3 tasks' },
      { id: '1/3', text: `running   ${renderBar(9, 9)}` },
      { id: '2/3', text: `preparing ${renderBar(6, 9)}` },
      { id: '3/3', text: `pending   ${renderBar(3, 9)}` },
    ]);
    expect(renderBar(9, 9)).toBe(`[${'='.repeat(50)}>]`);
    expect(renderBar(3, 9)).toBe(`[${'='.repeat(16)}>${' '.repeat(34)}]`);
  });

  it('ignores tasks of an older template, shut down ones and those on down nodes; shows errors', () => {
    const old = task('old', 1, 'running', { Spec: { ContainerSpec: { Image: 'busybox:1' } } });
    const failed = task('f', 2, 'failed', { DesiredState: 'shutdown', Status: { State: 'failed', Err: 'task: non-zero exit (1)' } });
    const retry = task('r', 2, 'starting', { CreatedAt: '2026-01-01T00:01:00Z' });
    const elsewhere = task('x', 3, 'running', { NodeID: 'gone' });
    const s = snapshot(service, [old, failed, retry, elsewhere, task('e', 3, 'rejected', { Status: { State: 'rejected', Err: 'no suitable node' } })], new Set(['n1']));
    expect(s.lines.slice(1)).toEqual([
      { id: '1/3', text: '' },
      { id: '2/3', text: `starting  ${renderBar(8, 9)}` },
      { id: '3/3', text: 'no suitable node' },
    ]);
    expect(s.running).toBe(0);
  });

  it('counts a global service per node and says when every node runs it', () => {
    const g: ProgressService = { ID: 'svc', Spec: { Mode: { Global: {} }, TaskTemplate: template } };
    const s = snapshot(g, [task('a', 0, 'running', { NodeID: 'node-aaaaaaaaaaaaaaaa' }), task('b', 0, 'running', { NodeID: 'node-bbbbbbbbbbbbbbbb' })], new Set(['node-aaaaaaaaaaaaaaaa', 'node-bbbbbbbbbbbbbbbb']));
    expect(s.converged).toBe(true);
    expect(s.lines.map((l) => l.id)).toEqual(['overall progress', 'node-aaaaaaa', 'node-bbbbbbb']);
    expect(s.lines[0]!.text).toBe('2 out of 2 tasks');
  });

  it('says "rolling back update" during a rollback', () => {
    expect(snapshot(service, [], new Set(), true).lines[0]).toEqual({ id: 'rolling back update', text: '0 out of 3 tasks' });
  });
});

describe('ProgressView', () => {
  it('prints plain lines only when a line changes (not a terminal)', () => {
    const out: string[] = [];
    const v = new ProgressView((t) => out.push(t), false);
    v.update([{ id: 'overall progress', text: '0 out of 1 tasks' }, { id: '1/1', text: 'pending' }]);
    v.update([{ id: 'overall progress', text: '0 out of 1 tasks' }, { id: '1/1', text: 'running' }]);
    v.update([{ id: 'overall progress', text: '1 out of 1 tasks' }, { id: '1/1', text: 'running' }]);
    v.update([{ id: 'verify', text: 'Service web converged' }]);
    expect(out.join('')).toBe('overall progress: 0 out of 1 tasks\n1/1: pending\n1/1: running\noverall progress: 1 out of 1 tasks\nverify: Service web converged\n');
  });

  it('redraws the block in place on a terminal', () => {
    const out: string[] = [];
    const v = new ProgressView((t) => out.push(t), true);
    v.update([{ id: 'overall progress', text: '0 out of 1 tasks' }, { id: '1/1', text: 'pending' }]);
    v.update([{ id: 'overall progress', text: '0 out of 1 tasks' }, { id: '1/1', text: 'pending' }]);
    v.update([{ id: '1/1', text: 'running' }]);
    expect(out).toEqual([
      '\x1b[2Koverall progress: 0 out of 1 tasks \n\x1b[2K1/1: pending \n',
      '\x1b[2A\x1b[2Koverall progress: 0 out of 1 tasks \n\x1b[2K1/1: running \n',
    ]);
  });
});
