// The routing mesh on one host (Docker's ingress_sbox, with iptables instead of IPVS):
//
//   client ──► host:PUBLISHED ──nat PREROUTING/OUTPUT (dst-type LOCAL) SHOAL-INGRESS: DNAT──►
//   169.254.247.2:PUBLISHED (eth1 of the ingress sandbox, a veth from the host: shi0 169.254.247.1)
//   ──sandbox nat PREROUTING SHOAL-ING: DNAT (statistic random over the running tasks)──►
//   task-ingress-ip:TARGET over eth0 (the sandbox's endpoint on the `ingress` overlay network, with
//   this node's ingress address) ──sandbox nat POSTROUTING: MASQUERADE to that address──► the task
//   answers the sandbox, conntrack un-NATs both hops.
//
// So a published port on any node reaches the service's tasks on any node. A port whose service
// has no running task has no DNAT in the sandbox: nothing listens there, TCP gets a reset (refused).
// Host rules live in our own chains (SHOAL-INGRESS in nat, SHOAL-INGRESS-FWD in filter) jumped
// from PREROUTING/OUTPUT/FORWARD; each rewrite is one iptables-restore --noflush transaction.
// Not handled: connections to 127.0.0.1:PORT from the host itself (Docker uses docker-proxy there).
import type { Logger } from 'pino';

import { ensureIptablesJump, GONE, run, runTolerating } from './exec.js';
import { ingressSandboxName, netnsPath } from './names.js';
import type { OverlayNetwork } from './network.js';
import { destroySandbox } from './network.js';

export const INGRESS_HOST_VETH = 'shi0';
export const INGRESS_HOST_ADDR = '169.254.247.1';
export const INGRESS_SANDBOX_ADDR = '169.254.247.2';
const LINK_PREFIX_LENGTH = 30;
const HOST_NAT_CHAIN = 'SHOAL-INGRESS';
const HOST_FILTER_CHAIN = 'SHOAL-INGRESS-FWD';
const SBOX_NAT_CHAIN = 'SHOAL-ING';
const SBOX_POST_CHAIN = 'SHOAL-ING-POST';
const ENDPOINT_ID = 'ingress-sbox';

export interface PublishedPort {
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly publishedPort: number;
  readonly targetPort: number;
  /** Ingress-network addresses of the service's running tasks. */
  readonly backends: readonly string[];
}

export interface IngressSandboxOptions {
  readonly hostTag: string;
  /** The host's `ingress` overlay network (its sandbox exists). */
  readonly network: OverlayNetwork;
  /** This node's address on it (Node.Attachments). */
  readonly address: string;
  /** The host's network namespace (lab hosts); undefined = ours. */
  readonly hostNetns?: string;
  readonly logger: Logger;
}

const HOST_JUMPS: readonly (readonly string[])[] = [
  ['-t', 'nat', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', HOST_NAT_CHAIN],
  ['-t', 'nat', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', HOST_NAT_CHAIN],
  ['-t', 'filter', 'FORWARD', '-j', HOST_FILTER_CHAIN],
];


/** Rule lines spreading new connections evenly: rule i of k matches with probability 1/(k−i). */
function spread(prefix: string, targets: readonly string[]): string[] {
  return targets.map((to, i) => {
    const left = targets.length - i;
    const stat = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
    return `${prefix}${stat} -j DNAT --to-destination ${to}`;
  });
}

export class IngressSandbox {
  readonly name: string;
  readonly path: string;
  private removed = false;

  private constructor(private readonly opts: IngressSandboxOptions) {
    this.name = ingressSandboxName(opts.hostTag);
    this.path = netnsPath(this.name);
  }

  /** Builds the sandbox (a leftover of an earlier run is removed first). */
  static async create(opts: IngressSandboxOptions): Promise<IngressSandbox> {
    await IngressSandbox.removeLeftovers(opts.hostTag, opts.hostNetns);
    const sbox = new IngressSandbox(opts);
    try {
      await sbox.build();
    } catch (err) {
      await sbox.remove().catch(() => undefined);
      throw err;
    }
    return sbox;
  }

  /** Removes a sandbox, host veth and host chains an earlier daemon left. */
  static async removeLeftovers(hostTag: string, hostNetns?: string): Promise<void> {
    await destroySandbox(ingressSandboxName(hostTag));
    await removeHostState(hostNetns);
  }

  private async build(): Promise<void> {
    const host = this.opts.hostNetns;
    await run(['ip', 'netns', 'add', this.name]);
    await run(['ip', 'link', 'set', 'lo', 'up'], { netns: this.path });
    await run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { netns: this.path });
    await this.opts.network.attach({ id: ENDPOINT_ID, containerNetns: this.path, ifName: 'eth0', ip: this.opts.address, defaultRoute: false });
    await run(['ip', 'link', 'add', INGRESS_HOST_VETH, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', this.name], { netns: host });
    await run(['ip', '-batch', '-'], { netns: host, input: `addr add ${INGRESS_HOST_ADDR}/${LINK_PREFIX_LENGTH} dev ${INGRESS_HOST_VETH}\nlink set ${INGRESS_HOST_VETH} up\n` });
    await run(['ip', '-batch', '-'], {
      netns: this.path,
      input: `addr add ${INGRESS_SANDBOX_ADDR}/${LINK_PREFIX_LENGTH} dev eth1\nlink set eth1 up\nroute add default via ${INGRESS_HOST_ADDR} dev eth1\n`,
    });
    // The host forwards from its interfaces to the sandbox (Docker needs the same).
    await run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { netns: host });
    await run(['iptables-restore', '--noflush'], {
      netns: this.path,
      input: ['*nat', `:${SBOX_NAT_CHAIN} - [0:0]`, `:${SBOX_POST_CHAIN} - [0:0]`, `-A ${SBOX_POST_CHAIN} -o eth0 -m conntrack --ctstate DNAT -j MASQUERADE`, 'COMMIT', ''].join('\n'),
    });
    await ensureIptablesJump(this.path, ['-t', 'nat', 'PREROUTING', '-j', SBOX_NAT_CHAIN]);
    await ensureIptablesJump(this.path, ['-t', 'nat', 'POSTROUTING', '-j', SBOX_POST_CHAIN]);
    await this.setPorts([]);
    for (const jump of HOST_JUMPS) await ensureIptablesJump(host, jump);
    this.opts.logger.info({ sandbox: this.name, address: this.opts.address }, 'ingress sandbox created');
  }

  /** Makes the published ports exactly `ports` (host DNAT into the sandbox, sandbox DNAT to the tasks). */
  async setPorts(ports: readonly PublishedPort[]): Promise<void> {
    if (this.removed) return;
    const hostNat = [`:${HOST_NAT_CHAIN} - [0:0]`];
    const hostFilter = [`:${HOST_FILTER_CHAIN} - [0:0]`, `-A ${HOST_FILTER_CHAIN} -o ${INGRESS_HOST_VETH} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`];
    const sbox = [`:${SBOX_NAT_CHAIN} - [0:0]`];
    for (const p of ports) {
      const match = `-p ${p.protocol} -m ${p.protocol} --dport ${p.publishedPort}`;
      hostNat.push(`-A ${HOST_NAT_CHAIN} ${match} -j DNAT --to-destination ${INGRESS_SANDBOX_ADDR}:${p.publishedPort}`);
      hostFilter.push(`-A ${HOST_FILTER_CHAIN} -d ${INGRESS_SANDBOX_ADDR}/32 ${match} -j ACCEPT`);
      hostFilter.push(`-A ${HOST_FILTER_CHAIN} -s ${INGRESS_SANDBOX_ADDR}/32 -p ${p.protocol} -m ${p.protocol} --sport ${p.publishedPort} -j ACCEPT`);
      sbox.push(...spread(`-A ${SBOX_NAT_CHAIN} ${match}`, [...new Set(p.backends)].sort().map((b) => `${b}:${p.targetPort}`)));
    }
    await run(['iptables-restore', '--noflush'], { netns: this.opts.hostNetns, input: ['*nat', ...hostNat, 'COMMIT', '*filter', ...hostFilter, 'COMMIT', ''].join('\n') });
    await run(['iptables-restore', '--noflush'], { netns: this.path, input: ['*nat', ...sbox, 'COMMIT', ''].join('\n') });
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await this.opts.network.detach(ENDPOINT_ID).catch((err: unknown) => this.opts.logger.warn({ err }, 'detaching the ingress sandbox failed'));
    await destroySandbox(this.name);
    await removeHostState(this.opts.hostNetns);
    this.opts.logger.info({ sandbox: this.name }, 'ingress sandbox removed');
  }
}

async function removeHostState(hostNetns: string | undefined): Promise<void> {
  for (const [t, table, chain, ...rule] of HOST_JUMPS) {
    // Bounded: a jump inserted twice (two crashed runs) is removed by the second pass.
    for (let i = 0; i < 4; i++) {
      const gone = await run(['iptables', t!, table!, '-D', chain!, ...rule], { netns: hostNetns }).then(
        () => false,
        () => true,
      );
      if (gone) break;
    }
  }
  for (const [table, chain] of [['nat', HOST_NAT_CHAIN], ['filter', HOST_FILTER_CHAIN]] as const) {
    await runTolerating(['iptables', '-t', table, '-F', chain], GONE, { netns: hostNetns });
    await runTolerating(['iptables', '-t', table, '-X', chain], GONE, { netns: hostNetns });
  }
  await runTolerating(['ip', 'link', 'del', INGRESS_HOST_VETH], GONE, { netns: hostNetns });
}
