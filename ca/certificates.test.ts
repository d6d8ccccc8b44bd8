// Root CA, node certificates, CSRs, expiry policy and root rotation, checked with openssl and with
// node:crypto's verifier.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ClusterCA } from './cluster-ca.js';
import { createCsr, generateKeyPair } from './crypto.js';
import { createNodeCsr, generateNodeKey } from './csr.js';
import { CAError } from './errors.js';
import { certExpiryPolicy } from './expiry.js';
import { bytesToBase36, newNodeId } from './ids.js';
import { matchJoinToken, parseJoinToken, rootDigestBase36 } from './join-token.js';
import { rootDer, rotationProgress, trustBundle, toPem } from './root-ca.js';
import { MANAGER_ROLE, WORKER_ROLE } from './roles.js';
import { checkChain, parseCertificates, readNodeCertificate } from './verify.js';

const openssl = (args: string[], input?: string): string => execFileSync('openssl', args, input === undefined ? {} : { input }).toString();

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-ca-certs-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** openssl verify of a chain against a CA file; returns openssl's verdict line or its error. */
async function opensslVerify(trustPem: string, chainPem: string): Promise<string> {
  return withTempDir(async (dir) => {
    await writeFile(join(dir, 'trust.pem'), trustPem);
    await writeFile(join(dir, 'chain.pem'), chainPem);
    await writeFile(join(dir, 'leaf.pem'), parseCertificates(chainPem)[0]?.toString() ?? '');
    try {
      return openssl(['verify', '-CAfile', join(dir, 'trust.pem'), '-untrusted', join(dir, 'chain.pem'), join(dir, 'leaf.pem')]).trim();
    } catch (err) {
      return `FAILED ${String((err as { stdout?: Buffer }).stdout ?? err)}`;
    }
  });
}

async function nodeCert(ca: ClusterCA, role = WORKER_ROLE): Promise<string> {
  return ca.issue(createNodeCsr(await generateNodeKey()), newNodeId(), role, Date.now()).chainPem;
}

describe('root CA', () => {
  it('is a self-signed ECDSA P-256 CA, CN=swarm-ca, valid for 20 years', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const text = openssl(['x509', '-noout', '-text'], ca.rootCertificates().rootPem);
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Subject: CN = swarm-ca');
    expect(text).toContain('Issuer: CN = swarm-ca');
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toMatch(/Certificate Sign, CRL Sign/);
    const notAfter = Date.parse(/Not After : (.*)/.exec(text)?.[1] ?? '');
    expect(new Date(notAfter).getUTCFullYear() - new Date().getUTCFullYear()).toBe(20);
    expect(ca.clusterId).toMatch(/^[0-9a-z]{25}$/);
  });
});

describe('node certificates', () => {
  it('accept a CSR made by another implementation (@peculiar/x509) and take only its key', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const keys = await generateKeyPair();
    const csr = await createCsr(keys);
    const nodeId = newNodeId();
    const chain = ca.issue(csr, nodeId, MANAGER_ROLE, Date.now()).chainPem;
    const info = readNodeCertificate(chain);
    expect(info).toMatchObject({ nodeId, role: MANAGER_ROLE, clusterId: ca.clusterId });
    expect(openssl(['x509', '-noout', '-subject'], chain).trim()).toBe(`subject=O = ${ca.clusterId}, OU = swarm-manager, CN = ${nodeId}`);
    expect(await opensslVerify(ca.rootCertificates().rootPem, chain)).toMatch(/: OK$/);
  });

  it('refuse a CSR whose signature was tampered with, and bytes that are not a CSR', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const csr = createNodeCsr(await generateNodeKey());
    const tampered = Buffer.from(csr);
    tampered[20] = (tampered[20] ?? 0) ^ 0x01;
    expect(() => ca.issue(tampered, newNodeId(), WORKER_ROLE, Date.now())).toThrow(CAError);
    expect(() => ca.issue(Buffer.from('not a csr'), newNodeId(), WORKER_ROLE, Date.now())).toThrow(/does not parse/);
  });

  it('refuse a CSR over a key that is not P-256', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    expect(() => ca.issue(createNodeCsr(p384), newNodeId(), WORKER_ROLE, Date.now())).toThrow(/must be an uncompressed ECDSA P-256 public key/);
  });

  it('last the configured expiry: default 90 days, at least 1 hour unless a test lowers the bound explicitly', () => {
    expect(certExpiryPolicy().expiryMs).toBe(90 * 24 * 3600 * 1000);
    expect(() => certExpiryPolicy({ expiryMs: 59 * 60 * 1000 })).toThrow(/at least 1h, got 3540s/);
    expect(certExpiryPolicy({ expiryMs: 3600 * 1000 }).expiryMs).toBe(3600 * 1000);
    expect(certExpiryPolicy({ expiryMs: 2000, unsafeMinimumExpiryMsForTests: 1000 }).expiryMs).toBe(2000);
  });
});

describe('join tokens', () => {
  it("have Docker's shape and the root's SHA-256 (DER) in base36, zero-padded to 50", async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const token = ca.joinTokens.worker;
    expect(token).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    const derBytes = execFileSync('openssl', ['x509', '-outform', 'DER'], { input: ca.rootCertificates().rootPem });
    const expected = BigInt('0x' + createHash('sha256').update(derBytes).digest('hex')).toString(36).padStart(50, '0');
    expect(parseJoinToken(token).rootDigest).toBe(expected);
    expect(ca.joinTokens.manager).not.toBe(token);
    expect(matchJoinToken(ca.joinTokens, ca.joinTokens.manager)).toBe(MANAGER_ROLE);
    expect(matchJoinToken(ca.joinTokens, token)).toBe(WORKER_ROLE);
    expect(matchJoinToken(ca.joinTokens, token.slice(0, -1) + (token.endsWith('0') ? '1' : '0'))).toBeNull();
  });

  it('base36 padding round-trips every 128-bit value', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = bytesToBase36(bytes, 25);
        expect(text).toHaveLength(25);
        let n = 0n;
        for (const ch of text) n = n * 36n + BigInt(parseInt(ch, 36));
        expect(n.toString(16).padStart(32, '0')).toBe(Buffer.from(bytes).toString('hex'));
      }),
      { numRuns: 200 },
    );
  });
});

describe('root CA rotation', () => {
  it('certificates under the old and the new root both verify against the bundle during the rotation', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    const oldRootPem = ca.rootCertificates().rootPem;
    const oldDigest = rootDigestBase36(rootDer(ca.rootCA));
    const underOld = await nodeCert(ca);
    await ca.startRootRotation(Date.now());
    const underNew = await nodeCert(ca);
    const bundlePem = toPem(trustBundle(ca.rootCA));
    const nextRootPem = ca.rootCertificates().nextRootPem;
    // Node-side check and openssl agree: both generations verify against the bundle ...
    const bundle = parseCertificates(bundlePem);
    expect(checkChain(parseCertificates(underOld), bundle, Date.now()).ok).toBe(true);
    expect(checkChain(parseCertificates(underNew), bundle, Date.now()).ok).toBe(true);
    expect(await opensslVerify(bundlePem, underOld)).toMatch(/: OK$/);
    expect(await opensslVerify(bundlePem, underNew)).toMatch(/: OK$/);
    // ... a peer that still trusts only the old root accepts the new certificate through the cross-signed root ...
    expect(parseCertificates(underNew)).toHaveLength(2);
    expect(await opensslVerify(oldRootPem, underNew)).toMatch(/: OK$/);
    // ... and one that trusts only the new root accepts it directly.
    expect(await opensslVerify(nextRootPem, underNew)).toMatch(/: OK$/);
    expect(rotationProgress(ca.rootCA, [underOld, underNew])).toEqual({ total: 2, converted: 1, done: false });
    // Tokens keep the old digest until the rotation finishes, then follow the new root.
    expect(parseJoinToken(ca.joinTokens.worker).rootDigest).toBe(oldDigest);

    // Export/restore in the middle of a rotation keeps it going (the store will replicate this).
    const restored = await ClusterCA.restore(await ca.export());
    expect(restored.rootCertificates()).toEqual(ca.rootCertificates());

    await ca.finishRootRotation();
    expect(ca.rootCertificates().rootPem).toBe(nextRootPem);
    expect(ca.rootCertificates().crossSignedPem).toBe('');
    expect(parseJoinToken(ca.joinTokens.worker).rootDigest).toBe(rootDigestBase36(new X509Certificate(nextRootPem).raw));
    const finalBundle = parseCertificates(toPem(trustBundle(ca.rootCA)));
    expect(checkChain(parseCertificates(underNew), finalBundle, Date.now()).ok).toBe(true);
    expect(checkChain(parseCertificates(underOld), finalBundle, Date.now())).toMatchObject({ ok: false });
    const afterwards = await nodeCert(ca);
    expect(parseCertificates(afterwards)).toHaveLength(1);
    expect(await opensslVerify(ca.rootCertificates().rootPem, afterwards)).toMatch(/: OK$/);
  });

  it('refuses to start a second rotation or finish one that is not running', async () => {
    const ca = await ClusterCA.create({ nowMs: Date.now() });
    await expect(ca.finishRootRotation()).rejects.toMatchObject({ code: 'NO_ROTATION' });
    await ca.startRootRotation(Date.now());
    await expect(ca.startRootRotation(Date.now())).rejects.toMatchObject({ code: 'ROTATION_IN_PROGRESS' });
  });
});
