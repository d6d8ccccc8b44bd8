// Per-call authorization on the cluster port, from the peer's verified certificate.
//
// Every method of every service has a requirement (METHOD_REQUIREMENTS, built from the generated
// service definitions so that a new RPC cannot go unlisted; an unknown path is treated as manager-only):
//   join-time  no certificate needed: CA.GetRootCACertificate, CA.IssueNodeCertificate only
//   any-node   a verified certificate of this cluster, role worker or manager
//   manager    a verified certificate of this cluster with OU swarm-manager
// and every certificate-bearing call is also refused when its node is on the removed-node list.
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';

import { CAService } from '../gen/shoal/ca.js';
import { ControlService } from '../gen/shoal/control.js';
import { DispatcherService } from '../gen/shoal/dispatcher.js';
import { LogBrokerService, LogsService } from '../gen/shoal/logs.js';
import { RaftMembershipService, RaftService } from '../gen/shoal/raft.js';

export type PeerRole = 'swarm-manager' | 'swarm-worker';
export type Requirement = 'join-time' | 'any-node' | 'manager';

/** The identity a verified client certificate proves. */
export interface PeerIdentity {
  readonly nodeId: string;
  readonly role: PeerRole;
  readonly clusterId: string;
}

/** Nodes removed from the cluster: refused even while their certificates are valid. The store implements it later. */
export interface RemovedNodeList {
  isRemoved(nodeId: string): boolean;
}

export class InMemoryRemovedNodes implements RemovedNodeList {
  private readonly removed = new Set<string>();
  add(nodeId: string): void {
    this.removed.add(nodeId);
  }
  delete(nodeId: string): void {
    this.removed.delete(nodeId);
  }
  isRemoved(nodeId: string): boolean {
    return this.removed.has(nodeId);
  }
}

type ServiceDefinition = Readonly<Record<string, { readonly path: string }>>;

function requirementsOf(service: ServiceDefinition, requirement: Requirement, overrides: Readonly<Record<string, Requirement>> = {}): [string, Requirement][] {
  return Object.entries(service).map(([name, method]) => [method.path, overrides[name] ?? requirement]);
}

/** Method path → requirement, for every method of every service on the cluster port. */
export const METHOD_REQUIREMENTS: ReadonlyMap<string, Requirement> = new Map([
  ...requirementsOf(CAService, 'any-node', { getRootCaCertificate: 'join-time', issueNodeCertificate: 'join-time' }),
  ...requirementsOf(RaftService, 'manager'),
  ...requirementsOf(RaftMembershipService, 'manager'),
  ...requirementsOf(ControlService, 'manager'),
  ...requirementsOf(LogsService, 'manager'),
  ...requirementsOf(DispatcherService, 'any-node'),
  ...requirementsOf(LogBrokerService, 'any-node'),
]);

export function requirementFor(path: string): Requirement {
  return METHOD_REQUIREMENTS.get(path) ?? 'manager';
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The identity in a verified peer certificate, or null when the certificate is not a node certificate. */
export function identityFromPeerCertificate(cert: PeerCertificate | undefined): PeerIdentity | null {
  if (cert === undefined) return null;
  const nodeId = firstValue(cert.subject?.CN);
  const role = firstValue(cert.subject?.OU);
  const clusterId = firstValue(cert.subject?.O);
  if (nodeId === undefined || clusterId === undefined || (role !== 'swarm-manager' && role !== 'swarm-worker')) return null;
  return { nodeId, role, clusterId };
}

// Reading the peer certificate is costly (TLSSocket.getPeerCertificate builds the whole parsed
// certificate object on every call); a busy dispatcher did it twice per heartbeat and status report.
// So the identity is read once per connection and handed to the handler:
// - per connection: cached by grpc-js's HTTP/2 session of the call (one TLS connection, whose
//   verified client certificate cannot change: TLS 1.3 has no renegotiation). grpc-js does not
//   expose the session publicly; when it cannot be found the certificate is read per call.
// - per call: the interceptor records the identity it authorized under the call's request
//   Metadata object (the same object the handler receives as `call.metadata`), so `peerIdentity`
//   in a handler returns it without reading the certificate again. Only this module writes that
//   map, and only from the verified certificate, so a caller cannot forge an entry.
const identityOfSession = new WeakMap<object, PeerIdentity | null>();
const identityOfMetadata = new WeakMap<object, PeerIdentity | null>();

interface AuthContextCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

function readIdentity(call: AuthContextCall): PeerIdentity | null {
  return identityFromPeerCertificate(call.getAuthContext()?.sslPeerCertificate);
}

/** The HTTP/2 session (one TLS connection) under a grpc-js server call, when reachable. */
function sessionOf(call: object): object | undefined {
  const session = (call as { stream?: { session?: unknown } }).stream?.session;
  return typeof session === 'object' && session !== null ? session : undefined;
}

/** The verified identity of the caller's connection, read from its certificate once per connection. */
export function connectionIdentity(call: AuthContextCall): PeerIdentity | null {
  const session = sessionOf(call);
  if (session === undefined) return readIdentity(call);
  const cached = identityOfSession.get(session);
  if (cached !== undefined) return cached;
  const identity = readIdentity(call);
  identityOfSession.set(session, identity);
  return identity;
}

/** The verified identity of the caller of a server call, or null (no certificate, or it did not verify). */
export function peerIdentity(call: AuthContextCall & { readonly metadata?: unknown }): PeerIdentity | null {
  const md = call.metadata;
  if (typeof md === 'object' && md !== null) {
    const known = identityOfMetadata.get(md);
    if (known !== undefined) return known;
  }
  return readIdentity(call);
}

export type Decision =
  | { readonly allowed: true; readonly peer: PeerIdentity | null }
  | { readonly allowed: false; readonly code: grpc.status; readonly details: string };

function serviceName(path: string): string {
  const service = path.split('/')[1] ?? path;
  return service.slice(service.lastIndexOf('.') + 1);
}

/** The authorization decision for one call. Pure: tests call it directly too. */
export function authorize(
  path: string,
  peer: PeerIdentity | null,
  clusterId: string,
  removed: RemovedNodeList,
): Decision {
  const requirement = requirementFor(path);
  if (requirement === 'join-time') return { allowed: true, peer };
  if (peer === null) {
    return {
      allowed: false,
      code: grpc.status.UNAUTHENTICATED,
      details: `${path} needs a client certificate issued by this cluster's CA: none was presented, or it did not verify (expired, not yet valid, or from another CA)`,
    };
  }
  if (peer.clusterId !== clusterId) {
    return { allowed: false, code: grpc.status.PERMISSION_DENIED, details: `the certificate belongs to cluster ${peer.clusterId}, not to this cluster (${clusterId})` };
  }
  if (removed.isRemoved(peer.nodeId)) {
    return { allowed: false, code: grpc.status.PERMISSION_DENIED, details: `node ${peer.nodeId} was removed from the cluster` };
  }
  if (requirement === 'manager' && peer.role !== 'swarm-manager') {
    return {
      allowed: false,
      code: grpc.status.PERMISSION_DENIED,
      details: `${serviceName(path)} calls need role swarm-manager; the caller's certificate has role ${peer.role}`,
    };
  }
  return { allowed: true, peer };
}

export interface AuthorizationOptions {
  readonly clusterId: () => string;
  readonly removed: RemovedNodeList;
  readonly logger: Logger;
}

/** A grpc-js server interceptor that applies `authorize` before any handler sees the call. */
export function authorizationInterceptor(options: AuthorizationOptions): grpc.ServerInterceptor {
  return (method, call) => {
    const decision = authorize(method.path, connectionIdentity(call), options.clusterId(), options.removed);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (decision.allowed) {
          identityOfMetadata.set(metadata, decision.peer);
          next(metadata);
          return;
        }
        options.logger.warn({ peer: call.getConnectionInfo(), method: method.path, code: grpc.status[decision.code] }, decision.details);
        call.sendStatus({ code: decision.code, details: decision.details });
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
