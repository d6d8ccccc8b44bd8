// The CA service on a manager's cluster port (proto/shoal/ca.proto).
// Join-time calls (no client certificate): GetRootCACertificate, IssueNodeCertificate (token + CSR).
// Certificate-bearing calls: RenewNodeCertificate, NodeCertificateStatus (the caller is its CN).
// Authorization by role/cluster/removal happens before these handlers (proto/grpc/authz.ts).
import { X509Certificate } from 'node:crypto';

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import { CAService, type CAServer } from '../proto/gen/shoal/ca.js';
import { NodeCertificateInfo_Status } from '../proto/gen/shoal/types.js';
import { peerIdentity } from '../proto/grpc/authz.js';
import type { ClusterCA } from './cluster-ca.js';
import { CAError } from './errors.js';
import { newNodeId } from './ids.js';
import { matchJoinToken } from './join-token.js';
import type { CANodeRegistry } from './node-registry.js';
import { roleToProto } from './roles.js';
import { isSignedBy, readNodeCertificate } from './verify.js';

export const INVALID_JOIN_TOKEN = 'invalid join token';

export interface CAServiceOptions {
  /** Read on every call: the manager swaps in a new ClusterCA object when the store changes it. */
  readonly ca: () => ClusterCA;
  readonly registry: CANodeRegistry;
  readonly logger: Logger;
  readonly nowMs?: () => number;
}

function fail(callback: grpc.sendUnaryData<never>, code: grpc.status, details: string): void {
  callback({ code, details, name: 'CAError', message: details });
}

function issueFailure(err: unknown): { code: grpc.status; details: string } {
  if (err instanceof CAError && err.code === 'INVALID_CSR') return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  return { code: grpc.status.INTERNAL, details: `certificate issuance failed: ${(err as Error).message}` };
}

export function caServiceImplementation(options: CAServiceOptions): CAServer {
  const now = options.nowMs ?? Date.now;
  const log = options.logger;
  return {
    getRootCaCertificate: (_call, callback) => {
      const roots = options.ca().rootCertificates();
      callback(null, {
        certificatePem: Buffer.from(roots.rootPem),
        crossSignedRootPem: Buffer.from(roots.crossSignedPem),
        nextRootPem: Buffer.from(roots.nextRootPem),
      });
    },

    issueNodeCertificate: (call, callback) => {
      const ca = options.ca();
      const role = matchJoinToken(ca.joinTokens, call.request.token);
      if (role === null) {
        // Never log the token: a near-miss would leak most of a secret into the logs.
        log.warn({ peer: call.getPeer(), method: 'IssueNodeCertificate' }, 'join refused: invalid join token');
        fail(callback, grpc.status.PERMISSION_DENIED, INVALID_JOIN_TOKEN);
        return;
      }
      const nodeId = newNodeId();
      try {
        const issued = ca.issue(call.request.csr, nodeId, role, now());
        options.registry.addNode(nodeId, role, issued.chainPem);
        log.info({ peer: call.getPeer(), nodeId, role }, 'node joined');
        callback(null, {
          nodeId,
          role: roleToProto(role),
          clusterId: ca.clusterId,
          certificateChainPem: Buffer.from(issued.chainPem),
          trustBundlePem: Buffer.from(issued.trustBundlePem),
        });
      } catch (err) {
        const { code, details } = issueFailure(err);
        fail(callback, code, details);
      }
    },

    renewNodeCertificate: (call, callback) => {
      const peer = peerIdentity(call);
      if (peer === null) {
        fail(callback, grpc.status.UNAUTHENTICATED, 'renewal needs the current node certificate');
        return;
      }
      const node = options.registry.get(peer.nodeId);
      if (node === null || node.removed) {
        fail(callback, grpc.status.PERMISSION_DENIED, `node ${peer.nodeId} is not a member of this cluster`);
        return;
      }
      try {
        const issued = options.ca().issue(call.request.csr, peer.nodeId, node.desiredRole, now());
        options.registry.recordCertificate(peer.nodeId, issued.chainPem);
        log.info({ nodeId: peer.nodeId, from: peer.role, to: node.desiredRole }, 'node certificate renewed');
        callback(null, {
          nodeId: peer.nodeId,
          role: roleToProto(node.desiredRole),
          certificateChainPem: Buffer.from(issued.chainPem),
          trustBundlePem: Buffer.from(issued.trustBundlePem),
        });
      } catch (err) {
        const { code, details } = issueFailure(err);
        fail(callback, code, details);
      }
    },

    nodeCertificateStatus: (call, callback) => {
      const peer = peerIdentity(call);
      const node = peer === null ? null : options.registry.get(peer.nodeId);
      if (peer === null || node === null) {
        fail(callback, grpc.status.NOT_FOUND, 'no certificate on record for the caller');
        return;
      }
      const ca = options.ca();
      const rotation = ca.rootCA.rotation;
      const underNextRoot = rotation === null || isSignedBy(node.certificatePem, new X509Certificate(Buffer.from(rotation.next.cert.rawData)));
      const certRole = readNodeCertificate(node.certificatePem).role;
      callback(null, {
        nodeId: peer.nodeId,
        status: {
          status: NodeCertificateInfo_Status.STATUS_ISSUED,
          statusMessage: '',
          certificatePem: Buffer.from(node.certificatePem),
          role: roleToProto(node.desiredRole),
          commonName: peer.nodeId,
        },
        renewNow: certRole !== node.desiredRole || !underNextRoot,
      });
    },
  };
}

export function addCAService(server: grpc.Server, options: CAServiceOptions): void {
  server.addService(CAService, caServiceImplementation(options));
}
