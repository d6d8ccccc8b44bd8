// The default address pool: where networks created without `--subnet` get theirs. Docker's
// `--default-addr-pool` (one or more CIDRs, default 10.0.0.0/8) carved into subnets of
// `--default-addr-pool-mask-length` (default 24). A subnet is free when it overlaps no network's
// subnet, whether that one came from the pool or was given by the user.
import { AllocatorError } from './errors.js';
import { formatCidr, last, overlaps, parseCidr, size, type Cidr } from './ipv4.js';

export const DEFAULT_ADDR_POOL: readonly string[] = ['10.0.0.0/8'];
export const DEFAULT_SUBNET_SIZE = 24;
/** Smallest subnet a network may have: a /29 leaves 5 addresses after network, gateway, broadcast. */
export const MAX_PREFIX_LENGTH = 29;

export interface AddressPoolConfig {
  readonly pools: readonly Cidr[];
  readonly subnetSize: number;
}

/** Checks `swarm init --default-addr-pool … --default-addr-pool-mask-length …` (empty → Docker's defaults). */
export function parsePoolConfig(pools: readonly string[] | undefined, subnetSize: number | undefined): AddressPoolConfig {
  const texts = pools === undefined || pools.length === 0 ? DEFAULT_ADDR_POOL : pools;
  const bits = subnetSize === undefined || subnetSize === 0 ? DEFAULT_SUBNET_SIZE : subnetSize;
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_PREFIX_LENGTH) {
    throw new AllocatorError('ERR_ALLOC_INVALID_POOL', `invalid default address pool mask length ${bits}: it must be from 1 to ${MAX_PREFIX_LENGTH} (--default-addr-pool-mask-length)`);
  }
  const parsed: Cidr[] = [];
  for (const t of texts) {
    let c: Cidr;
    try {
      c = parseCidr(t, 'default address pool');
    } catch (err) {
      throw new AllocatorError('ERR_ALLOC_INVALID_POOL', `invalid default address pool: ${(err as Error).message} (--default-addr-pool)`);
    }
    if (c.prefixLength > bits) {
      throw new AllocatorError('ERR_ALLOC_INVALID_POOL', `invalid default address pool ${t}: it is smaller than the subnets carved from it (/${bits}); use a shorter prefix or a longer --default-addr-pool-mask-length`);
    }
    const clash = parsed.find((p) => overlaps(p, c));
    if (clash !== undefined) throw new AllocatorError('ERR_ALLOC_INVALID_POOL', `invalid default address pool: ${t} overlaps ${formatCidr(clash)}`);
    parsed.push(c);
  }
  return { pools: parsed, subnetSize: bits };
}

/**
 * The first subnet of the pool (in pool order, lowest address first) that overlaps none of
 * `taken`. Each step either returns or jumps past one taken subnet, so the search makes at most
 * taken.length + 1 steps per pool.
 */
export function nextFreeSubnet(cfg: AddressPoolConfig, taken: readonly Cidr[]): Cidr {
  const sorted = [...taken].sort((a, b) => a.base - b.base);
  for (const pool of cfg.pools) {
    const step = 2 ** (32 - cfg.subnetSize);
    let candidate = pool.base;
    for (let i = 0; i <= sorted.length + 1 && candidate + step - 1 <= last(pool); i++) {
      const c = { base: candidate, prefixLength: cfg.subnetSize };
      const clash = sorted.find((t) => overlaps(t, c));
      if (clash === undefined) return c;
      candidate = Math.ceil((last(clash) + 1) / step) * step;
    }
  }
  const total = cfg.pools.reduce((n, p) => n + size(p) / 2 ** (32 - cfg.subnetSize), 0);
  throw new AllocatorError(
    'ERR_ALLOC_POOL_EXHAUSTED',
    `could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: all ${total} /${cfg.subnetSize} subnets of ${cfg.pools.map(formatCidr).join(', ')} are in use (remove unused networks, or give --subnet)`,
  );
}
