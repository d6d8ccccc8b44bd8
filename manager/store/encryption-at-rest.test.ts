// Encryption at rest, checked the way an attacker holding the disk would: canary strings go
// into a secret's data and a service's name, the three managers write, snapshot, compact, ship a
// snapshot to a follower and shut down — then every byte of every file under every data
// directory is searched for the canaries (as text, as base64, as UTF-16). None may appear. The
// same search must find them in a plain file (the scanner works) and the cluster must still
// read them back after a restart (they were written, not lost).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { byName } from './index.js';
import { StoreCluster } from './testing/cluster.js';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f().catch(() => undefined);
});

/** Every regular file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The encodings a plaintext could take on disk. */
function needles(canary: string): Buffer[] {
  return [Buffer.from(canary, 'utf8'), Buffer.from(Buffer.from(canary).toString('base64'), 'utf8'), Buffer.from(canary, 'utf16le')];
}

/** Files (and which needle) under `dir` whose raw bytes contain a needle. */
async function grep(dir: string, canaries: readonly string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const f of await filesUnder(dir)) {
    const bytes = await readFile(f);
    for (const c of canaries) for (const n of needles(c)) if (bytes.includes(n)) hits.push(`${path.relative(dir, f)} contains ${JSON.stringify(n.toString('latin1'))}`);
  }
  return hits;
}

describe('encryption at rest', () => {
  it('no spec, name or secret is readable anywhere in the managers’ data directories', async () => {
    const secretCanary = `canary-secret-${randomBytes(8).toString('hex')}`;
    const nameCanary = `canary-svc-${randomBytes(8).toString('hex')}`;

    // The scanner finds a canary written in the clear (negative control), in each encoding.
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'shoal-canary-control-'));
    cleanups.push(() => rm(scratch, { recursive: true, force: true }));
    await writeFile(path.join(scratch, 'plain'), `x${secretCanary}x`);
    await writeFile(path.join(scratch, 'b64'), Buffer.from(secretCanary).toString('base64'));
    await writeFile(path.join(scratch, 'wide'), Buffer.from(nameCanary, 'utf16le'));
    expect(await grep(scratch, [secretCanary, nameCanary])).toHaveLength(3);

    const c = await StoreCluster.start({ size: 3, snapshotIntervalEntries: 10, snapshotKeepEntries: 2 });
    cleanups.push(() => c.close());
    const leader = await c.waitLeader();
    const laggard = c.ids.find((id) => c.rs(id) !== leader)!;
    await c.stopMember(laggard);

    await leader.store.update((tx) => {
      tx.create('secret', { Spec: { Name: 'db-password', Labels: {}, Data: Buffer.from(secretCanary).toString('base64') } });
      tx.create('service', {
        Spec: {
          Name: nameCanary,
          Labels: { note: nameCanary },
          TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Env: [`PASSWORD=${secretCanary}`] } },
        },
      });
    });
    // Enough further writes for snapshots (every 10 entries) and compaction on every member.
    let last = 0;
    for (let i = 0; i < 25; i++) {
      ({ version: last } = await leader.store.update((tx) => tx.create('config', { Spec: { Name: `filler-${i}`, Data: 'eA==' } })));
    }
    // The stopped follower comes back behind the compacted log: it is sent a snapshot, which it stores.
    const back = await c.startMember(laggard);
    c.connect();
    await c.waitApplied(last, 15_000);
    expect(back.store.stats().lastRestoreIndex).toBeGreaterThan(0);
    expect(back.store.lookup('service', nameCanary).Spec.Labels).toEqual({ note: nameCanary });

    for (const id of c.ids) await c.stopMember(id);
    const files = await filesUnder(c.baseDir);
    expect(files.length).toBeGreaterThan(3);
    expect(await grep(c.baseDir, [secretCanary, nameCanary])).toEqual([]);

    // The data is there all the same: restarted managers read it back with the key.
    for (const id of c.ids) await c.startMember(id);
    await c.waitApplied(last);
    for (const r of c.running()) {
      expect(r.store.find('service', byName(nameCanary))).toHaveLength(1);
      expect(Buffer.from(r.store.lookup('secret', 'db-password').Spec.Data!, 'base64').toString()).toBe(secretCanary);
    }
  });
});
