// One Shoal Raft member as a process, for the benchmark: a RaftNode on a LevelDB log (fsync
// on) with the TCP transport, applying puts to an in-memory key-value map, and serving the
// bench client protocol. Configuration comes as one JSON argument (see MemberConfig).
// Prints "ready" on stdout once listening; exits cleanly on SIGTERM.
import net from 'node:net';
import { RaftNode } from '../../raft/node.js';
import { TcpTransport } from '../../raft/transport/tcp.js';
import { CODE_ERROR, CODE_NOT_LEADER, CODE_OK, BatchedWriter, OP_PUT, OP_STATUS, encodeResponse, readFrames, type MemberStatus } from './client-protocol.js';

export interface MemberConfig {
  readonly id: number;
  readonly dir: string;
  readonly raftPort: number;
  readonly clientPort: number;
  readonly peers: readonly { readonly id: number; readonly port: number }[];
  readonly tickMs: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '') as MemberConfig;
  const kv = new Map<string, Uint8Array>();
  const transport = await TcpTransport.listen({
    id: cfg.id,
    listen: { host: '127.0.0.1', port: cfg.raftPort },
    peers: new Map(cfg.peers.filter((p) => p.id !== cfg.id).map((p) => [p.id, { host: '127.0.0.1', port: p.port }])),
  });
  const node = await RaftNode.open({
    id: cfg.id,
    peers: cfg.peers.map((p) => p.id),
    dir: cfg.dir,
    // The throwaway key comes by environment, not argv, so it does not show in `ps`.
    dek: Buffer.from(process.env['SHOAL_BENCH_DEK'] ?? '', 'hex'),
    transport,
    tickMs: cfg.tickMs,
    electionTick: 10,
    heartbeatTick: 1,
    apply: (e) => {
      kv.set(Buffer.from(e.data.buffer, e.data.byteOffset, 8).toString('latin1'), e.data.subarray(8));
    },
    onFatal: (err) => {
      process.stderr.write(`member ${cfg.id}: fatal: ${err.message}\n`);
      process.exit(1);
    },
  });

  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    const out = new BatchedWriter(s);
    readFrames(s, (id, op, payload) => {
      if (op === OP_STATUS) {
        const st = node.status();
        const body: MemberStatus = { id: cfg.id, role: st.role, leader: st.leader as number | null, term: st.term, applied: node.applied, metrics: node.metrics() };
        out.write(encodeResponse(id, CODE_OK, Buffer.from(JSON.stringify(body))));
      } else if (op === OP_PUT) {
        // The payload is a view into the socket's chunk; the log keeps its own sealed copy,
        // and the in-memory entry keeps this view, which is never reused by Node.
        node.propose(payload).then(
          () => out.write(encodeResponse(id, CODE_OK, EMPTY)),
          (err: Error & { code?: string }) =>
            out.write(encodeResponse(id, err.code === 'ERR_RAFT_NOT_LEADER' ? CODE_NOT_LEADER : CODE_ERROR, Buffer.from(err.message))),
        );
      } else {
        out.write(encodeResponse(id, CODE_ERROR, Buffer.from(`unknown op ${op}`)));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.clientPort, '127.0.0.1', () => resolve());
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const s of sockets) s.destroy();
    server.close();
    void node.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write('ready\n');
}

const EMPTY = new Uint8Array(0);

main().catch((err: unknown) => {
  process.stderr.write(`member: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
