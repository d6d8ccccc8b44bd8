// The joining node's side (swarm join) and a member's renewal.
//
// joinCluster never sends the token before it has checked the CA:
//   1. parseJoinToken                 — a malformed token stops here, nothing is sent at all
//   2. fetchRootCertificates          — TLS without a client certificate and without trusting the
//                                       server (untrustedChannelCredentials): GetRootCACertificate
//   3. trustBundleFromRoots           — SHA-256 of the root's DER must equal the token's digest,
//                                       otherwise CA_DIGEST_MISMATCH and the join stops
//   4. generateNodeKey, createNodeCsr — the private key stays here
//   5. IssueNodeCertificate(token, CSR) over a channel that verifies the server against the checked
//                                       root (joinChannelCredentials); the answer is checked too
import { X509Certificate } from 'node:crypto';

import { CAClient, type GetRootCACertificateResponse } from '../proto/gen/shoal/ca.js';
import { callUnary, DEFAULT_CALL_TIMEOUT_MS } from '../proto/grpc/client.js';
import {
  CLUSTER_CHANNEL_OPTIONS,
  clusterChannelCredentials,
  joinChannelCredentials,
  untrustedChannelCredentials,
} from '../proto/grpc/tls.js';
import { createNodeCsr, generateNodeKey, privateKeyPem } from './csr.js';
import { CAError } from './errors.js';
import { identityFrom, type NodeIdentity } from './identity.js';
import { parseJoinToken, rootDigestBase36, rootDigestHex } from './join-token.js';
import { checkChain, parseCertificates } from './verify.js';

export interface JoinOptions {
  /** host:port of a manager. */
  readonly address: string;
  readonly token: string;
  readonly callTimeoutMs?: number;
  readonly nowMs?: () => number;
}

/** Step 2: the CA's root as the server shows it. Not trusted yet. */
export async function fetchRootCertificates(address: string, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<GetRootCACertificateResponse> {
  const client = new CAClient(address, untrustedChannelCredentials(), CLUSTER_CHANNEL_OPTIONS);
  try {
    return await callUnary(client.getRootCaCertificate.bind(client), {}, timeoutMs);
  } finally {
    client.close();
  }
}

/**
 * Step 3: the roots to trust, if the shown root matches the token's digest. During a root rotation
 * the next root is trusted too, but only because a cross-signature by the checked root vouches for it.
 */
export function trustBundleFromRoots(roots: GetRootCACertificateResponse, expectedDigest: string, nowMs: number): string {
  const [root] = parseCertificates(roots.certificatePem);
  if (root === undefined) throw new CAError('UNTRUSTED_ROOT', 'the manager sent no root CA certificate');
  const shown = rootDigestBase36(root.raw);
  if (shown !== expectedDigest) {
    throw new CAError(
      'CA_DIGEST_MISMATCH',
      `the remote CA does not match the CA digest in the join token (token expects ${expectedDigest}, the manager shows ${shown}, sha256 ${rootDigestHex(root.raw)}): check the token and the manager address`,
    );
  }
  const bundle = [root];
  const [crossSigned] = parseCertificates(roots.crossSignedRootPem);
  const [next] = parseCertificates(roots.nextRootPem);
  if (crossSigned !== undefined && next !== undefined && vouchesFor(root, crossSigned, next, nowMs)) bundle.push(next);
  return bundle.map((c) => c.toString()).join('');
}

function vouchesFor(root: X509Certificate, crossSigned: X509Certificate, next: X509Certificate, nowMs: number): boolean {
  const sameKey = crossSigned.publicKey.export({ format: 'der', type: 'spki' }).equals(next.publicKey.export({ format: 'der', type: 'spki' }));
  return sameKey && next.verify(next.publicKey) && checkChain([crossSigned], [root], nowMs).ok;
}

/** `swarm join --token T <address>`: a new node's identity. Throws CAError or a gRPC ServiceError. */
export async function joinCluster(options: JoinOptions): Promise<NodeIdentity> {
  const timeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const now = options.nowMs ?? Date.now;
  const token = parseJoinToken(options.token);
  const roots = await fetchRootCertificates(options.address, timeoutMs);
  const trustBundlePem = trustBundleFromRoots(roots, token.rootDigest, now());
  const key = await generateNodeKey();
  const csr = createNodeCsr(key);
  let serverClusterId: string | null = null;
  const client = new CAClient(
    options.address,
    joinChannelCredentials(trustBundlePem, (id) => (serverClusterId = id)),
    CLUSTER_CHANNEL_OPTIONS,
  );
  try {
    const response = await callUnary(client.issueNodeCertificate.bind(client), { token: options.token, csr, addr: '' }, timeoutMs);
    const chainPem = response.certificateChainPem.toString();
    const bundlePem = response.trustBundlePem.toString();
    checkIssued(chainPem, bundlePem.length > 0 ? bundlePem : trustBundlePem, key.publicKey.export({ format: 'der', type: 'spki' }), now());
    const identity = identityFrom(privateKeyPem(key), chainPem, bundlePem.length > 0 ? bundlePem : trustBundlePem);
    if (identity.clusterId !== response.clusterId || (serverClusterId !== null && serverClusterId !== identity.clusterId)) {
      throw new CAError('INVALID_CERTIFICATE', `the issued certificate names cluster ${identity.clusterId}, the manager says ${response.clusterId}`);
    }
    return identity;
  } finally {
    client.close();
  }
}

/** The issued chain must verify against what we trust and carry our key. */
function checkIssued(chainPem: string, trustBundlePem: string, ourSpki: Buffer, nowMs: number): void {
  const chain = parseCertificates(chainPem);
  const check = checkChain(chain, parseCertificates(trustBundlePem), nowMs);
  if (!check.ok) throw new CAError('INVALID_CERTIFICATE', `the issued certificate does not verify: ${check.reason}`);
  if (!chain[0]?.publicKey.export({ format: 'der', type: 'spki' }).equals(ourSpki)) {
    throw new CAError('INVALID_CERTIFICATE', 'the issued certificate is not for the key this node generated');
  }
}

export interface RenewOptions {
  readonly address: string;
  readonly identity: NodeIdentity;
  readonly callTimeoutMs?: number;
  readonly nowMs?: () => number;
}

/** Renewal over mutual TLS with the current certificate: new key, new CSR, new certificate. */
export async function renewNodeCertificate(options: RenewOptions): Promise<NodeIdentity> {
  const now = options.nowMs ?? Date.now;
  const key = await generateNodeKey();
  const client = new CAClient(options.address, clusterChannelCredentials(options.identity, options.identity.clusterId), CLUSTER_CHANNEL_OPTIONS);
  try {
    const response = await callUnary(
      client.renewNodeCertificate.bind(client),
      { csr: createNodeCsr(key) },
      options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    );
    const chainPem = response.certificateChainPem.toString();
    const bundlePem = response.trustBundlePem.toString();
    // Trust what we trusted before plus what the CA now says (a rotation adds the next root).
    checkIssued(chainPem, options.identity.trustBundlePem + bundlePem, key.publicKey.export({ format: 'der', type: 'spki' }), now());
    const identity = identityFrom(privateKeyPem(key), chainPem, bundlePem);
    if (identity.nodeId !== options.identity.nodeId || identity.clusterId !== options.identity.clusterId) {
      throw new CAError('INVALID_CERTIFICATE', `the renewed certificate is for node ${identity.nodeId} of cluster ${identity.clusterId}`);
    }
    return identity;
  } finally {
    client.close();
  }
}
