// What grpc-js and Node's TLS actually do with client certificates and protocol versions, shown on
// loopback. These are the findings the design of tls.ts rests on; if a grpc-js upgrade changes one,
// this file says which.
import * as tls from 'node:tls';

import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ClusterCA } from '../../ca/cluster-ca.js';
import { newNodeId } from '../../ca/ids.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { CAClient, CAService, type CAServer } from '../gen/shoal/ca.js';
import { peerIdentity } from './authz.js';
import { callUnary } from './client.js';
import { CLUSTER_CHANNEL_OPTIONS, ClusterServerCredentials, clusterChannelCredentials, joinChannelCredentials, TLS_MIN_VERSION } from './tls.js';

let ca: ClusterCA;
let manager: NodeIdentity;
let worker: NodeIdentity;
let stranger: NodeIdentity;

beforeAll(async () => {
  ca = await ClusterCA.create({ nowMs: Date.now() });
  manager = await ca.issueLocalIdentity(newNodeId(), 'swarm-manager', Date.now());
  worker = await ca.issueLocalIdentity(newNodeId(), 'swarm-worker', Date.now());
  const other = await ClusterCA.create({ nowMs: Date.now() });
  stranger = { ...(await other.issueLocalIdentity(newNodeId(), 'swarm-worker', Date.now())), trustBundlePem: manager.trustBundlePem };
});

/** Answers GetRootCACertificate with the CN of the verified peer certificate, or "none". */
const echoPeer: Partial<CAServer> = {
  getRootCaCertificate: (call, callback) => {
    const peer = peerIdentity(call);
    callback(null, { certificatePem: Buffer.from(peer?.nodeId ?? 'none'), crossSignedRootPem: Buffer.alloc(0), nextRootPem: Buffer.alloc(0) });
  },
};

const servers: grpc.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.forceShutdown();
});

async function serve(credentials: grpc.ServerCredentials): Promise<string> {
  const server = new grpc.Server();
  servers.push(server);
  server.addService(CAService, echoPeer as CAServer);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))));
  return `127.0.0.1:${port}`;
}

/** Calls the echo server: resolves with the peer CN the server saw, rejects with the gRPC error. */
async function whoAmI(address: string, client: NodeIdentity | null): Promise<string> {
  const creds = client === null ? joinChannelCredentials(manager.trustBundlePem) : clusterChannelCredentials(client, ca.clusterId);
  const c = new CAClient(address, creds, CLUSTER_CHANNEL_OPTIONS);
  try {
    const res = await callUnary(c.getRootCaCertificate.bind(c), {}, 5000);
    return res.certificatePem.toString();
  } finally {
    c.close();
  }
}

function pair(identity: NodeIdentity): grpc.KeyCertPair {
  return { private_key: Buffer.from(identity.keyPem), cert_chain: Buffer.from(identity.certChainPem) };
}

describe('grpc-js createSsl, as shipped', () => {
  it('checkClientCertificate=false never asks for a client certificate: no call is ever authenticated', async () => {
    const address = await serve(grpc.ServerCredentials.createSsl(Buffer.from(manager.trustBundlePem), [pair(manager)], false));
    expect(await whoAmI(address, worker)).toBe('none');
    expect(await whoAmI(address, null)).toBe('none');
  });

  it('checkClientCertificate=true refuses the handshake without a certificate, so a joiner could not reach the CA', async () => {
    const address = await serve(grpc.ServerCredentials.createSsl(Buffer.from(manager.trustBundlePem), [pair(manager)], true));
    expect(await whoAmI(address, worker)).toBe(worker.nodeId);
    await expect(whoAmI(address, null)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(whoAmI(address, stranger)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

describe('ClusterServerCredentials (requestCert, verify, do not reject)', () => {
  it('lets a peer without a certificate in, unauthenticated', async () => {
    const address = await serve(new ClusterServerCredentials(manager));
    expect(await whoAmI(address, null)).toBe('none');
  });

  it('reports a verified certificate, and an unverified one (another CA) as no certificate at all', async () => {
    const address = await serve(new ClusterServerCredentials(manager));
    expect(await whoAmI(address, worker)).toBe(worker.nodeId);
    expect(await whoAmI(address, stranger)).toBe('none');
  });

  it('refuses a TLS 1.2 client and speaks TLS 1.3', async () => {
    const [host, port] = (await serve(new ClusterServerCredentials(manager))).split(':') as [string, string];
    const outcome = (options: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve) => {
        const socket = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ['h2'], ...options });
        socket.once('secureConnect', () => {
          resolve(`connected ${socket.getProtocol() ?? '?'}`);
          socket.destroy();
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
      });
    expect(await outcome({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toMatch(/^error ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION$/);
    expect(await outcome({ minVersion: 'TLSv1.3' })).toBe('connected TLSv1.3');
  });

  it('our client refuses a server that offers only TLS 1.2', async () => {
    class Tls12Only extends grpc.ServerCredentials {
      constructor() {
        super({ maxVersion: 'TLSv1.2' }, { key: manager.keyPem, cert: manager.certChainPem });
      }
      _equals(other: grpc.ServerCredentials): boolean {
        return other === this;
      }
    }
    const address = await serve(new Tls12Only());
    expect(TLS_MIN_VERSION).toBe('TLSv1.3');
    await expect(whoAmI(address, worker)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('update() swaps the served certificate for new connections', async () => {
    const credentials = new ClusterServerCredentials(manager);
    const address = await serve(credentials);
    const second = await ca.issueLocalIdentity(newNodeId(), 'swarm-manager', Date.now());
    credentials.update(second);
    const served = await new Promise<string>((resolve, reject) => {
      const [host, port] = address.split(':') as [string, string];
      const socket = tls.connect({ host, port: Number(port), ca: manager.trustBundlePem, servername: 'swarm-manager', ALPNProtocols: ['h2'] });
      socket.once('secureConnect', () => {
        const cn = socket.getPeerCertificate().subject.CN;
        socket.destroy();
        resolve((Array.isArray(cn) ? cn[0] : cn) ?? '');
      });
      socket.once('error', reject);
    });
    expect(served).toBe(second.nodeId);
  });
});
