// `shoal swarm ca [--rotate] [--cert-expiry D] [-d] [-q]`, as docker's:
//   no flag      prints the cluster's root CA certificate (GET /swarm → TLSInfo.TrustRoot)
//   --rotate     POST /swarm/update with Spec.CAConfig.ForceRotate + 1: the managers make a new root
//                cross-signed by the old one, every node renews under it, the old root is dropped
//                and the join tokens change (manager/certificates.ts)
// Unless -d, it then waits, showing progress from the nodes' TLSInfo as docker does:
//   desired root digest: sha256:…
//     rotated TLS certificates:  [=====>     ] x/y nodes   (certificate issued by the new root)
//     rotated CA certificates:   [=====>     ] x/y nodes   (trusting the new root only)
// and prints the (new) root certificate. -q leaves the progress out.
import { createHash } from 'node:crypto';

import type { CliContext, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';

/** How often the swarm and its nodes are read while waiting. */
export const CA_PROGRESS_POLL_MS = 500;
/** Waiting stops after this long (the rotation goes on; `shoal swarm ca` shows where it is). */
export const CA_PROGRESS_LIMIT_MS = 60 * 60 * 1000;
const BAR_WIDTH = 50;

interface TlsInfo {
  readonly TrustRoot?: string;
  readonly CertIssuerSubject?: string;
  readonly CertIssuerPublicKey?: string;
}

interface SwarmWithCa {
  readonly Version: { readonly Index: number };
  readonly Spec: Record<string, unknown> & { readonly CAConfig?: { readonly ForceRotate?: number } & Record<string, unknown> };
  readonly TLSInfo?: TlsInfo;
  readonly RootRotationInProgress?: boolean;
}

interface NodeWithTls {
  readonly ID: string;
  readonly Description?: { readonly TLSInfo?: TlsInfo };
}

export interface SwarmCaArgs extends GlobalArgs {
  readonly rotate?: boolean;
  readonly detach?: boolean;
  readonly quiet?: boolean;
  readonly 'cert-expiry'?: string;
}

export interface RotationCounts {
  readonly total: number;
  /** Nodes whose certificate is issued by the cluster's root (TLSInfo issuer equal). */
  readonly certificates: number;
  /** Nodes trusting exactly the cluster's root. */
  readonly trustRoots: number;
}

const compact = (pem: string | undefined): string => (pem ?? '').replace(/\s+/g, '');

/** Docker's count: nodes under the cluster's root, and nodes trusting it alone. */
export function rotationCounts(cluster: TlsInfo, nodes: readonly NodeWithTls[]): RotationCounts {
  let certificates = 0;
  let trustRoots = 0;
  for (const n of nodes) {
    const t = n.Description?.TLSInfo;
    if (t === undefined) continue;
    if (t.CertIssuerPublicKey === cluster.CertIssuerPublicKey && t.CertIssuerSubject === cluster.CertIssuerSubject) certificates++;
    if (compact(t.TrustRoot) === compact(cluster.TrustRoot)) trustRoots++;
  }
  return { total: nodes.length, certificates, trustRoots };
}

function bar(done: number, total: number): string {
  const filled = total === 0 ? BAR_WIDTH : Math.floor((BAR_WIDTH * done) / total);
  const body = filled >= BAR_WIDTH ? '='.repeat(BAR_WIDTH) : `${'='.repeat(filled)}>${' '.repeat(BAR_WIDTH - filled - 1)}`;
  return `[${body}] ${done}/${total} nodes`;
}

export function progressLines(rootPem: string, counts: RotationCounts): string[] {
  return [
    `desired root digest: sha256:${createHash('sha256').update(rootPem).digest('hex')}`,
    `  rotated TLS certificates:  ${bar(counts.certificates, counts.total)}`,
    `  rotated CA certificates:   ${bar(counts.trustRoots, counts.total)}`,
  ];
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function swarmCa(ctx: CliContext, argv: SwarmCaArgs, parseDurationNs: (text: string) => number): Promise<void> {
  const c = ctx.client(argv);
  const expiry = argv['cert-expiry'];
  if (argv.rotate === true || expiry !== undefined) {
    const swarm = await c.get<SwarmWithCa>('/swarm');
    const caConfig = { ...(swarm.Spec.CAConfig ?? {}) };
    if (expiry !== undefined) caConfig['NodeCertExpiry'] = parseDurationNs(expiry);
    if (argv.rotate === true) caConfig['ForceRotate'] = (swarm.Spec.CAConfig?.ForceRotate ?? 0) + 1;
    await c.post('/swarm/update', { ...swarm.Spec, CAConfig: caConfig }, { rotateWorkerToken: false, rotateManagerToken: false, rotateManagerUnlockKey: false, version: swarm.Version.Index });
    if (argv.detach !== true && argv.rotate === true) await waitForRotation(ctx, argv, swarm.TLSInfo?.CertIssuerPublicKey ?? '');
  }
  const swarm = await c.get<SwarmWithCa>('/swarm');
  const root = swarm.TLSInfo?.TrustRoot ?? '';
  if (root === '') throw new CliError('ERR_DAEMON_RESPONSE', 'the swarm shows no root CA certificate yet');
  ctx.io.out(root.endsWith('\n') ? root : `${root}\n`);
}

/** Polls until the rotation is over and every node has converted (bounded by CA_PROGRESS_LIMIT_MS). */
async function waitForRotation(ctx: CliContext, argv: SwarmCaArgs, issuerBefore: string): Promise<void> {
  const c = ctx.client(argv);
  const deadline = Date.now() + CA_PROGRESS_LIMIT_MS;
  let shown: string[] = [];
  // The leader starts the rotation on its next pass: it has started once the cluster shows it in
  // progress or already shows another root than before.
  let started = false;
  for (let i = 0; i < CA_PROGRESS_LIMIT_MS / CA_PROGRESS_POLL_MS; i++) {
    const swarm = await c.get<SwarmWithCa>('/swarm');
    const nodes = await c.get<NodeWithTls[]>('/nodes');
    const cluster = swarm.TLSInfo ?? {};
    const counts = rotationCounts(cluster, nodes);
    started ||= swarm.RootRotationInProgress === true || (cluster.CertIssuerPublicKey ?? '') !== issuerBefore;
    if (argv.quiet !== true) {
      const lines = progressLines(cluster.TrustRoot ?? '', counts);
      for (const [k, line] of lines.entries()) if (line !== shown[k]) ctx.io.err(`${line}\n`);
      shown = lines;
    }
    if (started && swarm.RootRotationInProgress !== true && counts.certificates === counts.total && counts.trustRoots === counts.total) return;
    if (Date.now() > deadline) break;
    await sleep(CA_PROGRESS_POLL_MS);
  }
  throw new CliError('ERR_DAEMON_RESPONSE', `the root CA rotation is still in progress after ${CA_PROGRESS_LIMIT_MS / 60000} minutes; it goes on in the background (check with shoal swarm ca)`);
}
