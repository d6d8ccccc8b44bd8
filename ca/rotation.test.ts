// A root CA rotation seen from the wire: old and new certificates keep talking to each other over
// mutual TLS throughout, joiners during and after it get the right roots, and the tokens follow.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';

import { DispatcherClient } from '../proto/gen/shoal/dispatcher.js';
import { callUnary } from '../proto/grpc/client.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials } from '../proto/grpc/tls.js';
import type { NodeIdentity } from './identity.js';
import { joinCluster, renewNodeCertificate } from './join.js';
import { rotationProgress } from './root-ca.js';
import { MANAGER_ROLE } from './roles.js';
import { startCAFixture, type CAFixture } from './testing/fixture.js';
import { parseCertificates } from './verify.js';

async function heartbeat(fx: CAFixture, identity: NodeIdentity): Promise<unknown> {
  const client = new DispatcherClient(fx.address, clusterChannelCredentials(identity, identity.clusterId), CLUSTER_CHANNEL_OPTIONS);
  return callUnary(client.heartbeat.bind(client), { sessionId: 's' }, 5000).finally(() => client.close());
}

describe('root CA rotation over mutual TLS', () => {
  it('keeps old and new certificates working together until the old root is dropped', async () => {
    const fx = await startCAFixture();
    try {
      const oldWorker = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
      expect(parseCertificates(oldWorker.trustBundlePem)).toHaveLength(1);
      const oldToken = fx.ca.joinTokens.worker;

      await fx.ca.startRootRotation(Date.now());
      // A node joining now checks the old root against its token and learns the new root through the cross-signature.
      const newWorker = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
      expect(parseCertificates(newWorker.trustBundlePem)).toHaveLength(2);
      expect(parseCertificates(newWorker.certChainPem)).toHaveLength(2);
      // The manager still serves its old certificate and trusts only the old root: both generations get in.
      await expect(heartbeat(fx, oldWorker)).resolves.toBeDefined();
      await expect(heartbeat(fx, newWorker)).resolves.toBeDefined();

      // The manager converts; a worker that still trusts only the old root accepts the manager's new certificate.
      const manager = await fx.ca.issueLocalIdentity(fx.manager.nodeId, MANAGER_ROLE, Date.now());
      fx.registry.recordCertificate(manager.nodeId, manager.certChainPem);
      fx.server.credentials.update(manager);
      await expect(heartbeat(fx, oldWorker)).resolves.toBeDefined();
      await expect(heartbeat(fx, newWorker)).resolves.toBeDefined();

      // The last node converts by renewing; progress reaches done.
      expect(rotationProgress(fx.ca.rootCA, fx.registry.certificates()).done).toBe(false);
      const converted = await renewNodeCertificate({ address: fx.address, identity: oldWorker });
      expect(rotationProgress(fx.ca.rootCA, fx.registry.certificates())).toEqual({ converted: 3, total: 3, done: true });

      // Drop the old root everywhere.
      await fx.ca.finishRootRotation();
      const finalManager = await fx.ca.issueLocalIdentity(fx.manager.nodeId, MANAGER_ROLE, Date.now());
      fx.server.credentials.update(finalManager);
      await expect(heartbeat(fx, converted)).resolves.toBeDefined();
      await expect(heartbeat(fx, newWorker)).resolves.toBeDefined();
      // The old token's digest no longer matches: the joiner stops before sending it.
      await expect(joinCluster({ address: fx.address, token: oldToken })).rejects.toMatchObject({ code: 'CA_DIGEST_MISMATCH' });
      const late = await joinCluster({ address: fx.address, token: fx.ca.joinTokens.worker });
      expect(parseCertificates(late.trustBundlePem)).toHaveLength(1);
      // A certificate still under the old root is now refused.
      await expect(heartbeat(fx, { ...oldWorker, trustBundlePem: late.trustBundlePem })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    } finally {
      await fx.close();
    }
  });
});
