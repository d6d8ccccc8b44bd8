// `shoal swarm ca` and the real docker CLI's `docker swarm ca` against one shoald (swarm plugin, unix
// socket, manager on loopback port 0): both print the same root CA; `--rotate` from either CLI
// converges (the progress reaches 1/1 nodes), prints a new root that the node's certificate is
// under, and the join tokens change with the root's digest.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestDaemon, type TestDaemon } from '../testing/daemon.js';

let t: TestDaemon;
const shoal = (...args: string[]) => t.shoal(...args);
const docker = (...args: string[]) => t.docker(...args);

/** The node certificate the daemon keeps for its manager, checked against `rootPem` with openssl. */
async function nodeCertVerifiesAgainst(rootPem: string): Promise<boolean> {
  const rootFile = join(t.dir, 'root.pem');
  await writeFile(rootFile, rootPem);
  try {
    const certs = join(t.dir, 'data', 'swarm', 'certificates', 'swarm-node.crt');
    return /OK/.test(execFileSync('openssl', ['verify', '-CAfile', rootFile, certs], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  } catch {
    return false;
  }
}

beforeAll(async () => {
  t = await startTestDaemon('swarm-ca', 'cahost', 60_000);
  const init = await shoal('swarm', 'init', '--listen-addr', '127.0.0.1:0');
  expect(init.code, init.err).toBe(0);
}, 30_000);

afterAll(async () => {
  await t?.stop();
});

describe('swarm ca', () => {
  let firstRoot = '';

  it('shoal swarm ca prints the root CA certificate, as docker swarm ca does', async () => {
    const mine = await shoal('swarm', 'ca');
    expect(mine.code, mine.err).toBe(0);
    expect(mine.out).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(execFileSync('openssl', ['x509', '-noout', '-subject'], { input: mine.out }).toString()).toMatch(/CN ?= ?swarm-ca/);
    const theirs = await docker('swarm', 'ca');
    expect(theirs.code, theirs.err).toBe(0);
    expect(theirs.out.trim()).toBe(mine.out.trim());
    firstRoot = mine.out;
  });

  it('shoal swarm ca --rotate: progress to 1/1 nodes, a new root the node is under, new join tokens', async () => {
    const before = (await shoal('swarm', 'join-token', '-q', 'worker')).out.trim();
    const rotated = await shoal('swarm', 'ca', '--rotate');
    expect(rotated.code, rotated.err).toBe(0);
    expect(rotated.err).toMatch(/desired root digest: sha256:[0-9a-f]{64}/);
    expect(rotated.err).toMatch(/rotated TLS certificates: +\[=+\] 1\/1 nodes/);
    expect(rotated.err).toMatch(/rotated CA certificates: +\[=+\] 1\/1 nodes/);
    expect(rotated.out.trim()).not.toBe(firstRoot.trim());
    expect(await nodeCertVerifiesAgainst(rotated.out)).toBe(true);
    expect(await nodeCertVerifiesAgainst(firstRoot)).toBe(false);
    const after = (await shoal('swarm', 'join-token', '-q', 'worker')).out.trim();
    expect(after.split('-')[2]).not.toBe(before.split('-')[2]);
    const inspect = await docker('info', '--format', '{{.Swarm.Cluster.RootRotationInProgress}}');
    expect(inspect.out.trim()).toBe('false');
    firstRoot = rotated.out;
  }, 60_000);

  it('docker swarm ca --rotate (the real docker CLI) converges against shoald too', async () => {
    const rotated = await docker('swarm', 'ca', '--rotate');
    expect(rotated.code, rotated.err).toBe(0);
    // docker prints its progress (counts only on a terminal), then the new root.
    expect(rotated.out).toMatch(/rotated TLS certificates/);
    const root = rotated.out.slice(rotated.out.indexOf('-----BEGIN CERTIFICATE-----'));
    expect(root).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(root.trim()).not.toBe(firstRoot.trim());
    expect(await nodeCertVerifiesAgainst(root)).toBe(true);
    expect(await nodeCertVerifiesAgainst(firstRoot)).toBe(false);
  }, 70_000);

  it('-d returns at once; the rotation still completes in the background', async () => {
    const detached = await shoal('swarm', 'ca', '--rotate', '-d');
    expect(detached.code, detached.err).toBe(0);
    expect(detached.err).toBe('');
    const shown = await shoal('swarm', 'ca', '--rotate', '-q');
    expect(shown.code, shown.err).toBe(0);
    expect(shown.err).toBe('');
    expect(await nodeCertVerifiesAgainst(shown.out)).toBe(true);
  }, 60_000);
});
