// The node's gateway bridge (Docker's `docker_gwbridge`, here `shoal_gwbridge`): every task gets
// an interface on it carrying its default route (its overlay networks keep their on-link routes),
// and the host MASQUERADEs the bridge's subnet leaving by any other interface — the task's route
// to the outside world, as Docker gives every container. Host-mode published ports
// (`--publish mode=host,target=80,published=8080`) ride on the same endpoint: the host DNATs its
// published port to the container's address there.
//
//   client ──► node-addr:PUBLISHED ── host nat PREROUTING/OUTPUT (dst-type LOCAL) SHOAL-HOSTPORT:
//   DNAT container-gw-addr:TARGET ──► shoal_gwbridge ──► veth sg<hash> ──► container eth<n>
//   (default route via the bridge's gateway address, so replies go back through the host's
//   conntrack, which un-NATs them; the client's address is preserved, as with Docker).
//
// Bridge ports are `isolated` (Docker creates docker_gwbridge with inter-container traffic off):
// tasks cannot reach each other through the bridge, only the host and what lies beyond it, so
// overlay networks stay the only path between tasks. An endpoint costs two `ip` processes (one
// batch in the host, one in the container); the host rules change only for published ports.
// Host rules live in our own chains, rewritten whole in one `iptables-restore --noflush` per change:
//   nat    SHOAL-HOSTPORT      (jumped from PREROUTING and OUTPUT for local destinations)
//   nat    SHOAL-GW-POST       (jumped from POSTROUTING: egress masquerade)
//   filter SHOAL-GW-FWD        (jumped from FORWARD: published ports in, replies and egress out)
// Not handled: 127.0.0.1:PORT from the host itself (Docker's docker-proxy), a host-mode port with
// no published port (Docker picks a free one on the node), hairpin (a task to its own node's port).
import { existsSync } from 'node:fs';

import type { Logger } from 'pino';

import { formatIpv4, macFromIpv4, parseIpv4, parseSubnet } from './addresses.js';
import { OverlayCommandError, OverlayError } from './errors.js';
import { ensureIptablesJump, GONE, run, runTolerating } from './exec.js';
import { gatewayVethName } from './names.js';

export const GATEWAY_BRIDGE = 'shoal_gwbridge';
/** Docker's docker_gwbridge default. A node that uses it already can pass another (`subnet`). */
export const DEFAULT_GATEWAY_SUBNET = '172.18.0.0/16';
const NAT_CHAIN = 'SHOAL-HOSTPORT';
const POST_CHAIN = 'SHOAL-GW-POST';
const FWD_CHAIN = 'SHOAL-GW-FWD';

export interface HostPort {
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly publishedPort: number;
  readonly targetPort: number;
}

export interface GatewayEndpoint {
  readonly ifName: string;
  readonly ip: string;
  readonly gateway: string;
}

export interface GatewayBridgeOptions {
  /** The host's network namespace (lab hosts); undefined = ours. */
  readonly hostNetns?: string;
  /** IPv4 CIDR of the bridge (default 172.18.0.0/16); its first address is the gateway. */
  readonly subnet?: string;
  readonly logger: Logger;
}

const HOST_JUMPS: readonly (readonly string[])[] = [
  ['-t', 'nat', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', NAT_CHAIN],
  ['-t', 'nat', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', NAT_CHAIN],
  ['-t', 'nat', 'POSTROUTING', '-j', POST_CHAIN],
  ['-t', 'filter', 'FORWARD', '-j', FWD_CHAIN],
];


interface Attached {
  readonly id: string;
  readonly ip: string;
  readonly hostVeth: string;
  readonly ports: readonly HostPort[];
}

export class GatewayBridge {
  private readonly base: number;
  private readonly prefixLength: number;
  readonly gateway: string;
  private readonly endpoints = new Map<string, Attached>();
  /** Serial allocation (next free after the last) so a just-released address is not reused at once. */
  private lastOffset = 1;
  private removed = false;
  private rulesWritten: Promise<void> = Promise.resolve();

  private constructor(private readonly opts: GatewayBridgeOptions) {
    const { network, prefixLength } = parseSubnet(opts.subnet ?? DEFAULT_GATEWAY_SUBNET);
    this.base = network;
    this.prefixLength = prefixLength;
    this.gateway = formatIpv4(network + 1);
  }

  /** Builds the bridge and the host chains (what an earlier run left is removed first). */
  static async create(opts: GatewayBridgeOptions): Promise<GatewayBridge> {
    const bridge = new GatewayBridge(opts);
    await GatewayBridge.removeLeftovers(opts.hostNetns);
    try {
      await bridge.build();
    } catch (err) {
      await bridge.remove().catch(() => undefined);
      throw err;
    }
    return bridge;
  }

  /** Removes the bridge, its veths and our host chains (a daemon that died left them). */
  static async removeLeftovers(hostNetns?: string): Promise<void> {
    const netns = hostNetns;
    for (const [t, table, chain, ...rule] of HOST_JUMPS) {
      // Bounded: a jump inserted twice (two crashed runs) goes with the next pass.
      for (let i = 0; i < 4; i++) {
        const gone = await run(['iptables', t!, table!, '-D', chain!, ...rule], { netns }).then(
          () => false,
          () => true,
        );
        if (gone) break;
      }
    }
    for (const [table, chain] of [['nat', NAT_CHAIN], ['nat', POST_CHAIN], ['filter', FWD_CHAIN]] as const) {
      await runTolerating(['iptables', '-t', table, '-F', chain], GONE, { netns });
      await runTolerating(['iptables', '-t', table, '-X', chain], GONE, { netns });
    }
    // The host ends of the bridge's veths (a container that survived keeps the other end: its
    // endpoint is made again on re-attach, after the stale interface there is deleted).
    const links = await run(['ip', '-o', 'link', 'show', 'master', GATEWAY_BRIDGE], { netns }).catch(() => '');
    for (const line of links.split('\n')) {
      const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
      if (name !== undefined) await runTolerating(['ip', 'link', 'del', name], GONE, { netns });
    }
    await runTolerating(['ip', 'link', 'del', GATEWAY_BRIDGE], GONE, { netns });
  }

  private async build(): Promise<void> {
    const netns = this.opts.hostNetns;
    // A fixed MAC: a bridge otherwise takes its lowest port's, and a new endpoint would change the
    // gateway's MAC under the other containers' ARP caches (their replies lost until re-ARP).
    await run(['ip', 'link', 'add', GATEWAY_BRIDGE, 'address', macFromIpv4(this.gateway), 'type', 'bridge'], { netns });
    await run(['ip', '-batch', '-'], { netns, input: `addr add ${this.gateway}/${this.prefixLength} dev ${GATEWAY_BRIDGE}\nlink set ${GATEWAY_BRIDGE} up\n` });
    await run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { netns });
    await this.writeRules();
    for (const jump of HOST_JUMPS) await ensureIptablesJump(netns, jump);
    this.opts.logger.info({ bridge: GATEWAY_BRIDGE, gateway: this.gateway, prefixLength: this.prefixLength }, 'gateway bridge created (tasks\' route out, host-mode published ports)');
  }

  get size(): number {
    return this.endpoints.size;
  }

  /**
   * Gives the container an interface on the bridge (its default route, `lo` up too), and publishes
   * `ports` on the host to it. `createNetns`: the namespace (`/run/netns/NAME`) is made in the same
   * `ip` batch (one process less for a new task). A stale `ifName` in the namespace (a container
   * that survived a daemon restart) or a stale host veth is replaced.
   */
  async attach(req: { readonly id: string; readonly containerNetns: string; readonly ifName: string; readonly ports: readonly HostPort[]; readonly createNetns?: boolean }): Promise<GatewayEndpoint> {
    if (this.removed) throw new OverlayError('ERR_OVERLAY_REMOVED', 'the gateway bridge was removed');
    if (this.endpoints.has(req.id)) throw new OverlayError('ERR_OVERLAY_ENDPOINT_EXISTS', `endpoint ${req.id} is already on the gateway bridge`);
    const ip = this.allocate();
    const hostVeth = gatewayVethName(req.id);
    const netns = this.opts.hostNetns;
    const nsName = req.containerNetns.startsWith('/run/netns/') ? req.containerNetns.slice('/run/netns/'.length) : req.containerNetns;
    // One batch in the host: the veth pair (its host end on the bridge, up, isolated from the other ports).
    const veth = `link add ${hostVeth} master ${GATEWAY_BRIDGE} up type veth peer name ${req.ifName} netns ${nsName}\nlink set dev ${hostVeth} type bridge_slave isolated on\n`;
    // Reserved before the first await: a concurrent attach does not take the same address.
    this.endpoints.set(req.id, { id: req.id, ip, hostVeth, ports: req.ports });
    try {
      try {
        // (`ip netns add` in a batch returns to the batch's namespace afterwards.)
        await run(['ip', '-batch', '-'], { netns, input: req.createNetns === true ? `netns add ${nsName}\n${veth}` : veth });
      } catch (err) {
        if (!(err instanceof OverlayCommandError) || !/exists/i.test(err.stderr) || !existsSync(req.containerNetns)) throw err;
        // Left by an earlier run: replace it (bounded, once).
        await runTolerating(['ip', 'link', 'del', req.ifName], GONE, { netns: req.containerNetns });
        await runTolerating(['ip', 'link', 'del', hostVeth], GONE, { netns });
        await run(['ip', '-batch', '-'], { netns, input: veth });
      }
      await run(['ip', '-batch', '-'], {
        netns: req.containerNetns,
        input: `link set lo up\naddr add ${ip}/${this.prefixLength} dev ${req.ifName}\nlink set ${req.ifName} up\nroute replace default via ${this.gateway} dev ${req.ifName}\n`,
      });
      if (req.ports.length > 0) await this.writeRules();
    } catch (err) {
      this.endpoints.delete(req.id);
      await runTolerating(['ip', 'link', 'del', hostVeth], GONE, { netns }).catch(() => undefined);
      if (req.ports.length > 0) await this.writeRules().catch(() => undefined);
      throw err;
    }
    if (req.ports.length > 0) this.opts.logger.info({ endpoint: req.id, ip, ports: req.ports }, 'host-mode ports published');
    else this.opts.logger.debug({ endpoint: req.id, ip }, 'endpoint on the gateway bridge');
    return { ifName: req.ifName, ip, gateway: this.gateway };
  }

  /** Unpublishes the endpoint's ports and deletes its veth. Idempotent. */
  async detach(id: string): Promise<void> {
    const ep = this.endpoints.get(id);
    if (ep === undefined || this.removed) return;
    this.endpoints.delete(id);
    if (ep.ports.length > 0) await this.writeRules();
    await runTolerating(['ip', 'link', 'del', ep.hostVeth], GONE, { netns: this.opts.hostNetns });
    if (ep.ports.length > 0) this.opts.logger.info({ endpoint: id, ports: ep.ports }, 'host-mode ports unpublished');
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.endpoints.clear();
    await GatewayBridge.removeLeftovers(this.opts.hostNetns);
    this.opts.logger.info({ bridge: GATEWAY_BRIDGE }, 'gateway bridge removed');
  }

  /**
   * The host's three chains, from the endpoints, in one transaction. Writes run one at a time, each
   * from the endpoints as they are when it starts (attach/detach may run concurrently).
   */
  private writeRules(): Promise<void> {
    const next = this.rulesWritten.then(() => this.writeRulesNow());
    this.rulesWritten = next.catch(() => undefined);
    return next;
  }

  private async writeRulesNow(): Promise<void> {
    const subnet = `${formatIpv4(this.base)}/${this.prefixLength}`;
    const nat = [`:${NAT_CHAIN} - [0:0]`, `:${POST_CHAIN} - [0:0]`, `-A ${POST_CHAIN} -s ${subnet} ! -o ${GATEWAY_BRIDGE} -j MASQUERADE`];
    const filter = [
      `:${FWD_CHAIN} - [0:0]`,
      `-A ${FWD_CHAIN} -o ${GATEWAY_BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A ${FWD_CHAIN} -i ${GATEWAY_BRIDGE} ! -o ${GATEWAY_BRIDGE} -j ACCEPT`,
    ];
    for (const ep of [...this.endpoints.values()].sort((a, b) => a.id.localeCompare(b.id))) {
      for (const p of ep.ports) {
        nat.push(`-A ${NAT_CHAIN} -p ${p.protocol} -m ${p.protocol} --dport ${p.publishedPort} -j DNAT --to-destination ${ep.ip}:${p.targetPort}`);
        filter.push(`-A ${FWD_CHAIN} -o ${GATEWAY_BRIDGE} -d ${ep.ip}/32 -p ${p.protocol} -m ${p.protocol} --dport ${p.targetPort} -j ACCEPT`);
      }
    }
    await run(['iptables-restore', '--noflush'], { netns: this.opts.hostNetns, input: ['*nat', ...nat, 'COMMIT', '*filter', ...filter, 'COMMIT', ''].join('\n') });
  }

  private allocate(): string {
    const hosts = 2 ** (32 - this.prefixLength) - 2; // offsets 1..hosts; 1 is the gateway
    const used = new Set([...this.endpoints.values()].map((e) => parseIpv4(e.ip) - this.base));
    for (let i = 0; i < hosts; i++) {
      const offset = ((this.lastOffset + i) % hosts) + 1;
      if (offset === 1 || used.has(offset)) continue;
      this.lastOffset = offset;
      return formatIpv4(this.base + offset);
    }
    throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `the gateway bridge's subnet ${formatIpv4(this.base)}/${this.prefixLength} has no free address left`);
  }
}
