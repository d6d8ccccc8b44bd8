// The resolv.conf of a task that has no embedded resolver (a task on no overlay network, or only on
// `ingress`), as Docker writes it for a container on its default bridge: the host's resolv.conf
// without loopback nameservers (127.0.0.0/8 and ::1 do not answer inside the task's namespace)
// nor IPv6 ones (the task has no IPv6 route); when none is left, Docker's defaults 8.8.8.8 and
// 8.8.4.4. The task's `DNSConfig` (`--dns`, `--dns-search`, `--dns-option`) replaces the host's
// nameservers, search domains and options respectively, as Docker's does.
import { readFile } from 'node:fs/promises';

import type { ContainerSpec } from '../../manager/store/types.js';
import { containerResolvConf } from '../../overlay/index.js';

export const HOST_RESOLV_CONF = '/etc/resolv.conf';
/** Where systemd-resolved keeps the real upstreams when /etc/resolv.conf names only its 127.0.0.53 stub. */
export const SYSTEMD_RESOLV_CONF = '/run/systemd/resolve/resolv.conf';
export const DEFAULT_NAMESERVERS: readonly string[] = ['8.8.8.8', '8.8.4.4'];

type DnsConfig = NonNullable<ContainerSpec['DNSConfig']>;

interface Parsed {
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
  readonly options: readonly string[];
}

const IPV4 = /^(\d{1,3})\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

function parse(text: string): Parsed {
  const nameservers: string[] = [];
  let search: string[] = [];
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0] !== undefined) nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') search = rest.filter((s) => s.length > 0);
    else if (key === 'options') options.push(...rest.filter((s) => s.length > 0));
  }
  return { nameservers, search, options };
}

/** An IPv4 nameserver a task's namespace can reach (not loopback). */
function usable(ns: string): boolean {
  const m = IPV4.exec(ns);
  return m !== null && m[1] !== '127';
}

/** The task's resolv.conf from the host's resolv.conf text and the task's DNS settings. */
export function taskResolvConf(hostText: string, dns?: DnsConfig): string {
  const host = parse(hostText);
  const hostNameservers = host.nameservers.filter(usable);
  const nameservers = (dns?.Nameservers?.length ?? 0) > 0 ? dns!.Nameservers! : hostNameservers.length > 0 ? hostNameservers : DEFAULT_NAMESERVERS;
  const search = (dns?.Search?.length ?? 0) > 0 ? dns!.Search! : host.search;
  const options = (dns?.Options?.length ?? 0) > 0 ? dns!.Options! : host.options;
  const lines = nameservers.map((n) => `nameserver ${n}`);
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The resolv.conf of a task with an embedded resolver (`nameserver`, on its first overlay), as
 * Docker writes it: the task's `--dns-search` and `--dns-option` replace the host's search domains
 * and options; its `--dns` servers are where the resolver forwards its other names (the data
 * plane's `setContainerResolvers`), so they are not listed here.
 */
export function embeddedResolverConf(hostText: string, nameserver: string, dns?: DnsConfig): string {
  const host = parse(hostText);
  const search = (dns?.Search?.length ?? 0) > 0 ? dns!.Search! : host.search;
  const options = (dns?.Options?.length ?? 0) > 0 ? dns!.Options! : host.options;
  return containerResolvConf(nameserver, search, options);
}

/**
 * The host's resolv.conf text: `path`, or systemd-resolved's upstream list when `path` names only
 * loopback nameservers (the 127.0.0.53 stub) and that file exists. Empty when unreadable.
 */
export async function readHostResolvConfText(path = HOST_RESOLV_CONF): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  if (path === HOST_RESOLV_CONF && parse(text).nameservers.length > 0 && !parse(text).nameservers.some(usable)) {
    const resolved = await readFile(SYSTEMD_RESOLV_CONF, 'utf8').catch(() => '');
    if (parse(resolved).nameservers.some(usable)) return resolved;
  }
  return text;
}
