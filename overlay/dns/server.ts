// The daemon side of container DNS: one resolver stub per overlay sandbox (see stub-source.ts),
// all answered here from the data plane's records, other names forwarded to the host's resolvers.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import readline from 'node:readline';
import pino, { type Logger } from 'pino';
import { OverlayError } from '../errors.js';
import { GONE, runTolerating } from '../exec.js';
import { buildResponse, DnsParseError, parseQuery, RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_NOERROR, RCODE_SERVFAIL, type DnsQuery } from './message.js';
import { lookupName, rotate, type NetworkRecords } from './records.js';
import { STUB_SOURCE } from './stub-source.js';
import { forwardQuery, forwardQueryTcp, type Upstream } from './upstream.js';

export const DNS_PORT = 53;
export const STUB_READY_TIMEOUT_MS = 10_000;
export const MAX_FORWARDS_IN_FLIGHT = 256;
export const MAX_STUB_RESTARTS = 5;
const STUB_RESTART_DELAY_MS = 500;
const BIND_ATTEMPTS = 30;
const BIND_RETRY_MS = 200;
const STALE_HOLDER_ATTEMPT = 5;

/** Gives, for a query that arrived on `networkId` from `sourceIp`, the networks visible to the asker (arrival network first). */
export type ViewResolver = (networkId: string, sourceIp: string) => readonly NetworkRecords[];

export interface ContainerDnsOptions {
  /** Where names not ours are forwarded, unless `upstreamsFor` names the asker's own. */
  readonly upstreams: readonly Upstream[];
  /** The asker's own resolvers (a task started with `--dns`), by arrival network and source address. */
  readonly upstreamsFor?: (networkId: string, sourceIp: string) => readonly Upstream[] | undefined;
  readonly view: ViewResolver;
  readonly logger?: Logger;
  /** Port the stubs bind (53; tests may use another). */
  readonly port?: number;
  readonly upstreamTimeoutMs?: number;
}

interface Stub {
  readonly networkId: string;
  readonly netnsPath: string;
  readonly address: string;
  /** The sandbox the stub was started in (device:inode of its nsfs file); null when unreadable. */
  readonly namespaceId: string | null;
  child: ChildProcessWithoutNullStreams;
  restarts: number;
  stopping: boolean;
}

export class ContainerDns {
  private readonly stubs = new Map<string, Stub>();
  private readonly log: Logger;
  private forwardsInFlight = 0;
  private answerCount = 0;

  constructor(private readonly options: ContainerDnsOptions) {
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'overlay-dns' });
  }

  get port(): number {
    return this.options.port ?? DNS_PORT;
  }

  /** Starts the resolver of one network inside its sandbox, listening on `address`:53; resolves once it is bound. */
  async start(networkId: string, netnsPath: string, address: string): Promise<void> {
    if (this.stubs.has(networkId)) return;
    const stub: Stub = { networkId, netnsPath, address, namespaceId: namespaceIdOf(netnsPath), child: undefined as unknown as ChildProcessWithoutNullStreams, restarts: 0, stopping: false };
    this.stubs.set(networkId, stub);
    try {
      // The resolver of a daemon that just died may still hold the port for a moment (its stub
      // exits when its stdin closes): retry a busy address, bounded, before giving up.
      for (let attempt = 1; ; attempt++) {
        try {
          await this.spawnStub(stub);
          break;
        } catch (e) {
          if (!(e instanceof OverlayError) || !e.message.includes('EADDRINUSE') || attempt >= BIND_ATTEMPTS) throw e;
          // Still held after a while: the sandbox is ours, so whatever holds its resolver port is a
          // stale resolver (of a daemon given up for dead, or one that outlived its pipes): end it,
          // at every attempt from then on — a daemon object given up for dead but still running in
          // this process (as tests leave one) restarts its resolver, a bounded number of times.
          if (attempt >= STALE_HOLDER_ATTEMPT) await this.killOtherProcesses(stub);
          await new Promise((r) => setTimeout(r, BIND_RETRY_MS));
        }
      }
    } catch (e) {
      this.stubs.delete(networkId);
      throw e;
    }
  }

  /** SIGKILLs every process in the stub's sandbox but this resolver's own (none of ours runs there otherwise). */
  private async killOtherProcesses(stub: Stub): Promise<void> {
    const listed = (await runTolerating(['ip', 'netns', 'pids', basename(stub.netnsPath)], GONE)) ?? '';
    for (const pid of listed.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number)) {
      if (pid === stub.child?.pid) continue;
      this.log.warn({ networkId: stub.networkId, pid }, 'ending a stale process that holds the DNS resolver port');
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  /** Stops the resolver of one network (before its sandbox is deleted: a live process would keep the netns alive). */
  async stop(networkId: string): Promise<void> {
    const stub = this.stubs.get(networkId);
    if (stub === undefined) return;
    this.stubs.delete(networkId);
    stub.stopping = true;
    await stopChild(stub.child);
  }

  async close(): Promise<void> {
    await Promise.all([...this.stubs.keys()].map((id) => this.stop(id)));
  }

  /**
   * Answers one query as the stub of `networkId` received it from `sourceIp` over `transport`
   * (exposed for tests of the rules). A UDP answer is cut to 512 bytes with TC set, so the asker
   * retries over TCP and gets all of it; a forwarded TCP query goes to the upstream over TCP.
   */
  async answer(networkId: string, sourceIp: string, queryBytes: Buffer, transport: 'udp' | 'tcp' = 'udp'): Promise<Buffer | undefined> {
    let query: DnsQuery;
    try {
      query = parseQuery(queryBytes);
    } catch (e) {
      if (e instanceof DnsParseError) return undefined; // not a query we can answer; stub resolvers retry
      throw e;
    }
    if (query.opcode !== 0) return buildResponse(queryBytes, query, { rcode: RCODE_NOTIMP });
    const result = lookupName(query.question.name, query.question.type, this.options.view(networkId, sourceIp));
    switch (result.kind) {
      case 'answer':
        return buildResponse(queryBytes, query, { rcode: RCODE_NOERROR, addresses: rotate(result.addresses, this.answerCount++), authoritative: true, transport });
      case 'nodata':
        return buildResponse(queryBytes, query, { rcode: RCODE_NOERROR, authoritative: true });
      case 'nxdomain':
        return buildResponse(queryBytes, query, { rcode: RCODE_NXDOMAIN, authoritative: true });
      case 'forward': {
        const upstreams = this.options.upstreamsFor?.(networkId, sourceIp) ?? this.options.upstreams;
        if (this.forwardsInFlight >= MAX_FORWARDS_IN_FLIGHT || upstreams.length === 0) {
          return buildResponse(queryBytes, query, { rcode: RCODE_SERVFAIL });
        }
        this.forwardsInFlight++;
        try {
          const forward = transport === 'tcp' ? forwardQueryTcp : forwardQuery;
          const reply = await forward(queryBytes, upstreams, this.options.upstreamTimeoutMs);
          return reply ?? buildResponse(queryBytes, query, { rcode: RCODE_SERVFAIL });
        } finally {
          this.forwardsInFlight--;
        }
      }
    }
  }

  private spawnStub(stub: Stub): Promise<void> {
    const argv = ['--net=' + stub.netnsPath, process.execPath, '-e', STUB_SOURCE, stub.address, String(this.port)];
    const child = spawn('nsenter', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    stub.child = child;
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    child.stdin.on('error', () => {
      /* the stub died; its exit handler restarts it */
    });
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        child.kill('SIGKILL');
        reject(new OverlayError('ERR_OVERLAY_DNS', `DNS resolver for network ${stub.networkId} did not bind ${stub.address}:${this.port} within ${STUB_READY_TIMEOUT_MS} ms`));
      }, STUB_READY_TIMEOUT_MS);
      const lines = readline.createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let msg: { ready?: boolean; error?: string; id?: number; src?: string; q?: string; tcp?: boolean };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.ready === true && !ready) {
          ready = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        if (msg.error !== undefined && !ready) {
          ready = true;
          clearTimeout(timer);
          reject(new OverlayError('ERR_OVERLAY_DNS', `DNS resolver for network ${stub.networkId} could not bind ${stub.address}:${this.port}: ${msg.error}`));
          return;
        }
        if (typeof msg.id === 'number' && typeof msg.src === 'string' && typeof msg.q === 'string') {
          const id = msg.id;
          this.answer(stub.networkId, msg.src, Buffer.from(msg.q, 'base64'), msg.tcp === true ? 'tcp' : 'udp').then(
            (reply) => {
              if (reply !== undefined && child.stdin.writable) child.stdin.write(JSON.stringify({ id, r: reply.toString('base64') }) + '\n');
            },
            (e: unknown) => this.log.warn({ err: e, networkId: stub.networkId }, 'answering a DNS query failed'),
          );
        }
      });
      child.on('error', (e) => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        reject(new OverlayError('ERR_OVERLAY_DNS', `could not start the DNS resolver for network ${stub.networkId}: ${e.message}`));
      });
      child.on('exit', (code, signal) => {
        if (!ready) {
          ready = true;
          clearTimeout(timer);
          reject(new OverlayError('ERR_OVERLAY_DNS', `DNS resolver for network ${stub.networkId} exited (${code ?? signal}) before binding: ${stderr.trim()}`));
          return;
        }
        if (stub.stopping || this.stubs.get(stub.networkId) !== stub) return;
        if (namespaceIdOf(stub.netnsPath) !== stub.namespaceId) {
          // The sandbox was deleted or rebuilt (e.g. by a newer daemon after this one was given up
          // for dead): its resolver is no longer ours to restart.
          this.log.warn({ networkId: stub.networkId, code, signal }, 'DNS resolver exited and its sandbox is gone or was rebuilt; not restarting');
          return;
        }
        this.log.warn({ networkId: stub.networkId, code, signal, stderr: stderr.trim() }, 'DNS resolver exited; restarting');
        if (stub.restarts >= MAX_STUB_RESTARTS) {
          this.log.error({ networkId: stub.networkId }, `DNS resolver restarted ${MAX_STUB_RESTARTS} times; giving up`);
          return;
        }
        stub.restarts++;
        setTimeout(() => {
          if (stub.stopping || this.stubs.get(stub.networkId) !== stub) return;
          if (namespaceIdOf(stub.netnsPath) !== stub.namespaceId) {
            this.log.warn({ networkId: stub.networkId }, 'DNS resolver not restarted: its sandbox is gone or was rebuilt');
            return;
          }
          this.spawnStub(stub).catch((e: unknown) => this.log.error({ err: e, networkId: stub.networkId }, 'DNS resolver restart failed'));
        }, STUB_RESTART_DELAY_MS).unref();
      });
    });
  }
}

/** Identity of the namespace a netns path names now (device:inode), null when it is gone. */
function namespaceIdOf(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

const STOP_TIMEOUT_MS = 3_000;

async function stopChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.stdin.end(); // the stub exits when its stdin closes
  });
}
