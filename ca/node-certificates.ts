// A running node's certificate: renewed on schedule (RenewalScheduler: 50–80% of its lifetime), at
// once when the cluster wants another role or issues under another root, and its trust bundle kept
// equal to the cluster's. Every new identity is saved (key 0600, ca/identity.ts) before listeners
// hear of it; listeners swap TLS credentials (servers, transports, agent sessions).
//
// What the cluster wants comes in through setDesired(), from wherever the node learns it:
//   a manager   its own Node object and the Cluster object in the store (manager/certificates.ts)
//   a worker    its dispatcher session: the Node object and the cluster's root CA bundle
//               (cli/daemon/worker/node-agent.ts)
//
//   desired trust bundle [R1]       cert under R1            nothing to do
//   desired trust bundle [R1, R2]   cert under R1            renew now (rotation), cert under R2 + X
//                                   cert under R2            trust [R1, R2]
//   desired trust bundle [R2]       cert under R2            trust [R2] only (the old root dropped)
import type { Logger } from 'pino';

import { CAError } from './errors.js';
import { saveIdentity, type NodeIdentity } from './identity.js';
import { RenewalScheduler, type Clock, type RenewalReason } from './renewal.js';
import { MANAGER_ROLE, WORKER_ROLE, type NodeRole } from './roles.js';
import { chainVerifies, desiredIssuer, issuedBy, nodeTlsInfo, sameCertificates, type TLSInfo } from './tls-info.js';

export interface DesiredCertificate {
  /** The role the cluster wants this node to have (the next certificate's OU). */
  readonly role?: NodeRole;
  /** The cluster's trust bundle: [current root] or, during a root rotation, [current, next]. */
  readonly trustBundlePem?: string;
}

export type IdentityChange = 'renewed' | 'trust-updated';
export type IdentityListener = (identity: NodeIdentity, change: IdentityChange) => void;

export interface NodeCertificatesOptions {
  readonly identity: NodeIdentity;
  /** Where the identity is kept (swarm-node.key, swarm-node.crt, swarm-root-ca.crt). */
  readonly certificatesDir: string;
  /** Gets a new certificate for the current one (new key, CSR, RenewNodeCertificate at a manager). */
  readonly renew: (current: NodeIdentity, reason: RenewalReason) => Promise<NodeIdentity>;
  /** How a new identity is written (default saveIdentity; the key manager may encrypt the key). */
  readonly save?: (certificatesDir: string, identity: NodeIdentity) => Promise<void>;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly logger?: Logger;
  /** How long stop() waits for a renewal in flight (default 5 s). */
  readonly stopTimeoutMs?: number;
}

export const DEFAULT_STOP_TIMEOUT_MS = 5_000;

export class NodeCertificates {
  private current: NodeIdentity;
  private readonly scheduler: RenewalScheduler<NodeIdentity>;
  private readonly listeners = new Set<IdentityListener>();
  private roleListener: ((role: NodeRole) => void) | null = null;
  private wantedRole: NodeRole | null = null;
  private wantedBundle: string | null = null;
  private underRootMemo: { readonly bundle: string | null; readonly chain: string; readonly answer: boolean } | null = null;
  /** Fingerprint of the root a rotation renewal was last asked for (asked once per root, retried by the scheduler). */
  private rotationAskedFor: string | null = null;
  /** Installs run one after another, so a trust update never overwrites a newer certificate. */
  private installs: Promise<void> = Promise.resolve();
  private inFlight: Promise<unknown> | null = null;
  private stopped = false;
  /** Certificates installed by renewal since start (tests, status). */
  renewals = 0;

  constructor(private readonly o: NodeCertificatesOptions) {
    this.current = o.identity;
    this.scheduler = new RenewalScheduler<NodeIdentity>({
      certificate: o.identity,
      renew: (reason) => this.renewOnce(reason),
      roleSource: {
        subscribe: (listener) => {
          this.roleListener = listener;
          if (this.wantedRole !== null) listener(this.wantedRole);
          return () => {
            this.roleListener = null;
          };
        },
      },
      ...(o.clock !== undefined ? { clock: o.clock } : {}),
      ...(o.random !== undefined ? { random: o.random } : {}),
      ...(o.retryDelayMs !== undefined ? { retryDelayMs: o.retryDelayMs } : {}),
      ...(o.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: o.maxRetryDelayMs } : {}),
      ...(o.logger !== undefined ? { logger: o.logger } : {}),
    });
  }

  get identity(): NodeIdentity {
    return this.current;
  }

  /** When the current certificate is due for renewal if nothing else happens (ms since epoch). */
  get plannedRenewalMs(): number {
    return this.scheduler.plannedRenewalMs;
  }

  onChange(listener: IdentityListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.stopped = false;
    this.scheduler.start();
  }

  /** Stops renewing; waits at most `stopTimeoutMs` (default 5 s) for a renewal in flight, which is then not installed. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.scheduler.stop();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.o.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS)));
    await Promise.race([Promise.all([this.inFlight?.catch(() => undefined), this.installs]), limit]);
    clearTimeout(timer);
  }

  /** Renew as soon as possible (e.g. to report this node's certificate to the leader). */
  renewNow(reason: RenewalReason = 'requested'): void {
    this.scheduler.renewNow(reason);
  }

  setDesired(desired: DesiredCertificate): void {
    if (this.stopped) return;
    if (desired.role !== undefined && desired.role !== this.wantedRole) {
      this.wantedRole = desired.role;
      if (desired.role !== this.current.role) this.o.logger?.info({ from: this.current.role, to: desired.role }, 'role changed: renewing the node certificate');
      this.roleListener?.(desired.role);
    }
    if (desired.trustBundlePem !== undefined && desired.trustBundlePem !== '' && desired.trustBundlePem !== this.wantedBundle) {
      this.wantedBundle = desired.trustBundlePem;
      this.checkTrust();
    }
  }

  /** Is the certificate issued under the root the cluster issues under now? (True when unknown.) */
  underDesiredRoot(): boolean {
    // Asked on every certificate tick: parse and verify only when the bundle or the chain changed.
    const bundle = this.wantedBundle;
    const chain = this.current.certChainPem;
    const memo = this.underRootMemo;
    if (memo !== null && memo.bundle === bundle && memo.chain === chain) return memo.answer;
    const issuer = bundle === null ? null : desiredIssuer(bundle);
    const answer = issuer === null || issuedBy(chain, issuer);
    this.underRootMemo = { bundle, chain, answer };
    return answer;
  }

  private checkTrust(): void {
    const bundle = this.wantedBundle;
    const issuer = bundle === null ? null : desiredIssuer(bundle);
    if (bundle === null || issuer === null) return;
    if (!issuedBy(this.current.certChainPem, issuer)) {
      if (this.rotationAskedFor !== issuer.fingerprint256) {
        this.rotationAskedFor = issuer.fingerprint256;
        this.o.logger?.info({ root: issuer.fingerprint256 }, 'the cluster issues under a new root CA: renewing the node certificate');
        this.scheduler.renewNow('requested');
      }
      return;
    }
    if (sameCertificates(this.current.trustBundlePem, bundle)) return;
    this.queueInstall(() => {
      const cur = this.current;
      if (this.wantedBundle !== bundle || sameCertificates(cur.trustBundlePem, bundle) || !chainVerifies(cur.certChainPem, bundle, Date.now())) return null;
      return { identity: { ...cur, trustBundlePem: bundle }, change: 'trust-updated' };
    });
  }

  private async renewOnce(reason: RenewalReason): Promise<NodeIdentity> {
    const attempt = this.o.renew(this.current, reason);
    this.inFlight = attempt;
    let next: NodeIdentity;
    try {
      next = await attempt;
    } finally {
      this.inFlight = null;
    }
    if (this.stopped) throw new CAError('INVALID_CERTIFICATE', 'certificate renewal finished after the node stopped; not installed');
    await this.queueInstall(() => ({ identity: next, change: 'renewed' }));
    this.renewals++;
    const issuer = this.wantedBundle === null ? null : desiredIssuer(this.wantedBundle);
    if (issuer !== null && !issuedBy(next.certChainPem, issuer)) {
      // The manager that answered has not seen the rotation yet: the scheduler retries with backoff.
      this.rotationAskedFor = null;
      throw new CAError('UNTRUSTED_ROOT', 'the renewed certificate is still under the previous root CA; retrying');
    }
    this.checkTrust();
    return next;
  }

  private queueInstall(make: () => { identity: NodeIdentity; change: IdentityChange } | null): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.stopped) return;
      const step = make();
      if (step === null) return;
      await (this.o.save ?? saveIdentity)(this.o.certificatesDir, step.identity);
      this.current = step.identity;
      for (const listener of this.listeners) {
        try {
          listener(step.identity, step.change);
        } catch (err) {
          this.o.logger?.warn({ err }, 'a node identity listener failed');
        }
      }
    };
    const next = this.installs.then(run);
    this.installs = next.catch((err: unknown) => this.o.logger?.warn({ err }, 'could not install the node identity'));
    return next;
  }
}

/** What a dispatcher session message says: the Node object's role (Docker JSON) and the cluster's root CA bundle. */
export function desiredFromSession(message: { readonly nodeJson: Uint8Array; readonly rootCaPem: Uint8Array }): DesiredCertificate {
  let role: NodeRole | undefined;
  if (message.nodeJson.byteLength > 0) {
    try {
      const wanted = (JSON.parse(Buffer.from(message.nodeJson).toString('utf8')) as { Spec?: { Role?: unknown } }).Spec?.Role;
      role = wanted === 'manager' ? MANAGER_ROLE : wanted === 'worker' ? WORKER_ROLE : undefined;
    } catch {
      role = undefined;
    }
  }
  const roots = Buffer.from(message.rootCaPem).toString('utf8');
  return { ...(role !== undefined ? { role } : {}), ...(roots !== '' ? { trustBundlePem: roots } : {}) };
}

/** A node description with this identity's TLSInfo (what the agent reports in its session). */
export function withTlsInfo<D extends object>(description: D, identity: NodeIdentity): D & { readonly TLSInfo: TLSInfo } {
  return { ...description, TLSInfo: nodeTlsInfo(identity.certChainPem, identity.trustBundlePem) };
}
