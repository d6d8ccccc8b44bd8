// `shoal node ps|promote|demote` against one shoald (swarm plugin, unix socket, manager on loopback
// port 0): node ps (self by default, or named) lists the tasks placed on the node with docker's
// columns; promote of a manager says it already is one; demoting the only manager is refused with
// the daemon's reason and exit code 1, and the node stays a manager.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestDaemon, type TestDaemon } from '../testing/daemon.js';

let t: TestDaemon;
const shoal = (...args: string[]) => t.shoal(...args);

beforeAll(async () => {
  t = await startTestDaemon('node-cli', 'nodehost');
  const init = await shoal('swarm', 'init', '--listen-addr', '127.0.0.1:0');
  expect(init.code, init.err).toBe(0);
}, 60_000);

afterAll(async () => {
  await t?.stop();
}, 60_000);

describe('node commands', () => {
  it("node ps lists the tasks placed on this node (self by default, or by hostname)", async () => {
    // Created with the docker CLI for --restart-condition none: whatever becomes of the two tasks
    // on this registry-less node, they are not replaced, so the node has exactly these two.
    const created = await t.docker('service', 'create', '-d', '--name', 'np', '--replicas', '2', '--restart-condition', 'none', '--no-resolve-image', 'busybox', 'sleep', '60');
    expect(created.code, created.err).toBe(0);
    let rows: string[] = [];
    for (let i = 0; i < 100 && rows.length < 2; i++) {
      const ps = await shoal('node', 'ps', '--format', '{{.Name}} {{.Node}}');
      expect(ps.code, ps.err).toBe(0);
      rows = ps.out.trim().split('\n').filter((l) => l !== '');
      if (rows.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(rows.sort()).toEqual(['np.1 nodehost', 'np.2 nodehost']);
    const table = await shoal('node', 'ps', 'nodehost');
    expect(table.out.split('\n')[0]).toMatch(/^ID +NAME +IMAGE +NODE +DESIRED STATE +CURRENT STATE +ERROR +PORTS$/);
    const quiet = await shoal('node', 'ps', 'self', '-q');
    expect(quiet.out.trim().split('\n'), quiet.err).toHaveLength(2);
    expect((await shoal('service', 'rm', 'np')).code).toBe(0);
  });

  it('promote of a manager says so; demoting the only manager is refused and changes nothing', async () => {
    const promote = await shoal('node', 'promote', 'self');
    expect(promote.code, promote.err).toBe(0);
    expect(promote.out).toBe('Node self is already a manager in the swarm.\n');
    const demote = await shoal('node', 'demote', 'self');
    expect(demote.code).toBe(1);
    expect(demote.err.trim().split('\n')).toHaveLength(1);
    expect(demote.err).toMatch(/quorum|last manager|only manager/i);
    const role = await shoal('node', 'inspect', 'self', '--format', '{{.Spec.Role}}');
    expect(role.out.trim()).toBe('manager');
  });
});
