// The addresses of one network: a bitmap over its subnet (or its `Range`), with the network
// address, the broadcast address and the gateway never handed out. Allocation is serial — the
// next free address after the last one handed out, wrapping — as swarm's IPAM does, so an
// address just released (a task that stopped, whose endpoint a worker may still be tearing
// down) is not the next one given.
import { AllocatorError } from './errors.js';
import { contains, formatAddr, formatCidr, last, size, type Cidr } from './ipv4.js';

export class NetworkAddresses {
  private readonly bits: Uint32Array;
  private readonly first: number;
  private readonly count: number;
  private cursor = 0;
  private used = 0;

  constructor(
    readonly networkName: string,
    readonly subnet: Cidr,
    readonly gateway: number,
    /** Where task and VIP addresses come from (default: the whole subnet). */
    range: Cidr = subnet,
  ) {
    this.first = range.base;
    this.count = size(range);
    this.bits = new Uint32Array(Math.ceil(this.count / 32));
    for (const a of [subnet.base, last(subnet), gateway]) this.mark(a);
  }

  /** Free addresses left. */
  get free(): number {
    return this.count - this.used;
  }

  has(addr: number): boolean {
    const i = addr - this.first;
    if (i < 0 || i >= this.count) return false;
    return ((this.bits[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  /** Marks an address as taken (rebuilding from the store). False when it was taken already or lies outside. */
  reserve(addr: number): boolean {
    if (!contains(this.subnet, addr)) return false;
    const i = addr - this.first;
    if (i < 0 || i >= this.count || this.has(addr)) return false;
    this.mark(addr);
    return true;
  }

  release(addr: number): void {
    if (addr === this.gateway || addr === this.subnet.base || addr === last(this.subnet)) return;
    const i = addr - this.first;
    if (i < 0 || i >= this.count || !this.has(addr)) return;
    this.bits[i >>> 5]! &= ~(1 << (i & 31));
    this.used--;
  }

  /** The next free address after the last one handed out; throws ERR_ALLOC_SUBNET_FULL when none is left. */
  allocate(): number {
    for (let n = 0; n < this.count; n++) {
      const i = (this.cursor + n) % this.count;
      const word = this.bits[i >>> 5]!;
      if (word === 0xffffffff) {
        n += 31 - (i & 31); // skip the rest of a full word
        continue;
      }
      if (((word >>> (i & 31)) & 1) === 0) {
        const addr = this.first + i;
        this.mark(addr);
        this.cursor = (i + 1) % this.count;
        return addr;
      }
    }
    throw new AllocatorError(
      'ERR_ALLOC_SUBNET_FULL',
      `no free address left on network ${this.networkName} (${formatCidr(this.subnet)}, gateway ${formatAddr(this.gateway)}): remove tasks or services from it, or use a network with a larger subnet`,
    );
  }

  /** `10.0.1.5/24`: an address as task attachments and VIPs carry it. */
  withPrefix(addr: number): string {
    return `${formatAddr(addr)}/${this.subnet.prefixLength}`;
  }

  private mark(addr: number): void {
    const i = addr - this.first;
    if (i < 0 || i >= this.count || this.has(addr)) return;
    this.bits[i >>> 5]! |= 1 << (i & 31);
    this.used++;
  }
}
