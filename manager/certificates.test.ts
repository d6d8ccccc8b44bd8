// Certificates at runtime, over real Raft, gRPC and mutual TLS on loopback, in one process:
//  - a manager renews its own certificate inside [50%, 80%] of a short real lifetime, saves it (key
//    0600) and its cluster port presents the new certificate on new connections;
//  - promote/demote of a worker (Node.Spec.Role in the store) → the worker's next certificate, fetched
//    at once through its dispatcher session, carries the new OU (read with openssl);
//  - `swarm ca --rotate` (CAConfig.ForceRotate) across two managers and a worker: a worker still on
//    the old root keeps talking to managers already on the new one (and the reverse), every node ends
//    under the new root, the old root is dropped, the join tokens change and the old ones stop working;
//    a demoted manager gets a worker certificate.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tls from 'node:tls';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CAError } from '../ca/errors.js';
import { CERT_FILE, KEY_FILE, loadIdentity, saveIdentity, type NodeIdentity } from '../ca/identity.js';
import { joinCluster, renewNodeCertificate } from '../ca/join.js';
import { parseJoinToken } from '../ca/join-token.js';
import { desiredFromSession, NodeCertificates, withTlsInfo } from '../ca/node-certificates.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../ca/roles.js';
import { issuedBy } from '../ca/tls-info.js';
import { parseCertificates } from '../ca/verify.js';
import { MANAGER_SERVER_NAME } from '../proto/grpc/tls.js';
import { Agent } from '../worker/agent/agent.js';
import { FakeExecutor } from '../worker/agent/testing/fake-executor.js';
import { CERTIFICATES_DIR, Manager } from './manager.js';
import { clusterOf } from './membership/cluster-state.js';
import { waitFor } from './store/testing/cluster.js';
import type { NodeDescription } from './store/types.js';

const FAST = {
  listenAddr: '127.0.0.1:0',
  tickMs: 50,
  certificates: { pollMs: 50, retryDelayMs: 100, maxRetryDelayMs: 1000, reportEveryMs: 500 },
  leaderServices: { leadershipCheckMs: 20, dispatcher: { heartbeatPeriodMs: 500, heartbeatJitterMs: 50, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } },
} as const;

function openssl(args: readonly string[], input?: string): string {
  return execFileSync('openssl', args, input === undefined ? {} : { input }).toString();
}

/** `openssl x509 -subject` of the leaf: "subject=O = <cluster>, OU = <role>, CN = <node>" (formats vary by version). */
function ouOf(certPem: string): string {
  const subject = openssl(['x509', '-noout', '-subject', '-nameopt', 'sep_multiline'], certPem);
  const ou = /OU=(.+)/.exec(subject);
  return ou?.[1]?.trim() ?? '';
}

/** The serial number of the certificate a TLS server presents on a new connection. */
async function presentedSerial(addr: string, trustBundlePem: string): Promise<string> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), ca: trustBundlePem, servername: MANAGER_SERVER_NAME, minVersion: 'TLSv1.3', ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

function serialOf(pem: string): string {
  return new X509Certificate(parseCertificates(pem)[0]!.raw).serialNumber;
}

/** A worker as shoald runs one (cli/daemon/worker/node-agent.ts): an Agent whose certificate follows its session. */
interface TestWorker {
  readonly agent: Agent;
  readonly certs: NodeCertificates;
  readonly dir: string;
  /** Renewals wait for this (a test holds a worker on its old certificate). */
  gate: Promise<void>;
}

async function startWorker(dir: string, identity: NodeIdentity, managerAddr: string): Promise<TestWorker> {
  const certificatesDir = path.join(dir, 'certificates');
  await saveIdentity(certificatesDir, identity);
  const description: NodeDescription = { Hostname: 'worker-1', Platform: { OS: 'linux', Architecture: 'x86_64' }, Engine: { EngineVersion: 'test' } };
  let agent: Agent | null = null;
  const worker = { gate: Promise.resolve() } as { gate: Promise<void> } & Partial<TestWorker>;
  const certs = new NodeCertificates({
    identity,
    certificatesDir,
    renew: async (current) => {
      await worker.gate;
      return renewNodeCertificate({ address: agent?.manager ?? managerAddr, identity: current });
    },
    retryDelayMs: 100,
    maxRetryDelayMs: 1000,
  });
  agent = await Agent.start({
    dataRoot: dir,
    identity,
    managers: [managerAddr],
    executor: new FakeExecutor(1),
    description: withTlsInfo(description, identity),
    onSessionMessage: (msg) => certs.setDesired(desiredFromSession(msg)),
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    statusBatchMs: 10,
  });
  const started = agent;
  certs.onChange((id) => started.setIdentity(id, withTlsInfo(description, id)));
  certs.start();
  return Object.assign(worker, { agent: started, certs, dir });
}

async function stopWorker(w: TestWorker | null): Promise<void> {
  if (w === null) return;
  await w.certs.stop();
  await w.agent.close();
}

describe('a manager renews its own certificate at runtime', () => {
  let dir: string;
  let m: Manager | null = null;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-certs-renew-'));
  });

  afterAll(async () => {
    await m?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('within [50%, 80%] of a 4-second certificate: saved with the key 0600, presented on new connections', async () => {
    m = await Manager.init({
      dataRoot: path.join(dir, 'm'),
      ...FAST,
      // A real 4 s lifetime (the 1 h minimum lowered for tests only), not backdated, so the window is [2 s, 3.2 s].
      certExpiry: { expiryMs: 4000, backdateMs: 0, unsafeMinimumExpiryMsForTests: 1000 },
      leaderServices: false,
    });
    const first = m.identity;
    const installed: { identity: NodeIdentity; atMs: number }[] = [];
    m.onIdentityChange((identity, change) => {
      if (change === 'renewed') installed.push({ identity, atMs: Date.now() });
    });
    expect(await presentedSerial(m.addr, first.trustBundlePem)).toBe(serialOf(first.certChainPem));
    const renewed = await waitFor('the first renewal', () => installed[0], 10_000);
    const lifetime = first.notAfterMs - first.notBeforeMs;
    // Certificate times have one-second resolution: allow that much either side of the window.
    expect(renewed.atMs).toBeGreaterThanOrEqual(first.notBeforeMs + 0.5 * lifetime - 1000);
    expect(renewed.atMs).toBeLessThanOrEqual(first.notBeforeMs + 0.8 * lifetime + 1000);
    expect(renewed.identity.nodeId).toBe(first.nodeId);
    expect(renewed.identity.role).toBe(MANAGER_ROLE);
    expect(renewed.identity.keyPem).not.toBe(first.keyPem);

    // What the daemon would restart from is what it presents now.
    const certDir = path.join(dir, 'm', CERTIFICATES_DIR);
    const onDisk = await waitFor('a renewed certificate on disk', () => m!.identity, 5000);
    const saved = await loadIdentity(certDir);
    expect([...installed.map((r) => serialOf(r.identity.certChainPem))]).toContain(serialOf(saved.certChainPem));
    expect((await stat(path.join(certDir, KEY_FILE))).mode & 0o777).toBe(0o600);
    const presented = await presentedSerial(m.addr, onDisk.trustBundlePem);
    expect(installed.map((r) => serialOf(r.identity.certChainPem))).toContain(presented);
    expect(presented).not.toBe(serialOf(first.certChainPem));
    // The saved pair is a valid certificate for its key, under the cluster root (openssl).
    await writeFile(path.join(dir, 'root.pem'), saved.trustBundlePem);
    expect(openssl(['verify', '-CAfile', path.join(dir, 'root.pem'), path.join(certDir, CERT_FILE)])).toMatch(/OK/);
  }, 30_000);
});

describe('role changes and a root CA rotation across two managers and a worker', () => {
  let dir: string;
  let m1: Manager | null = null;
  let m2: Manager | null = null;
  let worker: TestWorker | null = null;
  let releaseWorker: () => void = () => undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-certs-rotate-'));
    m1 = await Manager.init({ dataRoot: path.join(dir, 'm1'), ...FAST });
    const tokens = clusterOf(m1.store)!.JoinTokens!;
    m2 = await Manager.join({ dataRoot: path.join(dir, 'm2'), ...FAST, remoteAddr: m1.addr, token: tokens.Manager });
    const identity = await joinCluster({ address: m1.addr, token: tokens.Worker });
    worker = await startWorker(path.join(dir, 'w'), identity, m1.addr);
    await waitFor('the worker node to be ready', () => m1!.store.get('node', identity.nodeId)?.Status.State === 'ready', 20_000);
  }, 60_000);

  afterAll(async () => {
    releaseWorker();
    await stopWorker(worker);
    await Promise.allSettled([m2?.close(), m1?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  /** `node promote/demote` as the CLI does it: read, update at that version; re-run when another write got in first. */
  async function setRole(nodeId: string, role: 'manager' | 'worker'): Promise<void> {
    const control = m1!.leaderServices!.control!;
    for (let attempt = 1; ; attempt++) {
      const node = control.getNode(nodeId);
      try {
        await control.updateNode(nodeId, node.Version.Index, { ...node.Spec, Role: role });
        return;
      } catch (err) {
        if (attempt >= 10 || !/out of sequence/.test((err as Error).message)) throw err;
      }
    }
  }

  it('promote then demote: the worker gets a certificate with OU swarm-manager, then swarm-worker (openssl)', async () => {
    const w = worker!;
    const id = w.certs.identity.nodeId;
    const savedFile = path.join(w.dir, 'certificates', CERT_FILE);
    await setRole(id, 'manager');
    await waitFor('a manager certificate on the worker', () => w.certs.identity.role === MANAGER_ROLE, 15_000);
    expect(ouOf(openssl(['x509', '-in', savedFile]))).toBe(MANAGER_ROLE);
    await setRole(id, 'worker');
    await waitFor('a worker certificate again', () => w.certs.identity.role === WORKER_ROLE, 15_000);
    expect(ouOf(openssl(['x509', '-in', savedFile]))).toBe(WORKER_ROLE);
    expect(w.certs.identity.nodeId).toBe(id);
  }, 40_000);

  it('swarm ca --rotate: old and new certificates interoperate during the change; all converge, old root and tokens retired', async () => {
    const a = m1!;
    const b = m2!;
    const w = worker!;
    const before = clusterOf(a.store)!;
    const oldTokens = before.JoinTokens!;
    const oldRoot = parseCertificates(before.ShoalCA!.rootCA.rootCertPem)[0]!;
    const oldWorkerIdentity = w.certs.identity;

    // Hold the worker on its old certificate while the managers convert.
    w.gate = new Promise((r) => (releaseWorker = r));
    const release = releaseWorker;
    const control = a.leaderServices!.control!;
    const cur = control.getCluster();
    await control.updateCluster(undefined, cur.Version.Index, { ...cur.Spec, CAConfig: { ...cur.Spec.CAConfig, ForceRotate: 1 } });

    const rotating = await waitFor('the rotation to start', () => {
      const c = clusterOf(a.store);
      return c?.RootRotationInProgress === true && c.ShoalCA?.rootCA.rotation != null ? c : undefined;
    }, 10_000);
    const newRoot = parseCertificates(rotating.ShoalCA!.rootCA.rotation!.nextCertPem)[0]!;
    expect(rotating.TLSInfo?.CertIssuerPublicKey).toBe(newRoot.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
    await waitFor('both managers under the new root', () => issuedBy(a.identity.certChainPem, newRoot) && issuedBy(b.identity.certChainPem, newRoot), 15_000);
    expect(clusterOf(a.store)!.RootRotationInProgress).toBe(true); // the worker has not converted
    await waitFor('the leader to count both managers converted', () => a.certificates!.progress()?.converted === 2, 10_000);
    expect(a.certificates!.progress()).toMatchObject({ inProgress: true, total: 3, converted: 2 });

    // Old → new: the held worker (certificate under R1, trusting only R1) opens a fresh session with
    // the leader, which presents a certificate under R2 (chain: leaf, R2 cross-signed by R1).
    expect(issuedBy(w.certs.identity.certChainPem, oldRoot)).toBe(true);
    expect(parseCertificates(w.certs.identity.trustBundlePem)).toHaveLength(1);
    const sessions = w.agent.sessionsEstablished;
    w.agent.reconnect();
    await waitFor('a new session of the old-root worker with the new-root leader', () => w.agent.sessionsEstablished > sessions, 10_000);
    // New → old: a TLS server holding the worker's old identity verifies the leader's new chain.
    expect(await clientAuthorized(a.identity, oldWorkerIdentity)).toBe(true);

    release();
    const done = await waitFor('the rotation to finish', () => {
      const c = clusterOf(a.store);
      return c?.RootRotationInProgress === false && c.ShoalCA?.rootCA.rotation === null ? c : undefined;
    }, 20_000);
    expect(done.ShoalCA!.rootCA.rootCertPem.trim()).toBe(newRoot.toString().trim());
    // The leader counts a renewal before the node has installed it.
    await waitFor('the worker to install its new certificate', () => issuedBy(w.certs.identity.certChainPem, newRoot), 10_000);
    // Tokens carry the new digest; the old ones are refused before any secret is sent.
    expect(parseJoinToken(done.JoinTokens!.Worker).rootDigest).not.toBe(parseJoinToken(oldTokens.Worker).rootDigest);
    expect(done.JoinTokens!.Manager).not.toBe(oldTokens.Manager);
    // b (a follower) serves joins from its own store: ask it once it has applied the end too.
    await waitFor('the follower to apply the end of the rotation', () => (clusterOf(b.store)?.JoinTokens?.Worker === done.JoinTokens!.Worker ? true : undefined), 10_000);
    // Every attempt with the old token is refused; once b's CA follows its store, by the digest check.
    let refused: unknown;
    for (let i = 0; i < 50; i++) {
      refused = await joinCluster({ address: b.addr, token: oldTokens.Worker }).then(
        () => new Error('a join with the old worker token succeeded'),
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).not.toBe('a join with the old worker token succeeded');
      if (refused instanceof CAError && refused.code === 'CA_DIGEST_MISMATCH') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(refused).toBeInstanceOf(CAError);
    expect((refused as CAError).code).toBe('CA_DIGEST_MISMATCH');
    const fresh = await joinCluster({ address: b.addr, token: done.JoinTokens!.Worker });
    expect(issuedBy(fresh.certChainPem, newRoot)).toBe(true);

    // Every node ends trusting only the new root; its saved certificate verifies against it (openssl).
    await writeFile(path.join(dir, 'new-root.pem'), newRoot.toString());
    const dirs = [path.join(dir, 'm1', CERTIFICATES_DIR), path.join(dir, 'm2', CERTIFICATES_DIR), path.join(w.dir, 'certificates')];
    await waitFor('every node to trust only the new root', () => [a.identity, b.identity, w.certs.identity].every((i) => parseCertificates(i.trustBundlePem).length === 1), 10_000);
    for (const d of dirs) {
      // The files follow the identity in memory (installs are written one after another): wait, bounded.
      let saved = await loadIdentity(d);
      for (let i = 0; i < 50 && parseCertificates(saved.trustBundlePem).length !== 1; i++) {
        await new Promise((r) => setTimeout(r, 100));
        saved = await loadIdentity(d);
      }
      expect(parseCertificates(saved.trustBundlePem).map((c) => c.fingerprint256)).toEqual([newRoot.fingerprint256]);
      expect(openssl(['verify', '-CAfile', path.join(dir, 'new-root.pem'), path.join(d, CERT_FILE)])).toMatch(/OK/);
    }
    // And they keep working: the worker opens a new session under the new root only.
    const after = w.agent.sessionsEstablished;
    w.agent.reconnect();
    await waitFor('a session after the rotation', () => w.agent.sessionsEstablished > after, 10_000);
  }, 60_000);

  it('a demoted manager renews to a worker certificate (its Node role in the store)', async () => {
    const b = m2!;
    await m1!.demote(b.nodeId);
    await waitFor('the demoted manager to hold a worker certificate', () => b.identity.role === WORKER_ROLE, 15_000);
    expect(ouOf(openssl(['x509', '-in', path.join(dir, 'm2', CERTIFICATES_DIR, CERT_FILE)]))).toBe(WORKER_ROLE);
  }, 30_000);
});

/** Does a TLS server with `server`'s identity (requesting client certificates) accept `client`'s chain? */
async function clientAuthorized(client: NodeIdentity, server: NodeIdentity): Promise<boolean> {
  const srv = tls.createServer({ key: server.keyPem, cert: server.certChainPem, ca: server.trustBundlePem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  const authorized = new Promise<boolean>((resolve) => srv.once('secureConnection', (s: tls.TLSSocket) => {
    resolve(s.authorized);
    s.destroy();
  }));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    const socket = tls.connect({ host: '127.0.0.1', port, key: client.keyPem, cert: client.certChainPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    socket.on('error', () => undefined);
    const ok = await authorized;
    socket.destroy();
    return ok;
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
}
