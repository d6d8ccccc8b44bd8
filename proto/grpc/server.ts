// The cluster port's gRPC server: TLS 1.3, client certificates verified against the cluster's trust
// bundle, and authorization per call (authz.ts) before any handler runs.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import { authorizationInterceptor, type RemovedNodeList } from './authz.js';
import { ClusterServerCredentials, type TlsMaterial } from './tls.js';

export interface ClusterServerOptions {
  readonly material: TlsMaterial;
  /** Read on every call, so a server outlives nothing it should not (the cluster ID never changes). */
  readonly clusterId: string;
  readonly removed: RemovedNodeList;
  readonly logger: Logger;
  readonly serverOptions?: grpc.ServerOptions;
}

export interface ClusterServer {
  readonly server: grpc.Server;
  readonly credentials: ClusterServerCredentials;
  /** Binds and starts; resolves with the bound port (pass port 0 for any). */
  listen(address: string): Promise<number>;
  /** Graceful shutdown, forced after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_SHUTDOWN_GRACE_MS = 2000;

export function createClusterServer(options: ClusterServerOptions): ClusterServer {
  const credentials = new ClusterServerCredentials(options.material);
  const server = new grpc.Server({
    ...options.serverOptions,
    interceptors: [
      authorizationInterceptor({ clusterId: () => options.clusterId, removed: options.removed, logger: options.logger }),
      ...(options.serverOptions?.interceptors ?? []),
    ],
  });
  return {
    server,
    credentials,
    listen: (address) =>
      new Promise((resolve, reject) => {
        server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
      }),
    close: (graceMs = DEFAULT_SHUTDOWN_GRACE_MS) =>
      new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
