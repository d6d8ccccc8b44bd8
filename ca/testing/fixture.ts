// A CA server on loopback for tests and benchmarks: real TLS, real gRPC, port 0, a temp-free setup
// (everything in memory). Also registers minimal Dispatcher/Control/Raft handlers so that the
// authorization of those services can be exercised before their real implementations exist.
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import { ControlService } from '../../proto/gen/shoal/control.js';
import { DispatcherService } from '../../proto/gen/shoal/dispatcher.js';
import { RaftService } from '../../proto/gen/shoal/raft.js';
import { createClusterServer, type ClusterServer } from '../../proto/grpc/server.js';
import { addCAService } from '../ca-server.js';
import { ClusterCA } from '../cluster-ca.js';
import type { CertExpiryOptions } from '../expiry.js';
import { newNodeId } from '../ids.js';
import type { NodeIdentity } from '../identity.js';
import { InMemoryNodeRegistry } from '../node-registry.js';
import { MANAGER_ROLE } from '../roles.js';

export interface ReceivedMessage {
  readonly path: string;
  readonly message: unknown;
}

export interface CAFixture {
  readonly ca: ClusterCA;
  readonly registry: InMemoryNodeRegistry;
  readonly manager: NodeIdentity;
  readonly server: ClusterServer;
  readonly address: string;
  /** Every request message the server received, in order (recorded after authorization). */
  readonly received: ReceivedMessage[];
  /** The server's log lines (JSON). */
  readonly logLines: string[];
  close(): Promise<void>;
}

export interface CAFixtureOptions {
  readonly expiry?: CertExpiryOptions;
  /** Record received messages (tests); off for benchmarks. */
  readonly record?: boolean;
  readonly logger?: Logger;
}

function recordingInterceptor(received: ReceivedMessage[]): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(
      call,
      new grpc.ResponderBuilder()
        .withStart((next) =>
          next(
            new grpc.ServerListenerBuilder()
              .withOnReceiveMessage((message, nextMessage) => {
                received.push({ path: method.path, message });
                nextMessage(message);
              })
              .build(),
          ),
        )
        .build(),
    );
}

export async function startCAFixture(options: CAFixtureOptions = {}): Promise<CAFixture> {
  const logLines: string[] = [];
  const logger = options.logger ?? pino({ level: 'info', base: { component: 'ca-server' } }, { write: (line: string) => void logLines.push(line) });
  const ca = await ClusterCA.create({ nowMs: Date.now(), ...(options.expiry === undefined ? {} : { expiry: options.expiry }) });
  const registry = new InMemoryNodeRegistry();
  const managerId = newNodeId();
  const manager = await ca.issueLocalIdentity(managerId, MANAGER_ROLE, Date.now());
  registry.addNode(managerId, MANAGER_ROLE, manager.certChainPem);
  const received: ReceivedMessage[] = [];
  const server = createClusterServer({
    material: manager,
    clusterId: ca.clusterId,
    removed: registry,
    logger,
    serverOptions: options.record === false ? {} : { interceptors: [recordingInterceptor(received)] },
  });
  addCAService(server.server, { ca: () => ca, registry, logger });
  server.server.addService(DispatcherService, {
    session: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    heartbeat: (_call: unknown, cb: grpc.sendUnaryData<{ periodMs: number }>) => cb(null, { periodMs: 5000 }),
    updateTaskStatus: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, {}),
    assignments: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
  });
  server.server.addService(ControlService, {
    listNodes: (_call: unknown, cb: grpc.sendUnaryData<{ nodes: never[]; nodesJson: string }>) => cb(null, { nodes: [], nodesJson: '[]' }),
  });
  server.server.addService(RaftService, {
    resolveAddress: (_call: unknown, cb: grpc.sendUnaryData<{ addr: string }>) => cb(null, { addr: '' }),
  });
  const port = await server.listen('127.0.0.1:0');
  return {
    ca,
    registry,
    manager,
    server,
    address: `127.0.0.1:${port}`,
    received,
    logLines,
    close: () => server.close(),
  };
}
