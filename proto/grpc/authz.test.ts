// The authorization interceptor reads a connection's certificate once and hands the identity to the
// handler: what a caller sees must not change — each call is judged by the certificate of its own
// connection, the removed-node list applies on every call, and an unauthenticated connection stays so.
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ClusterCA } from '../../ca/cluster-ca.js';
import { newNodeId } from '../../ca/ids.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { CAClient, CAService, type CAServer } from '../gen/shoal/ca.js';
import { InMemoryRemovedNodes, peerIdentity } from './authz.js';
import { callUnary } from './client.js';
import { createClusterServer, type ClusterServer } from './server.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, joinChannelCredentials } from './tls.js';

let ca: ClusterCA;
let manager: NodeIdentity;
let workerA: NodeIdentity;
let workerB: NodeIdentity;

beforeAll(async () => {
  ca = await ClusterCA.create({ nowMs: Date.now() });
  manager = await ca.issueLocalIdentity(newNodeId(), 'swarm-manager', Date.now());
  workerA = await ca.issueLocalIdentity(newNodeId(), 'swarm-worker', Date.now());
  workerB = await ca.issueLocalIdentity(newNodeId(), 'swarm-worker', Date.now());
});

/** NodeCertificateStatus (any-node) answers with the caller's node ID as the handler sees it. */
const echo: Partial<CAServer> = {
  nodeCertificateStatus: (call, callback) => {
    callback(null, { nodeId: peerIdentity(call)?.nodeId ?? 'none', renewNow: false });
  },
};

const servers: ClusterServer[] = [];
const clients: CAClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close(100)));
});

async function serve(removed: InMemoryRemovedNodes): Promise<string> {
  const s = createClusterServer({ material: manager, clusterId: ca.clusterId, removed, logger: pino({ level: 'silent' }) });
  servers.push(s);
  s.server.addService(CAService, echo as CAServer);
  return `127.0.0.1:${await s.listen('127.0.0.1:0')}`;
}

function client(address: string, identity: NodeIdentity | null): CAClient {
  const creds = identity === null ? joinChannelCredentials(manager.trustBundlePem) : clusterChannelCredentials(identity, ca.clusterId);
  const c = new CAClient(address, creds, CLUSTER_CHANNEL_OPTIONS);
  clients.push(c);
  return c;
}

async function whoAmI(c: CAClient): Promise<string> {
  return (await callUnary(c.nodeCertificateStatus.bind(c), {}, 5000)).nodeId;
}

describe('authorization interceptor: identity per connection, handed to the handler', () => {
  it('every call on a connection, and concurrent connections, see their own certificate', async () => {
    const address = await serve(new InMemoryRemovedNodes());
    const a = client(address, workerA);
    const b = client(address, workerB);
    const seen = await Promise.all(Array.from({ length: 10 }, (_, i) => whoAmI(i % 2 === 0 ? a : b)));
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? workerA.nodeId : workerB.nodeId)));
  });

  it('a connection without a certificate stays unauthenticated on every call', async () => {
    const address = await serve(new InMemoryRemovedNodes());
    const anon = client(address, null);
    for (let i = 0; i < 3; i++) await expect(whoAmI(anon)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it('a node removed while its connection is open is refused on its next call', async () => {
    const removed = new InMemoryRemovedNodes();
    const address = await serve(removed);
    const a = client(address, workerA);
    expect(await whoAmI(a)).toBe(workerA.nodeId);
    removed.add(workerA.nodeId);
    await expect(whoAmI(a)).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    removed.delete(workerA.nodeId);
    expect(await whoAmI(a)).toBe(workerA.nodeId);
  });
});
