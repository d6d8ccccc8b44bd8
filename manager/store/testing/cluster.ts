// Managers' stores in one process for tests and benchmarks: real RaftNodes, DurableLogs
// (LevelDB, fsync on) in temp dirs, the TCP transport on 127.0.0.1 with port 0.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { TcpTransport } from '../../../raft/transport/tcp.js';
import { ReplicatedStore } from '../replicated.js';

export interface StoreClusterOptions {
  readonly size: number;
  readonly snapshotIntervalEntries?: number;
  readonly snapshotKeepEntries?: number;
  readonly watchRingEvents?: number;
  /** Default 10 ms (elections in ~100–200 ms). */
  readonly tickMs?: number;
  readonly logger?: Logger;
}

export interface Member {
  readonly id: number;
  readonly dir: string;
  /** Null while stopped. */
  rs: ReplicatedStore | null;
  transport: TcpTransport | null;
}

/** Polls `probe` every 5 ms until it returns a value, at most `limitMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false, limitMs = 10_000): Promise<T> {
  const start = performance.now();
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() - start > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export class StoreCluster {
  readonly dek = randomBytes(32);
  readonly members = new Map<number, Member>();
  private readonly logger: Logger;

  private constructor(readonly baseDir: string, private readonly opts: StoreClusterOptions) {
    this.logger = opts.logger ?? pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
  }

  static async start(opts: StoreClusterOptions): Promise<StoreCluster> {
    const baseDir = await mkdtemp(path.join(os.tmpdir(), 'shoal-store-'));
    const c = new StoreCluster(baseDir, opts);
    try {
      for (let id = 1; id <= opts.size; id++) c.members.set(id, { id, dir: path.join(baseDir, `m${id}`), rs: null, transport: null });
      await Promise.all([...c.members.keys()].map((id) => c.startMember(id)));
      c.connect();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get ids(): number[] {
    return [...this.members.keys()];
  }

  member(id: number): Member {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  /** The running store of member `id`. */
  rs(id: number): ReplicatedStore {
    const rs = this.member(id).rs;
    if (rs === null) throw new Error(`member ${id} is stopped`);
    return rs;
  }

  running(): ReplicatedStore[] {
    return [...this.members.values()].flatMap((m) => (m.rs === null ? [] : [m.rs]));
  }

  /** The leader all running members agree on. */
  async waitLeader(limitMs = 10_000): Promise<ReplicatedStore> {
    return waitFor(
      'a leader every running member agrees on',
      () => {
        const rs = this.running();
        const leaders = rs.filter((r) => r.node.status().role === 'leader');
        if (leaders.length !== 1) return undefined;
        return rs.every((r) => r.node.status().leader === leaders[0]!.node.id) ? leaders[0] : undefined;
      },
      limitMs,
    );
  }

  /** Waits until every running member applied at least `version`. */
  async waitApplied(version: number, limitMs = 10_000): Promise<void> {
    await waitFor(`every running member to apply ${version}`, () => this.running().every((r) => r.store.version >= version), limitMs);
  }

  async startMember(id: number): Promise<ReplicatedStore> {
    const m = this.member(id);
    if (m.rs !== null) throw new Error(`member ${id} is already running`);
    const transport = await TcpTransport.listen({ id, listen: { host: '127.0.0.1', port: 0 }, logger: this.logger, minBackoffMs: 5, maxBackoffMs: 50 });
    try {
      m.rs = await ReplicatedStore.open({
        id,
        peers: this.ids,
        dir: m.dir,
        dek: this.dek,
        transport,
        tickMs: this.opts.tickMs ?? 10,
        electionTick: 10,
        heartbeatTick: 1,
        logger: this.logger,
        ...(this.opts.snapshotIntervalEntries !== undefined ? { snapshotIntervalEntries: this.opts.snapshotIntervalEntries } : {}),
        ...(this.opts.snapshotKeepEntries !== undefined ? { snapshotKeepEntries: this.opts.snapshotKeepEntries } : {}),
        ...(this.opts.watchRingEvents !== undefined ? { watchRingEvents: this.opts.watchRingEvents } : {}),
      });
    } catch (err) {
      await transport.close();
      throw err;
    }
    m.transport = transport;
    return m.rs;
  }

  /** Tells every running member where every other running member listens. */
  connect(): void {
    for (const m of this.members.values()) {
      if (m.transport === null) continue;
      for (const o of this.members.values()) if (o.id !== m.id && o.transport !== null) m.transport.setPeer(o.id, o.transport.address);
    }
  }

  async stopMember(id: number): Promise<void> {
    const m = this.member(id);
    if (m.rs === null) return;
    const rs = m.rs;
    m.rs = null;
    m.transport = null;
    await rs.close();
  }

  async restartMember(id: number): Promise<ReplicatedStore> {
    await this.stopMember(id);
    const rs = await this.startMember(id);
    this.connect();
    return rs;
  }

  /** Stops every member and removes the data directories. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.members.keys()].map((id) => this.stopMember(id)));
    await rm(this.baseDir, { recursive: true, force: true });
  }
}
