// The Control service over real gRPC with mutual TLS 1.3 on loopback (certificates from a real
// ClusterCA), in front of a real single-manager store: what a forwarding manager or a client sees.
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ClusterCA } from '../../ca/cluster-ca.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { newNodeId } from '../../ca/ids.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../../ca/roles.js';
import { ControlClient } from '../../proto/gen/shoal/control.js';
import { InMemoryRemovedNodes } from '../../proto/grpc/authz.js';
import { callUnary, isServiceError } from '../../proto/grpc/client.js';
import { createClusterServer, type ClusterServer } from '../../proto/grpc/server.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials } from '../../proto/grpc/tls.js';
import type { Node, Secret, Service } from '../store/index.js';
import { StoreCluster } from '../store/testing/cluster.js';
import { fromGrpcError } from './errors.js';
import { registerControl } from './grpc.js';

async function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isServiceError(err)) throw new Error(`expected a gRPC error, got ${String(err)}`);
  return err;
}

const spec = (name: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ Name: name, TaskTemplate: { ContainerSpec: { Image: '127.0.0.1:5000/busybox:latest', Args: ['sleep', '3600'] } }, Mode: { Replicated: { Replicas: 1 } }, ...extra });

describe('Control over gRPC + mTLS', () => {
  let cluster: StoreCluster;
  let server: ClusterServer;
  let ca: ClusterCA;
  let manager: NodeIdentity;
  let worker: NodeIdentity;
  let client: ControlClient;
  let address: string;

  beforeAll(async () => {
    cluster = await StoreCluster.start({ size: 1 });
    const rs = await cluster.waitLeader();
    ca = await ClusterCA.create({ nowMs: Date.now() });
    manager = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    worker = await ca.issueLocalIdentity(newNodeId(), WORKER_ROLE, Date.now());
    server = createClusterServer({ material: manager, clusterId: ca.clusterId, removed: new InMemoryRemovedNodes(), logger: pino({ level: 'silent' }) });
    registerControl(server.server, { store: rs.store, logger: pino({ level: 'silent' }) });
    address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    client = new ControlClient(address, clusterChannelCredentials(manager, ca.clusterId), CLUSTER_CHANNEL_OPTIONS);
    await rs.store.update((tx) => {
      tx.create('node', { ID: worker.nodeId, Spec: { Role: 'worker', Availability: 'active' }, Description: { Hostname: 'w1' }, Status: { State: 'ready' } });
    });
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    await cluster?.close();
  });

  it('service CRUD: JSON in Docker’s shape both ways, typed meta alongside', async () => {
    const created = await callUnary(client.createService.bind(client), { specJson: spec('web', { Labels: { tier: 'front' } }) });
    const svc = JSON.parse(created.serviceJson) as Service;
    expect(svc.ID).toMatch(/^[0-9a-z]{25}$/);
    expect(created.service?.meta?.id).toBe(svc.ID);
    expect(created.service?.meta?.version).toBe(svc.Version.Index);
    expect(created.service?.spec?.annotations).toEqual({ name: 'web', labels: { tier: 'front' } });
    expect(svc.Spec.TaskTemplate.ContainerSpec?.Args).toEqual(['sleep', '3600']);

    const got = await callUnary(client.getService.bind(client), { serviceId: 'web' });
    expect(JSON.parse(got.serviceJson)).toEqual(svc);
    const listed = await callUnary(client.listServices.bind(client), { filters: { names: [], idPrefixes: [svc.ID.slice(0, 5)], labels: {}, namePrefixes: [] } });
    expect((JSON.parse(listed.servicesJson) as Service[]).map((s) => s.ID)).toEqual([svc.ID]);

    const updated = await callUnary(client.updateService.bind(client), { serviceId: svc.ID, serviceVersion: svc.Version.Index, specJson: spec('web', { Mode: { Replicated: { Replicas: 4 } } }), rollback: false });
    expect((JSON.parse(updated.serviceJson) as Service).Spec.Mode).toEqual({ Replicated: { Replicas: 4 } });

    const stale = await grpcError(callUnary(client.updateService.bind(client), { serviceId: svc.ID, serviceVersion: svc.Version.Index, specJson: spec('web'), rollback: false }));
    expect(grpc.status[stale.code]).toBe('UNKNOWN');
    expect(stale.details).toBe('update out of sequence');
    expect(fromGrpcError(stale).code).toBe('ERR_CONTROL_SEQUENCE');

    const dup = await grpcError(callUnary(client.createService.bind(client), { specJson: spec('web') }));
    expect(grpc.status[dup.code]).toBe('ALREADY_EXISTS');
    expect(dup.details).toBe('name conflicts with an existing object: service web already exists');

    await callUnary(client.removeService.bind(client), { serviceId: 'web' });
    const missing = await grpcError(callUnary(client.getService.bind(client), { serviceId: 'web' }));
    expect(grpc.status[missing.code]).toBe('NOT_FOUND');
    expect(missing.details).toBe('service web not found');
  });

  it('validation refusals are INVALID_ARGUMENT with the message; a missing spec_json says so', async () => {
    const neg = await grpcError(callUnary(client.createService.bind(client), { specJson: spec('neg', { Mode: { Replicated: { Replicas: -2 } } }) }));
    expect(grpc.status[neg.code]).toBe('INVALID_ARGUMENT');
    expect(neg.details).toBe('Mode.Replicated.Replicas must be ≥ 0, got -2');
    const none = await grpcError(callUnary(client.createService.bind(client), { specJson: '' }));
    expect(none.details).toMatch(/^spec_json is required/);
    const notJson = await grpcError(callUnary(client.createService.bind(client), { specJson: '{"Name":' }));
    expect(notJson.details).toMatch(/^spec_json is not valid JSON/);
  });

  it('secret data never crosses the wire on reads', async () => {
    const canary = 'grpc-canary-9f2c';
    const data = Buffer.from(canary).toString('base64');
    const created = await callUnary(client.createSecret.bind(client), { specJson: JSON.stringify({ Name: 'db_pass', Data: data }) });
    const id = (JSON.parse(created.secretJson) as Secret).ID;
    const responses = [
      created,
      await callUnary(client.getSecret.bind(client), { secretId: 'db_pass' }),
      await callUnary(client.listSecrets.bind(client), {}),
      await callUnary(client.updateSecret.bind(client), { secretId: id, secretVersion: (JSON.parse(created.secretJson) as Secret).Version.Index, specJson: JSON.stringify({ Name: 'db_pass', Labels: { a: 'b' } }) }),
    ];
    for (const r of responses) {
      const text = JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('latin1') : v));
      expect(text).not.toContain(data);
      expect(text).not.toContain(canary);
    }
    const big = await grpcError(callUnary(client.createSecret.bind(client), { specJson: JSON.stringify({ Name: 'big', Data: Buffer.alloc(600 * 1024).toString('base64') }) }));
    expect(big.details).toBe('secret data must be larger than 0 and less than 512000 bytes (got 614400)');
  });

  it('node availability update and the failed-precondition of removing a ready node', async () => {
    const got = await callUnary(client.getNode.bind(client), { nodeId: 'w1' });
    const node = JSON.parse(got.nodeJson) as Node;
    const drained = await callUnary(client.updateNode.bind(client), { nodeId: node.ID, nodeVersion: node.Version.Index, specJson: JSON.stringify({ Labels: {}, Role: 'worker', Availability: 'drain' }) });
    expect((JSON.parse(drained.nodeJson) as Node).Spec.Availability).toBe('drain');
    const rm = await grpcError(callUnary(client.removeNode.bind(client), { nodeId: node.ID, force: false }));
    expect(grpc.status[rm.code]).toBe('FAILED_PRECONDITION');
    expect(rm.details).toBe(`node ${node.ID} is not down and can't be removed`);
  });

  it('a worker certificate calling Control gets PERMISSION_DENIED before any handler runs', async () => {
    const asWorker = new ControlClient(address, clusterChannelCredentials(worker, ca.clusterId), CLUSTER_CHANNEL_OPTIONS);
    try {
      const err = await grpcError(callUnary(asWorker.createSecret.bind(asWorker), { specJson: JSON.stringify({ Name: 'sneaky', Data: 'eA==' }) }));
      expect(grpc.status[err.code]).toBe('PERMISSION_DENIED');
      expect(err.details).toBe("Control calls need role swarm-manager; the caller's certificate has role swarm-worker");
      const list = await callUnary(client.listSecrets.bind(client), { filters: { names: ['sneaky'], idPrefixes: [], labels: {}, namePrefixes: [] } });
      expect(JSON.parse(list.secretsJson)).toEqual([]);
    } finally {
      asWorker.close();
    }
  });
});
