// How a manager's Node object gets its Description (hostname, platform, engine version): the node
// knows it, only the leader may write it. A small JSON gRPC service on the cluster port
// (`/shoal.daemon.NodeDescription/Describe`, manager-only like every path proto/grpc/authz.ts does
// not list) lets a follower hand its description to the leader, who records it.
import os from 'node:os';

import * as grpc from '@grpc/grpc-js';

import type { Manager } from '../../../manager/manager.js';
import type { NodeDescription } from '../../../manager/store/index.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials } from '../../../proto/grpc/tls.js';
import { goArch, SHOAL_VERSION } from '../../version.js';

interface DescribeRequest {
  readonly nodeId: string;
  readonly description: NodeDescription;
}

const jsonSerialize = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
const jsonDeserialize = (b: Buffer): unknown => JSON.parse(b.toString('utf8')) as unknown;

export const NODE_DESCRIPTION_SERVICE = {
  describe: {
    path: '/shoal.daemon.NodeDescription/Describe',
    requestStream: false,
    responseStream: false,
    requestSerialize: jsonSerialize,
    requestDeserialize: jsonDeserialize,
    responseSerialize: jsonSerialize,
    responseDeserialize: jsonDeserialize,
  },
} as const satisfies grpc.ServiceDefinition;

const DescriptionClient = grpc.makeGenericClientConstructor(NODE_DESCRIPTION_SERVICE, 'NodeDescription');

export function localDescription(hostname: string): NodeDescription {
  return {
    Hostname: hostname,
    Platform: { Architecture: os.arch() === 'x64' ? 'x86_64' : os.arch(), OS: 'linux' },
    Resources: { NanoCPUs: os.cpus().length * 1e9, MemoryBytes: os.totalmem() },
    Engine: { EngineVersion: SHOAL_VERSION, Plugins: [{ Type: 'Network', Name: 'overlay' }], Labels: { 'shoal.arch': goArch() } },
  } as NodeDescription;
}

/** Records `description` on node `nodeId` (leader only; `m.update` refuses elsewhere). */
export async function recordDescription(m: Manager, nodeId: string, description: NodeDescription): Promise<void> {
  await m.update((tx) => {
    const cur = tx.get('node', nodeId);
    if (cur === undefined) return;
    tx.update('node', { ...cur, Description: description });
  });
}

export function describeImplementation(manager: () => Manager | null): grpc.UntypedServiceImplementation {
  return {
    describe: (call: grpc.ServerUnaryCall<DescribeRequest, Record<string, never>>, cb: grpc.sendUnaryData<Record<string, never>>) => {
      const m = manager();
      if (m === null) {
        cb({ code: grpc.status.UNAVAILABLE, details: 'manager is starting' });
        return;
      }
      recordDescription(m, call.request.nodeId, call.request.description).then(
        () => cb(null, {}),
        (err: unknown) => cb({ code: grpc.status.UNAVAILABLE, details: (err as Error).message }),
      );
    },
  };
}

/** Sends this node's description to the leader at `addr`. */
export async function sendDescription(m: Manager, addr: string, description: NodeDescription): Promise<void> {
  const client = new DescriptionClient(addr, clusterChannelCredentials(m.identity, m.clusterId), CLUSTER_CHANNEL_OPTIONS);
  try {
    await new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        NODE_DESCRIPTION_SERVICE.describe.path,
        jsonSerialize,
        jsonDeserialize,
        { nodeId: m.nodeId, description },
        new grpc.Metadata(),
        { deadline: Date.now() + 5000 },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  } finally {
    client.close();
  }
}
