// The host's resolvers, as /etc/resolv.conf names them, and forwarding a raw query to them.

import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { isIpv4 } from '../addresses.js';

export interface Upstream {
  readonly address: string;
  readonly port: number;
}

export const UPSTREAM_TIMEOUT_MS = 2_000;

export interface ResolvConf {
  readonly nameservers: readonly Upstream[];
  readonly search: readonly string[];
}

/** IPv4 nameservers and search domains of a resolv.conf text. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: Upstream[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0] !== undefined && isIpv4(rest[0])) nameservers.push({ address: rest[0], port: 53 });
    if (key === 'search' || key === 'domain') search = rest.filter((s) => s.length > 0);
  }
  return { nameservers, search };
}

export function readHostResolvConf(path = '/etc/resolv.conf'): ResolvConf {
  try {
    return parseResolvConf(readFileSync(path, 'utf8'));
  } catch {
    return { nameservers: [], search: [] };
  }
}

/**
 * The resolv.conf a container on the overlay gets, as Docker writes it for its embedded resolver:
 * our resolver, the search domains (the task's `--dns-search`, else the host's) and the options
 * (the task's `--dns-option`), with `ndots:0` unless those set ndots themselves.
 */
export function containerResolvConf(nameserver: string, search: readonly string[] = [], options: readonly string[] = []): string {
  const lines = [`nameserver ${nameserver}`];
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  const opts = options.some((o) => o.startsWith('ndots:')) ? options : ['ndots:0', ...options];
  lines.push(`options ${opts.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** The IPv4 nameservers of a list (a task's `--dns`), as upstreams on port 53; others are left out. */
export function nameserverUpstreams(nameservers: readonly string[]): Upstream[] {
  return nameservers.filter(isIpv4).map((address) => ({ address, port: 53 }));
}

/** Sends `query` to each upstream in turn until one answers; undefined when none does in time. */
export async function forwardQuery(query: Buffer, upstreams: readonly Upstream[], timeoutMs = UPSTREAM_TIMEOUT_MS): Promise<Buffer | undefined> {
  const id = query.readUInt16BE(0);
  for (const upstream of upstreams) {
    const answer = await askOne(query, id, upstream, timeoutMs);
    if (answer !== undefined) return answer;
  }
  return undefined;
}

function askOne(query: Buffer, id: number, upstream: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    let done = false;
    const finish = (value: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(value);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('error', () => finish(undefined));
    sock.on('message', (msg, rinfo) => {
      // Only the server asked, with the same id, may answer (a fresh socket per query picks a random port).
      if (rinfo.address !== upstream.address || rinfo.port !== upstream.port || msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      finish(msg);
    });
    sock.send(query, upstream.port, upstream.address, (err) => {
      if (err) finish(undefined);
    });
  });
}

/** forwardQuery over TCP (a query that came over TCP: typically a retry after a truncated UDP answer). */
export async function forwardQueryTcp(query: Buffer, upstreams: readonly Upstream[], timeoutMs = UPSTREAM_TIMEOUT_MS): Promise<Buffer | undefined> {
  const id = query.readUInt16BE(0);
  for (const upstream of upstreams) {
    const answer = await askOneTcp(query, id, upstream, timeoutMs);
    if (answer !== undefined) return answer;
  }
  return undefined;
}

function askOneTcp(query: Buffer, id: number, upstream: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const conn = net.connect({ host: upstream.address, port: upstream.port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (value: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    conn.on('error', () => finish(undefined));
    conn.on('close', () => finish(undefined));
    conn.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length, 0);
      conn.write(Buffer.concat([len, query]));
    });
    conn.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = buf.subarray(2, 2 + len);
      finish(msg.length >= 12 && msg.readUInt16BE(0) === id ? Buffer.from(msg) : undefined);
    });
  });
}
