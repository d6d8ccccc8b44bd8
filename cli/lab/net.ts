// The lab's network: a bridge with the lab's /24, a network namespace per host joined to it by a
// veth, one FORWARD rule in the host (in its own chain) so the bridge works whatever the FORWARD
// policy (a Docker daemon sets it to DROP and loads br_netfilter), and partitions as DROP rules in
// a chain inside each host namespace (silent, like a real cut cable, and independent of
// br_netfilter). Nothing outside what the lab creates is changed.
// Commands that must see the host's mounts use `nsenter --net=` only: `ip netns exec` remounts /sys
// and hides the cgroup v1 hierarchy (../shared/reference/runtime-recipe.md, gotchas).
import { readFileSync } from 'node:fs';
import { PARTITION_CHAIN, cidrsOverlap } from './naming.js';
import { mustRun, mustRunInNetns, runCommand, runInNetns } from './sys.js';

/** Routes and addresses that a new lab subnet must not overlap (prefixes /16 and longer; not default). */
export async function usedCidrs(): Promise<string[]> {
  const out: string[] = [];
  const routes = await runCommand('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
  for (const line of routes.stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    const dst = ['local', 'broadcast', 'unicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'multicast', 'anycast', 'nat'].includes(words[0] ?? '') ? words[1] : words[0];
    if (dst === undefined || dst === '' || dst === 'default') continue;
    const bits = dst.includes('/') ? Number(dst.split('/')[1]) : 32;
    if (bits >= 16) out.push(dst);
  }
  const addrs = await runCommand('ip', ['-4', '-o', 'addr', 'show']);
  for (const m of addrs.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) out.push(m[1] as string);
  return out;
}

export function overlapsAny(cidr: string, used: readonly string[]): boolean {
  return used.some((u) => {
    try {
      return cidrsOverlap(cidr, u);
    } catch {
      return false;
    }
  });
}

export async function linkExists(name: string): Promise<boolean> {
  return (await runCommand('ip', ['link', 'show', 'dev', name])).code === 0;
}

export async function listLinks(): Promise<string[]> {
  const r = await runCommand('ip', ['-o', 'link', 'show']);
  return [...r.stdout.matchAll(/^\d+: ([^:@\s]+)[@:]/gm)].map((m) => m[1] as string);
}

export async function listNetns(): Promise<string[]> {
  const r = await runCommand('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

export async function createBridge(bridge: string, gateway: string): Promise<void> {
  await mustRun('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await mustRun('ip', ['addr', 'add', `${gateway}/24`, 'dev', bridge]);
  await mustRun('ip', ['link', 'set', bridge, 'up']);
}

/** A host: its namespace, a veth with `eth0` inside at `address/24`, loopback up. */
export async function createHostNetns(netns: string, veth: string, bridge: string, address: string): Promise<void> {
  await mustRun('ip', ['netns', 'add', netns]);
  await mustRun('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await mustRun('ip', ['link', 'set', veth, 'master', bridge, 'up']);
  await mustRunInNetns(netns, 'ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await mustRunInNetns(netns, 'ip', ['link', 'set', 'eth0', 'up']);
  await mustRunInNetns(netns, 'ip', ['link', 'set', 'lo', 'up']);
}

export async function deleteNetns(netns: string): Promise<boolean> {
  return (await runCommand('ip', ['netns', 'delete', netns])).code === 0;
}

export async function deleteLink(name: string): Promise<boolean> {
  return (await runCommand('ip', ['link', 'delete', name])).code === 0;
}

/** PIDs of processes whose network namespace is `netns`. */
export async function netnsPids(netns: string): Promise<number[]> {
  const r = await runCommand('ip', ['netns', 'pids', netns]);
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

// ---- the host's FORWARD rule -----------------------------------------------------------------

export async function chainExists(chain: string): Promise<boolean> {
  return (await runCommand('iptables', ['-S', chain])).code === 0;
}

export async function installForwardChain(chain: string, bridge: string): Promise<void> {
  await mustRun('iptables', ['-N', chain]);
  await mustRun('iptables', ['-A', chain, '-j', 'ACCEPT']);
  await mustRun('iptables', ['-I', 'FORWARD', '1', '-i', bridge, '-o', bridge, '-j', chain]);
}

/** Removes every FORWARD jump to `chain` and the chain. True when something was removed. */
export async function removeForwardChain(chain: string): Promise<boolean> {
  let removed = false;
  const rules = await runCommand('iptables', ['-S', 'FORWARD']);
  for (const line of rules.stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== '-A' || !line.includes(`-j ${chain}`) || words[words.length - 1] !== chain) continue;
    const r = await runCommand('iptables', ['-D', ...words.slice(1)]);
    if (r.code === 0) removed = true;
  }
  if (await chainExists(chain)) {
    await runCommand('iptables', ['-F', chain]);
    if ((await runCommand('iptables', ['-X', chain])).code === 0) removed = true;
  }
  return removed;
}

// ---- partitions, inside the host namespaces ---------------------------------------------------

/** Drops everything `netns` receives from `fromAddresses` (silently, like a cut link). */
export async function dropFrom(netns: string, fromAddresses: readonly string[]): Promise<void> {
  if ((await runInNetns(netns, 'iptables', ['-S', PARTITION_CHAIN])).code !== 0) {
    await mustRunInNetns(netns, 'iptables', ['-N', PARTITION_CHAIN]);
    await mustRunInNetns(netns, 'iptables', ['-I', 'INPUT', '1', '-j', PARTITION_CHAIN]);
  }
  for (const addr of fromAddresses) {
    if ((await runInNetns(netns, 'iptables', ['-C', PARTITION_CHAIN, '-s', addr, '-j', 'DROP'])).code === 0) continue;
    await mustRunInNetns(netns, 'iptables', ['-A', PARTITION_CHAIN, '-s', addr, '-j', 'DROP']);
  }
}

/** Removes the partition chain from `netns`; true when there was one. */
export async function clearPartition(netns: string): Promise<boolean> {
  if ((await runInNetns(netns, 'iptables', ['-S', PARTITION_CHAIN])).code !== 0) return false;
  for (let i = 0; i < 10 && (await runInNetns(netns, 'iptables', ['-D', 'INPUT', '-j', PARTITION_CHAIN])).code === 0; i++);
  await runInNetns(netns, 'iptables', ['-F', PARTITION_CHAIN]);
  await runInNetns(netns, 'iptables', ['-X', PARTITION_CHAIN]);
  return true;
}

// ---- mounts ---------------------------------------------------------------------------------

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const text = readFileSync('/proc/self/mounts', 'utf8');
  const targets = text
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((t): t is string => t !== undefined)
    .map(unescapeMount)
    .filter((t) => t === dir || t.startsWith(`${dir}/`));
  return [...new Set(targets)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Unmounts everything under `dir` (lazily when busy). Returns the targets that were mounted. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (let round = 0; round < 5; round++) {
    const targets = mountsUnder(dir);
    if (targets.length === 0) break;
    for (const t of targets) {
      found.push(t);
      if ((await runCommand('umount', [t])).code !== 0) await runCommand('umount', ['-l', t]);
    }
  }
  return [...new Set(found)];
}
