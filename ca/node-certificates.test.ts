// NodeCertificates without a network: the renew callback asks a ClusterCA directly, files go to a
// temp dir. What the cluster wants (role, trust bundle) drives renewal and trust updates.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ClusterCA } from './cluster-ca.js';
import { createNodeCsr, generateNodeKey, privateKeyPem } from './csr.js';
import { identityFrom, KEY_FILE, loadIdentity, type NodeIdentity } from './identity.js';
import { newNodeId } from './ids.js';
import { desiredFromSession, NodeCertificates, type IdentityChange } from './node-certificates.js';
import { MANAGER_ROLE, WORKER_ROLE, type NodeRole } from './roles.js';
import { issuedBy, nodeTlsInfo } from './tls-info.js';
import { parseCertificates } from './verify.js';

let dir: string;
let certs: NodeCertificates | null = null;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-node-certs-'));
});

afterEach(async () => {
  await certs?.stop();
  certs = null;
  await rm(dir, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** A CA and a node whose renewals the CA answers with the role `wanted.role`. */
async function setup(): Promise<{ ca: ClusterCA; node: NodeCertificates; wanted: { role: NodeRole }; changes: IdentityChange[]; reasons: string[] }> {
  const ca = await ClusterCA.create({ nowMs: Date.now() });
  const nodeId = newNodeId();
  const first = await ca.issueLocalIdentity(nodeId, WORKER_ROLE, Date.now());
  const wanted = { role: WORKER_ROLE as NodeRole };
  const reasons: string[] = [];
  const node = new NodeCertificates({
    identity: first,
    certificatesDir: dir,
    renew: async (current: NodeIdentity, reason) => {
      reasons.push(reason);
      const key = await generateNodeKey();
      const issued = ca.issue(createNodeCsr(key), current.nodeId, wanted.role, Date.now());
      return identityFrom(privateKeyPem(key), issued.chainPem, issued.trustBundlePem);
    },
    retryDelayMs: 20,
    maxRetryDelayMs: 100,
  });
  const changes: IdentityChange[] = [];
  node.onChange((_id, change) => changes.push(change));
  certs = node;
  return { ca, node, wanted, changes, reasons };
}

describe('NodeCertificates', () => {
  it('a role change renews at once; the new identity is saved (key 0600) before listeners hear of it', async () => {
    const { node, wanted, changes, reasons } = await setup();
    node.start();
    wanted.role = MANAGER_ROLE;
    node.setDesired({ role: MANAGER_ROLE });
    await until('a manager certificate', () => node.identity.role === MANAGER_ROLE);
    expect(reasons).toEqual(['role-changed']);
    expect(changes).toEqual(['renewed']);
    const saved = await loadIdentity(dir);
    expect(saved.role).toBe(MANAGER_ROLE);
    expect(saved.keyPem).toBe(node.identity.keyPem);
    expect((await stat(path.join(dir, KEY_FILE))).mode & 0o777).toBe(0o600);
  });

  it('a root rotation: renews under the next root once, trusts [old, new]; after the finish trusts [new] only without renewing', async () => {
    const { ca, node, changes, reasons } = await setup();
    node.start();
    await ca.startRootRotation(Date.now());
    const next = parseCertificates(ca.rootCertificates().nextRootPem)[0]!;
    node.setDesired({ trustBundlePem: ca.trustBundlePem() });
    node.setDesired({ trustBundlePem: ca.trustBundlePem() }); // heard twice (session and store): still one renewal
    await until('a certificate under the next root', () => issuedBy(node.identity.certChainPem, next));
    expect(reasons).toEqual(['requested']);
    expect(parseCertificates(node.identity.trustBundlePem)).toHaveLength(2);
    expect(nodeTlsInfo(node.identity.certChainPem, node.identity.trustBundlePem).CertIssuerPublicKey).toBe(
      next.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    );

    await ca.finishRootRotation();
    node.setDesired({ trustBundlePem: ca.trustBundlePem() });
    await until('the old root dropped', () => parseCertificates(node.identity.trustBundlePem).length === 1);
    expect(parseCertificates(node.identity.trustBundlePem)[0]!.fingerprint256).toBe(next.fingerprint256);
    expect(reasons).toEqual(['requested']);
    expect(changes).toEqual(['renewed', 'trust-updated']);
    expect(parseCertificates((await loadIdentity(dir)).trustBundlePem)).toHaveLength(1);
  });

  it('stop() does not wait past its limit for a renewal that hangs, and nothing is installed after it', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const first = await ca.issueLocalIdentity(newNodeId(), WORKER_ROLE, Date.now());
    let calls = 0;
    const node = new NodeCertificates({ identity: first, certificatesDir: dir, renew: () => (calls++, new Promise<NodeIdentity>(() => undefined)), stopTimeoutMs: 50 });
    node.start();
    node.setDesired({ role: MANAGER_ROLE });
    await until('the renewal to start', () => calls === 1);
    await node.stop();
    expect(node.identity).toBe(first);
  });

  it('desiredFromSession reads the Node role and the root bundle of a session message', () => {
    const msg = { nodeJson: Buffer.from(JSON.stringify({ ID: 'x', Spec: { Role: 'manager', Availability: 'active' } })), rootCaPem: Buffer.from('PEM') };
    expect(desiredFromSession(msg)).toEqual({ role: MANAGER_ROLE, trustBundlePem: 'PEM' });
    expect(desiredFromSession({ nodeJson: Buffer.alloc(0), rootCaPem: Buffer.alloc(0) })).toEqual({});
  });
});
