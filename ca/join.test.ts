// Joining, authorization and renewal against a real CA server over TLS 1.3 on loopback.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ControlClient } from '../proto/gen/shoal/control.js';
import { DispatcherClient } from '../proto/gen/shoal/dispatcher.js';
import { RaftClient } from '../proto/gen/shoal/raft.js';
import { callUnary, isServiceError } from '../proto/grpc/client.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, joinChannelCredentials, type TlsMaterial } from '../proto/grpc/tls.js';
import { INVALID_JOIN_TOKEN } from './ca-server.js';
import { ClusterCA } from './cluster-ca.js';
import { createNodeCsr, generateNodeKey, privateKeyPem } from './csr.js';
import { CAError } from './errors.js';
import { identityFrom, loadIdentity, saveIdentity, type NodeIdentity } from './identity.js';
import { newNodeId } from './ids.js';
import { joinCluster, renewNodeCertificate } from './join.js';
import { RenewalScheduler } from './renewal.js';
import { MANAGER_ROLE, WORKER_ROLE } from './roles.js';
import { startCAFixture, type CAFixture } from './testing/fixture.js';

function opensslText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString();
}

async function expectStatus(promise: Promise<unknown>, code: grpc.status, detailsPattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isServiceError(err), `expected a gRPC error, got ${String(err)}`).toBe(true);
  if (!isServiceError(err)) return;
  expect(grpc.status[err.code]).toBe(grpc.status[code]);
  expect(err.details).toMatch(detailsPattern);
}

function heartbeat(address: string, material: TlsMaterial | null, fx: CAFixture): Promise<unknown> {
  const creds = material === null ? joinChannelCredentials(fx.manager.trustBundlePem) : clusterChannelCredentials(material, fx.ca.clusterId);
  const client = new DispatcherClient(address, creds, CLUSTER_CHANNEL_OPTIONS);
  return callUnary(client.heartbeat.bind(client), { sessionId: 's' }).finally(() => client.close());
}

function listNodes(fx: CAFixture, identity: NodeIdentity): Promise<unknown> {
  const client = new ControlClient(fx.address, clusterChannelCredentials(identity, fx.ca.clusterId), CLUSTER_CHANNEL_OPTIONS);
  return callUnary(client.listNodes.bind(client), {}).finally(() => client.close());
}

describe('joining a cluster over TLS', () => {
  let fx: CAFixture;
  let dir: string;
  beforeAll(async () => {
    fx = await startCAFixture();
    dir = await mkdtemp(join(tmpdir(), 'shoal-ca-join-'));
  });
  afterAll(async () => {
    await fx?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a worker token yields a P-256 worker certificate with CN=node ID, OU=swarm-worker, O=cluster ID, 90 days', async () => {
    const before = Date.now();
    const worker = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
    expect(worker.nodeId).toMatch(/^[0-9a-z]{25}$/);
    expect(worker.role).toBe(WORKER_ROLE);
    expect(worker.clusterId).toBe(fx.ca.clusterId);
    const text = opensslText(worker.certChainPem);
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain(`Subject: O = ${fx.ca.clusterId}, OU = swarm-worker, CN = ${worker.nodeId}`);
    expect(text).toContain('Issuer: CN = swarm-ca');
    expect(text).toContain(`DNS:swarm-worker, DNS:${worker.nodeId}`);
    const notAfter = Date.parse(/Not After : (.*)/.exec(text)?.[1] ?? '');
    const ninetyDaysMs = 90 * 24 * 3600 * 1000;
    expect(notAfter).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + ninetyDaysMs - 1000);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + ninetyDaysMs);
    // The chain verifies with openssl against the trust bundle the node saved.
    await saveIdentity(dir, worker);
    expect((await stat(join(dir, 'swarm-node.key'))).mode & 0o777).toBe(0o600);
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'swarm-root-ca.crt'), join(dir, 'swarm-node.crt')]);
    expect((await loadIdentity(dir)).nodeId).toBe(worker.nodeId);
  });

  it('a manager token yields OU=swarm-manager with the swarm-ca name', async () => {
    const manager = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.manager });
    expect(manager.role).toBe(MANAGER_ROLE);
    expect(opensslText(manager.certChainPem)).toContain(`DNS:swarm-manager, DNS:${manager.nodeId}, DNS:swarm-ca`);
  });

  it('a worker calling a manager-only RPC is denied, naming the role needed; Dispatcher takes either role', async () => {
    const worker = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
    await expectStatus(listNodes(fx, worker), grpc.status.PERMISSION_DENIED, /Control calls need role swarm-manager; the caller's certificate has role swarm-worker/);
    const raft = new RaftClient(fx.address, clusterChannelCredentials(worker, fx.ca.clusterId), CLUSTER_CHANNEL_OPTIONS);
    await expectStatus(callUnary(raft.resolveAddress.bind(raft), { raftId: '1' }).finally(() => raft.close()), grpc.status.PERMISSION_DENIED, /need role swarm-manager/);
    await expect(heartbeat(fx.address, worker, fx)).resolves.toEqual({ periodMs: 5000 });
    await expect(listNodes(fx, fx.manager)).resolves.toEqual({ nodes: [], nodesJson: '[]' });
  });

  it('no client certificate is refused with UNAUTHENTICATED', async () => {
    await expectStatus(heartbeat(fx.address, null, fx), grpc.status.UNAUTHENTICATED, /needs a client certificate issued by this cluster's CA/);
  });

  it("a certificate from another cluster's CA is refused", async () => {
    const other = await ClusterCA.create({ nowMs: Date.now() });
    const stranger = await other.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    // It trusts our root (so it gets as far as presenting its certificate), but ours was not issued by us.
    const material = { ...stranger, trustBundlePem: fx.manager.trustBundlePem };
    await expectStatus(heartbeat(fx.address, material, fx), grpc.status.UNAUTHENTICATED, /did not verify/);
  });

  it('an expired certificate is refused', async () => {
    const key = await generateNodeKey();
    const nodeId = newNodeId();
    // Same root and cluster, 1-hour certificates, issued as if three hours ago.
    const hourCA = await ClusterCA.restore({ ...(await fx.ca.export()), expiry: { expiryMs: 3600 * 1000, backdateMs: 0 } });
    const issued = hourCA.issue(createNodeCsr(key), nodeId, WORKER_ROLE, Date.now() - 3 * 3600 * 1000);
    fx.registry.addNode(nodeId, WORKER_ROLE, issued.chainPem);
    const expired = identityFrom(privateKeyPem(key), issued.chainPem, issued.trustBundlePem);
    expect(expired.notAfterMs).toBeLessThan(Date.now());
    await expectStatus(heartbeat(fx.address, expired, fx), grpc.status.UNAUTHENTICATED, /expired/);
  });

  it('a tampered token gets PERMISSION_DENIED "invalid join token"; the log has the peer, never the token', async () => {
    const good = fx.ca.joinTokens.worker;
    const tampered = good.slice(0, -1) + (good.endsWith('a') ? 'b' : 'a');
    fx.logLines.length = 0;
    const err = await joinCluster({ address: fx.address, token: tampered }).catch((e: unknown) => e);
    expect(isServiceError(err) && err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(isServiceError(err) && err.details).toBe(INVALID_JOIN_TOKEN);
    const refusal = fx.logLines.map((l) => JSON.parse(l) as { msg: string; peer?: string }).find((l) => l.msg.includes('invalid join token'));
    expect(refusal?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    const secret = tampered.slice(-25);
    expect(fx.logLines.join('\n')).not.toContain(secret);
    expect(fx.logLines.join('\n')).not.toContain(good.slice(-25));
  });

  it('a token with a wrong CA digest stops the join before the token is sent', async () => {
    const other = await ClusterCA.create({ nowMs: Date.now() });
    const foreignToken = other.joinTokens.worker;
    fx.received.length = 0;
    const err = await joinCluster({ address: fx.address, token: foreignToken }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CAError);
    expect((err as CAError).code).toBe('CA_DIGEST_MISMATCH');
    expect((err as CAError).message).toMatch(/does not match the CA digest in the join token/);
    // The server saw exactly one call, GetRootCACertificate, and nothing carrying the secret.
    expect(fx.received.map((r) => r.path)).toEqual(['/shoal.ca.CA/GetRootCACertificate']);
    expect(JSON.stringify(fx.received)).not.toContain(foreignToken.slice(-25));
  });

  it('a malformed token is refused locally before any connection', async () => {
    fx.received.length = 0;
    const err = await joinCluster({ address: fx.address, token: 'SWMTKN-1-nonsense' }).catch((e: unknown) => e);
    expect((err as CAError).code).toBe('MALFORMED_TOKEN');
    expect(fx.received).toEqual([]);
  });

  it('rotating a join token makes the old one useless for joining; nodes already in stay', async () => {
    const oldToken = fx.ca.joinTokens.worker;
    const member = await joinCluster({ address: fx.address, token: oldToken });
    fx.ca.rotateJoinToken(WORKER_ROLE);
    expect(fx.ca.joinTokens.worker).not.toBe(oldToken);
    await expectStatus(joinCluster({ address: fx.address, token: oldToken }), grpc.status.PERMISSION_DENIED, /^invalid join token$/);
    await expect(joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker })).resolves.toMatchObject({ role: WORKER_ROLE });
    await expect(heartbeat(fx.address, member, fx)).resolves.toEqual({ periodMs: 5000 });
  });

  it('a removed node is refused while its certificate is still valid', async () => {
    const worker = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
    await expect(heartbeat(fx.address, worker, fx)).resolves.toBeDefined();
    fx.registry.remove(worker.nodeId);
    await expectStatus(heartbeat(fx.address, worker, fx), grpc.status.PERMISSION_DENIED, new RegExp(`node ${worker.nodeId} was removed`));
  });

  it('a promoted worker renews at once and its new certificate opens manager-only calls', async () => {
    let identity = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
    const renewed: NodeIdentity[] = [];
    const scheduler = new RenewalScheduler({
      certificate: identity,
      roleSource: fx.registry.roleSource(identity.nodeId),
      renew: async () => {
        identity = await renewNodeCertificate({ address: fx.address, identity });
        return identity;
      },
      onRenewed: (cert) => renewed.push(cert),
    });
    scheduler.start();
    try {
      fx.registry.setDesiredRole(identity.nodeId, MANAGER_ROLE);
      await waitFor(() => renewed.length > 0, 10_000);
      expect(identity.role).toBe(MANAGER_ROLE);
      expect(opensslText(identity.certChainPem)).toContain(`OU = swarm-manager, CN = ${identity.nodeId}`);
      await expect(listNodes(fx, identity)).resolves.toEqual({ nodes: [], nodesJson: '[]' });
    } finally {
      scheduler.stop();
    }
  });
});

describe('renewal with a real short-lived certificate', () => {
  it('renews in its window and the new certificate works', async () => {
    const lifetimeMs = 4000;
    const fx = await startCAFixture({ expiry: { expiryMs: lifetimeMs, backdateMs: 0, unsafeMinimumExpiryMsForTests: 1000 } });
    const dir = await mkdtemp(join(tmpdir(), 'shoal-ca-renew-'));
    const scheduler: { current: RenewalScheduler<NodeIdentity> | null } = { current: null };
    try {
      let identity = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
      const first = identity;
      const renewedAt: number[] = [];
      scheduler.current = new RenewalScheduler({
        certificate: identity,
        renew: async () => {
          identity = await renewNodeCertificate({ address: fx.address, identity });
          await saveIdentity(dir, identity);
          return identity;
        },
        onRenewed: () => renewedAt.push(Date.now()),
      });
      const planned = scheduler.current.plannedRenewalMs;
      expect(planned).toBeGreaterThanOrEqual(first.notBeforeMs + 0.5 * lifetimeMs);
      expect(planned).toBeLessThanOrEqual(first.notBeforeMs + 0.8 * lifetimeMs);
      scheduler.current.start();
      await waitFor(() => renewedAt.length > 0, 15_000);
      // Not before its window opened (50% of the lifetime).
      expect(renewedAt[0]).toBeGreaterThanOrEqual(first.notBeforeMs + 0.5 * lifetimeMs);
      expect(identity.nodeId).toBe(first.nodeId);
      expect(identity.notAfterMs).toBeGreaterThan(first.notAfterMs);
      expect((await loadIdentity(dir)).notAfterMs).toBe(identity.notAfterMs);
      await expect(heartbeat(fx.address, identity, fx)).resolves.toEqual({ periodMs: 5000 });
    } finally {
      scheduler.current?.stop();
      await fx.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
