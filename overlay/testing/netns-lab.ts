// Test and bench fixture: "hosts" and "containers" as network namespaces this process creates,
// an underlay veth between hosts, and small programs run inside namespaces (TCP servers that
// answer with their name, TCP clients, DNS queries). Everything is removed by cleanup(), which
// is safe to call after a failure half-way.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import readline from 'node:readline';
import { GONE, run, runTolerating } from '../exec.js';

const READY_TIMEOUT_MS = 10_000;

export class NetnsLab {
  private readonly names: string[] = [];
  private readonly children = new Set<ChildProcess>();

  /** `prefix` must be unique to the test file (include the pid). */
  constructor(readonly prefix: string) {}

  async addNetns(name: string): Promise<string> {
    const full = `${this.prefix}-${name}`;
    await run(['ip', 'netns', 'add', full]);
    this.names.push(full);
    const path = `/run/netns/${full}`;
    await run(['ip', 'link', 'set', 'lo', 'up'], { netns: path });
    return path;
  }

  /** A veth between two namespaces with addresses `a`/`b` of `prefixLength`: the hosts' underlay. */
  async link(aPath: string, aIf: string, aAddr: string, bPath: string, bIf: string, bAddr: string, prefixLength: number): Promise<void> {
    const bName = bPath.replace('/run/netns/', '');
    await run(['ip', 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', bName], { netns: aPath });
    await run(['ip', '-batch', '-'], { netns: aPath, input: `addr add ${aAddr}/${prefixLength} dev ${aIf}\nlink set ${aIf} up\n` });
    await run(['ip', '-batch', '-'], { netns: bPath, input: `addr add ${bAddr}/${prefixLength} dev ${bIf}\nlink set ${bIf} up\n` });
  }

  /** Runs `node -e source args…` inside `netnsPath`; resolves once it prints a line `ready`. */
  async startProgram(netnsPath: string, source: string, args: readonly string[]): Promise<ChildProcess> {
    const child = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '-e', source, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`program in ${netnsPath} not ready in ${READY_TIMEOUT_MS} ms: ${stderr}`)), READY_TIMEOUT_MS);
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`program in ${netnsPath} exited ${code}: ${stderr}`));
      });
    });
    return child;
  }

  /** A TCP server on 0.0.0.0:port answering every connection with `name\n`. */
  startNameServer(netnsPath: string, port: number, name: string): Promise<ChildProcess> {
    return this.startProgram(netnsPath, NAME_SERVER, [String(port), name]);
  }

  /**
   * Connects `count` times in sequence from inside `netnsPath` and returns what each connection
   * read, or its error code (ECONNREFUSED, TIMEOUT, …).
   */
  async tcpRequests(netnsPath: string, ip: string, port: number, count = 1, timeoutMs = 3_000): Promise<string[]> {
    const out = await run(['nsenter', `--net=${netnsPath}`, process.execPath, '-e', TCP_CLIENT, ip, String(port), String(count), String(timeoutMs)], {
      timeoutMs: count * timeoutMs + 10_000,
    });
    return out.split('\n').filter((l) => l.length > 0);
  }

  /**
   * Sends DNS queries in turn from inside `netnsPath` to server:port (UDP, or over one TCP
   * connection with length prefixes); each response, or undefined on timeout.
   */
  async dnsExchange(netnsPath: string, server: string, port: number, queries: readonly Buffer[], timeoutMs = 3_000, transport: 'udp' | 'tcp' = 'udp'): Promise<Array<Buffer | undefined>> {
    const out = await run(['nsenter', `--net=${netnsPath}`, process.execPath, '-e', transport === 'tcp' ? DNS_TCP_CLIENT : DNS_CLIENT, server, String(port), String(timeoutMs), ...queries.map((q) => q.toString('base64'))], {
      timeoutMs: queries.length * timeoutMs + 10_000,
    });
    return out
      .split('\n')
      .filter((l) => l.length > 0)
      .map((line) => (line === 'TIMEOUT' ? undefined : Buffer.from(line, 'base64')));
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const name of [...this.names].reverse()) {
      const pids = (await runTolerating(['ip', 'netns', 'pids', name], GONE)) ?? '';
      for (const pid of pids.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (existsSync(`/run/netns/${name}`)) await runTolerating(['ip', 'netns', 'del', name], GONE);
    }
    this.names.length = 0;
  }
}

const NAME_SERVER = String.raw`
const [port, name] = process.argv.slice(1);
const srv = require('node:net').createServer((s) => { s.on('error', () => {}); s.end(name + '\n'); });
srv.listen(Number(port), '0.0.0.0', () => console.log('ready'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

const TCP_CLIENT = String.raw`
const net = require('node:net');
const [ip, port, count, timeoutMs] = process.argv.slice(1);
function once() {
  return new Promise((resolve) => {
    let data = '';
    const s = net.connect(Number(port), ip);
    const t = setTimeout(() => { s.destroy(); resolve('TIMEOUT'); }, Number(timeoutMs));
    s.on('data', (d) => (data += d));
    s.on('end', () => { clearTimeout(t); resolve(data.trim() || 'EMPTY'); });
    s.on('error', (e) => { clearTimeout(t); resolve(e.code || 'ERROR'); });
  });
}
(async () => { for (let i = 0; i < Number(count); i++) console.log(await once()); })();
`;

const DNS_CLIENT = String.raw`
const [server, port, timeoutMs, ...queries] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
function ask(q) {
  return new Promise((resolve) => {
    const t = setTimeout(() => { s.removeAllListeners('message'); resolve('TIMEOUT'); }, Number(timeoutMs));
    s.once('message', (m) => { clearTimeout(t); resolve(m.toString('base64')); });
    s.send(Buffer.from(q, 'base64'), Number(port), server);
  });
}
(async () => { for (const q of queries) console.log(await ask(q)); s.close(); })();
`;

const DNS_TCP_CLIENT = String.raw`
const [server, port, timeoutMs, ...queries] = process.argv.slice(1);
const s = require('node:net').connect(Number(port), server);
let buf = Buffer.alloc(0);
let waiting = null;
s.on('data', (d) => { buf = Buffer.concat([buf, d]); check(); });
s.on('error', () => { if (waiting) waiting('TIMEOUT'); });
function check() {
  if (!waiting || buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
  const len = buf.readUInt16BE(0);
  const m = buf.subarray(2, 2 + len);
  buf = buf.subarray(2 + len);
  waiting(m.toString('base64'));
}
function ask(q) {
  return new Promise((resolve) => {
    const t = setTimeout(() => { waiting = null; resolve('TIMEOUT'); }, Number(timeoutMs));
    waiting = (r) => { clearTimeout(t); waiting = null; resolve(r); };
    const m = Buffer.from(q, 'base64');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(m.length, 0);
    s.write(Buffer.concat([len, m]));
    check();
  });
}
(async () => { for (const q of queries) console.log(await ask(q)); s.end(); })();
`;
