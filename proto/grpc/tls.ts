// TLS for the cluster port: TLS 1.3 only, mutual where the caller has a certificate.
//
// Why a ServerCredentials subclass: grpc-js's ServerCredentials.createSsl(root, pairs, check) maps
// `check` to Node's requestCert and leaves rejectUnauthorized at its default (true). With check=false
// the server never asks for a client certificate, so no call can be authenticated (shown in
// tls.test.ts); with check=true a peer without a certificate cannot even finish the handshake, so a
// joining node could not reach GetRootCACertificate. We want requestCert=true, rejectUnauthorized=false:
// every presented certificate is verified by OpenSSL against the trust bundle, the handshake completes
// either way, and grpc-js's call.getAuthContext() carries the peer certificate only when the
// verification succeeded (it reads socket.authorized). authz.ts then decides per method.
// createSsl also cannot set minVersion; here both the server options and the secure context say TLS 1.3.
import * as tls from 'node:tls';
import type { PeerCertificate } from 'node:tls';

import * as grpc from '@grpc/grpc-js';

export const TLS_MIN_VERSION = 'TLSv1.3' as const;
/** The name clients send as SNI and expect among a manager's DNS SANs. */
export const MANAGER_SERVER_NAME = 'swarm-manager';

/** What a node presents and trusts. `NodeIdentity` (ca/identity.ts) has this shape. */
export interface TlsMaterial {
  readonly keyPem: string;
  readonly certChainPem: string;
  readonly trustBundlePem: string;
}

function contextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return {
    key: material.keyPem,
    cert: material.certChainPem,
    ca: material.trustBundlePem,
    minVersion: TLS_MIN_VERSION,
  };
}

/**
 * Server side of the cluster port. `update()` swaps certificate and trust bundle for new connections
 * (after a renewal or during a root rotation) without restarting the server.
 */
export class ClusterServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial) {
    super({ requestCert: true, rejectUnauthorized: false, minVersion: TLS_MIN_VERSION }, contextOptions(material));
  }

  update(material: TlsMaterial): void {
    this.updateSecureContextOptions(contextOptions(material));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export type ServerCheck =
  /** The server must hold a manager certificate of this cluster. */
  | { readonly kind: 'cluster-manager'; readonly clusterId: string }
  /** The server must hold a manager certificate under the trusted roots; its cluster ID is learnt. */
  | { readonly kind: 'any-manager'; readonly onClusterId?: (clusterId: string) => void };

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Node's checkServerIdentity hook: runs only after the chain verified against our trust bundle. */
function checkServer(check: ServerCheck, cert: PeerCertificate): Error | undefined {
  const role = firstValue(cert.subject?.OU);
  const clusterId = firstValue(cert.subject?.O);
  if (role !== MANAGER_SERVER_NAME) return new Error(`the server's certificate has role ${role ?? 'none'}, not swarm-manager`);
  if (clusterId === undefined) return new Error("the server's certificate has no cluster ID (O)");
  if (check.kind === 'cluster-manager' && clusterId !== check.clusterId) {
    return new Error(`the server belongs to cluster ${clusterId}, not ${check.clusterId}`);
  }
  if (check.kind === 'any-manager') check.onClusterId?.(clusterId);
  return undefined;
}

/** A node talking to a manager with its own certificate (mutual TLS). */
export function clusterChannelCredentials(material: TlsMaterial, clusterId: string): grpc.ChannelCredentials {
  const context = tls.createSecureContext(contextOptions(material));
  return grpc.credentials.createFromSecureContext(context, {
    checkServerIdentity: (_host, cert) => checkServer({ kind: 'cluster-manager', clusterId }, cert),
  });
}

/**
 * A joiner after it checked the root against its token: no client certificate yet, the server must
 * chain to `trustBundlePem`.
 */
export function joinChannelCredentials(trustBundlePem: string, onClusterId?: (clusterId: string) => void): grpc.ChannelCredentials {
  const context = tls.createSecureContext({ ca: trustBundlePem, minVersion: TLS_MIN_VERSION });
  const check: ServerCheck = onClusterId === undefined ? { kind: 'any-manager' } : { kind: 'any-manager', onClusterId };
  return grpc.credentials.createFromSecureContext(context, { checkServerIdentity: (_host, cert) => checkServer(check, cert) });
}

/**
 * A joiner before it has a trusted root: encrypted but unauthenticated. Only for
 * GetRootCACertificate, whose answer is checked against the token's digest before it is believed.
 */
export function untrustedChannelCredentials(): grpc.ChannelCredentials {
  const context = tls.createSecureContext({ minVersion: TLS_MIN_VERSION });
  return grpc.credentials.createFromSecureContext(context, { rejectUnauthorized: false });
}

/**
 * Channel options for every cluster client: a private subchannel pool, so that closing a client
 * closes its connection and clients with different credentials never share one. Channelz stays on:
 * with 'grpc.enable_channelz' 0, grpc-js 1.x did not reconnect a Raft stream to a peer that came
 * back on the same address (raft/transport/grpc.test.ts, chunked snapshot test), for no
 * measurable CPU gain.
 */
export const CLUSTER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': MANAGER_SERVER_NAME,
  'grpc.default_authority': MANAGER_SERVER_NAME,
  'grpc.use_local_subchannel_pool': 1,
};
