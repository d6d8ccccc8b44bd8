// The control API as the daemon's handlers see it: reads answer from this manager's replicated
// store (committed state; on a follower after a Raft read barrier, `fresh`), writes go through this manager's ControlApi and, when this manager is a
// follower (ERR_CONTROL_NOT_LEADER), are sent to the leader's Control gRPC service over the
// cluster port (mTLS with this node's certificate) and answered with the leader's result or error.
import * as grpc from '@grpc/grpc-js';

import { ControlApi, type ClusterRotation } from '../../../manager/controlapi/control-api.js';
import { ControlError, fromGrpcError, toControlError } from '../../../manager/controlapi/errors.js';
import type { StoredCluster } from '../../../manager/controlapi/seams.js';
import type { Manager } from '../../../manager/manager.js';
import type { Config, Network, Node, Secret, Service } from '../../../manager/store/index.js';
import { ControlClient } from '../../../proto/gen/shoal/control.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials } from '../../../proto/grpc/tls.js';

const FORWARD_TIMEOUT_MS = 15_000;

type Unary = (req: unknown, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

export class ControlBackend {
  constructor(
    readonly manager: Manager,
    readonly api: ControlApi,
  ) {}

  /**
   * Runs `local`; on a follower, repeats the call on the leader's Control service instead (`request`
   * builds its message only then: the leader, where writes land, never pays for it).
   */
  private async write<T>(local: () => Promise<T>, method: string, request: () => Record<string, unknown>, field: string | null): Promise<T> {
    try {
      return await local();
    } catch (err) {
      const e = toControlError(err);
      if (e.code !== 'ERR_CONTROL_NOT_LEADER' || e.leaderId === null) throw e;
      const addr = this.manager.membership.addrOf(e.leaderId);
      if (addr === null) throw new ControlError('ERR_CONTROL_NO_LEADER', `no leader: the leader ${e.leaderId}'s address is not known here yet; retry`);
      const res = await this.forward(addr, method, request());
      if (field === null) return undefined as T;
      const text = res[field];
      if (typeof text !== 'string') throw new ControlError('ERR_CONTROL_INTERNAL', `the leader's ${method} answer carried no ${field}`);
      return JSON.parse(text) as T;
    }
  }

  private async forward(addr: string, method: string, request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const m = this.manager;
    const client = new ControlClient(addr, clusterChannelCredentials(m.identity, m.clusterId), CLUSTER_CHANNEL_OPTIONS);
    try {
      return await new Promise<Record<string, unknown>>((resolve, reject) => {
        const fn = (client as unknown as Record<string, Unary>)[method]!.bind(client);
        fn(request, new grpc.Metadata(), { deadline: Date.now() + FORWARD_TIMEOUT_MS }, (err, res) => {
          if (err) {
            if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
              reject(new ControlError('ERR_CONTROL_NO_LEADER', `no leader: the leader at ${addr} could not be reached (${err.details})`));
            } else reject(fromGrpcError(err));
          } else resolve(res);
        });
      });
    } finally {
      client.close();
    }
  }

  /**
   * Call before a read: on a follower, waits until this manager's store has what the leader had
   * committed (Manager.readBarrier), so reads here are never staler than the leader's.
   */
  async fresh(): Promise<this> {
    await this.manager.readBarrier();
    return this;
  }

  // ---- services
  createService(spec: unknown): Promise<Service> {
    return this.write(() => this.api.createService(spec), 'createService', () => ({ specJson: JSON.stringify(spec) }), 'serviceJson');
  }
  updateService(ref: string, version: number, spec: unknown, rollback: boolean): Promise<Service> {
    return this.write(
      () => this.api.updateService(ref, version, spec, { rollback }),
      'updateService',
      () => ({ serviceId: ref, serviceVersion: version, specJson: JSON.stringify(spec ?? {}), rollback }),
      'serviceJson',
    );
  }
  removeService(ref: string): Promise<void> {
    return this.write(() => this.api.removeService(ref), 'removeService', () => ({ serviceId: ref }), null);
  }

  // ---- nodes
  updateNode(ref: string, version: number, spec: unknown): Promise<Node> {
    return this.write(() => this.api.updateNode(ref, version, spec), 'updateNode', () => ({ nodeId: ref, nodeVersion: version, specJson: JSON.stringify(spec) }), 'nodeJson');
  }
  removeNode(ref: string, force: boolean): Promise<void> {
    return this.write(() => this.api.removeNode(ref, { force }), 'removeNode', () => ({ nodeId: ref, force }), null);
  }

  // ---- secrets, configs, networks
  createSecret(spec: unknown): Promise<Secret> {
    return this.write(() => this.api.createSecret(spec), 'createSecret', () => ({ specJson: JSON.stringify(spec) }), 'secretJson');
  }
  updateSecret(ref: string, version: number, spec: unknown): Promise<Secret> {
    return this.write(() => this.api.updateSecret(ref, version, spec), 'updateSecret', () => ({ secretId: ref, secretVersion: version, specJson: JSON.stringify(spec) }), 'secretJson');
  }
  removeSecret(ref: string): Promise<void> {
    return this.write(() => this.api.removeSecret(ref), 'removeSecret', () => ({ secretId: ref }), null);
  }
  createConfig(spec: unknown): Promise<Config> {
    return this.write(() => this.api.createConfig(spec), 'createConfig', () => ({ specJson: JSON.stringify(spec) }), 'configJson');
  }
  updateConfig(ref: string, version: number, spec: unknown): Promise<Config> {
    return this.write(() => this.api.updateConfig(ref, version, spec), 'updateConfig', () => ({ configId: ref, configVersion: version, specJson: JSON.stringify(spec) }), 'configJson');
  }
  removeConfig(ref: string): Promise<void> {
    return this.write(() => this.api.removeConfig(ref), 'removeConfig', () => ({ configId: ref }), null);
  }
  createNetwork(spec: unknown): Promise<Network> {
    return this.write(() => this.api.createNetwork(spec), 'createNetwork', () => ({ specJson: JSON.stringify(spec) }), 'networkJson');
  }
  removeNetwork(ref: string): Promise<void> {
    return this.write(() => this.api.removeNetwork(ref), 'removeNetwork', () => ({ networkId: ref }), null);
  }

  // ---- cluster
  updateCluster(ref: string | undefined, version: number, spec: unknown, rotate: ClusterRotation): Promise<StoredCluster> {
    return this.write(
      () => this.api.updateCluster(ref, version, spec, rotate),
      'updateCluster',
      () => ({
        clusterId: ref ?? '',
        clusterVersion: version,
        specJson: JSON.stringify(spec),
        rotateWorkerToken: rotate.workerToken ?? false,
        rotateManagerToken: rotate.managerToken ?? false,
        rotateManagerUnlockKey: rotate.unlockKey ?? false,
      }),
      'clusterJson',
    );
  }
}
