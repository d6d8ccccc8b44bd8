// The agent's durable state in LevelDB (<dataRoot>/worker/tasks.db): the assignment set as last
// received (tasks, secrets, configs, JSON in Docker's shape), each task's last observed status,
// and the managers it knows. A restarted agent reads it back and resumes its tasks before any
// manager answers. Writes are queued in order; `flush()` waits for them.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { Level } from 'level';

import type { Config, Secret, Task, TaskStatus } from '../../manager/store/types.js';
import { AgentError } from './errors.js';

export const AGENT_DB_DIR = path.join('worker', 'tasks.db');
const AGENT_DB_WRITE_BUFFER_BYTES = 512 * 1024;
const AGENT_DB_CACHE_BYTES = 512 * 1024;

export interface AgentState {
  readonly tasks: ReadonlyMap<string, Task>;
  readonly statuses: ReadonlyMap<string, TaskStatus>;
  readonly secrets: ReadonlyMap<string, Secret>;
  readonly configs: ReadonlyMap<string, Config>;
  readonly managers: readonly string[];
}

/**
 * A put carries the object, serialized when its batch is written (a put overwritten before then
 * never is), or the object's JSON as it came from the manager (`json`: written as is).
 */
type Op =
  | { readonly type: 'put'; readonly key: string; readonly value: unknown; readonly json?: Uint8Array }
  | { readonly type: 'del'; readonly key: string };

const PREFIX = { task: 'task/', status: 'status/', secret: 'secret/', config: 'config/' } as const;
/**
 * A write waits this long for others to join its LevelDB batch. A task's ACCEPTED → RUNNING steps
 * come milliseconds apart, and each LevelDB batch has a fixed cost (with hundreds of simulated
 * nodes per process it was a third of a worker's CPU): they are written together instead.
 */
const COALESCE_MS = 20;
const MANAGERS_KEY = 'meta/managers';

/** A put of bytes already encoded as UTF-8 JSON (read back as strings). */
const BYTES = { valueEncoding: 'view' } as const;

export class AgentDb {
  private chain: Promise<void> = Promise.resolve();
  /** Ops written by write() and not yet handed to LevelDB, the latest per key (the next drain takes them all). */
  private queued = new Map<string, Op>();
  /**
   * Task statuses written by writeStatus() and not yet handed to LevelDB, the latest per task ID:
   * one Map entry per task, no key string or op object per status change (a task passes five on
   * its way to RUNNING). Written after `queued` in the same batch.
   */
  private queuedStatuses = new Map<string, TaskStatus>();
  /** A drain is scheduled and has not taken the queues yet. */
  private armed = false;
  private failure: Error | null = null;
  /** LevelDB batches written and ops in them (for status and the load tool). */
  readonly counters = { batches: 0, ops: 0 };

  private constructor(private readonly db: Level<string, string | Uint8Array>) {}

  static async open(dataRoot: string): Promise<AgentDb> {
    const dir = path.join(dataRoot, AGENT_DB_DIR);
    await mkdir(path.dirname(dir), { recursive: true });
    // Small native buffers: the agent's state is a few hundred KiB, read once at start; LevelDB's
    // defaults (4 MiB memtable, 8 MiB block cache) would let a busy node's status writes hold MiBs.
    const db = new Level<string, string | Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8', writeBufferSize: AGENT_DB_WRITE_BUFFER_BYTES, cacheSize: AGENT_DB_CACHE_BYTES });
    try {
      await db.open();
    } catch (err) {
      throw new AgentError('ERR_AGENT_DB', `agent: cannot open ${dir} (is another agent using this data root?): ${(err as Error).message}`, { cause: err });
    }
    return new AgentDb(db);
  }

  async load(): Promise<AgentState> {
    const tasks = new Map<string, Task>();
    const statuses = new Map<string, TaskStatus>();
    const secrets = new Map<string, Secret>();
    const configs = new Map<string, Config>();
    let managers: string[] = [];
    for await (const [key, value] of this.db.iterator()) {
      const o: unknown = JSON.parse(typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'));
      if (key.startsWith(PREFIX.task)) tasks.set(key.slice(PREFIX.task.length), o as Task);
      else if (key.startsWith(PREFIX.status)) statuses.set(key.slice(PREFIX.status.length), o as TaskStatus);
      else if (key.startsWith(PREFIX.secret)) secrets.set(key.slice(PREFIX.secret.length), o as Secret);
      else if (key.startsWith(PREFIX.config)) configs.set(key.slice(PREFIX.config.length), o as Config);
      else if (key === MANAGERS_KEY && Array.isArray(o)) managers = o.filter((m): m is string => typeof m === 'string');
    }
    return { tasks, statuses, secrets, configs, managers };
  }

  /** `json`: the task's JSON as received (the bytes `t` was parsed from), written without serializing `t` again. */
  putTask(t: Task, json?: Uint8Array): Op {
    return json === undefined ? { type: 'put', key: PREFIX.task + t.ID, value: t } : { type: 'put', key: PREFIX.task + t.ID, value: t, json };
  }

  delTask(id: string): Op[] {
    return [
      { type: 'del', key: PREFIX.task + id },
      { type: 'del', key: PREFIX.status + id },
    ];
  }

  putSecret(s: Secret): Op {
    return { type: 'put', key: PREFIX.secret + s.ID, value: s };
  }

  delSecret(id: string): Op {
    return { type: 'del', key: PREFIX.secret + id };
  }

  putConfig(c: Config): Op {
    return { type: 'put', key: PREFIX.config + c.ID, value: c };
  }

  delConfig(id: string): Op {
    return { type: 'del', key: PREFIX.config + id };
  }

  putStatus(taskId: string, s: TaskStatus): Op {
    return { type: 'put', key: PREFIX.status + taskId, value: s };
  }

  putManagers(addrs: readonly string[]): Op {
    return { type: 'put', key: MANAGERS_KEY, value: [...addrs] };
  }

  /**
   * Queues one atomic batch after the ones before it. Batches queued while a write is in flight
   * are merged into the next LevelDB batch (still all-or-nothing), keeping only the last op per
   * key — what the keys hold afterwards is the same as writing them in order: a burst of status
   * changes costs one write of each task's latest status, not one per change; a write also waits
   * COALESCE_MS for others to join it. Objects put are
   * serialized when their batch is written, so they must not be changed after `write`.
   */
  write(ops: readonly Op[]): void {
    for (const op of ops) this.writeOne(op);
  }

  /** `write([op])` without the array. */
  writeOne(op: Op): void {
    // Every key once per batch, its last op (a batch's keys are distinct: their order is moot).
    this.queued.set(op.key, op);
    // A status op by key replaces or cancels one queued by task ID (written after these).
    if (op.key.startsWith(PREFIX.status)) this.queuedStatuses.delete(op.key.slice(PREFIX.status.length));
    this.arm();
  }

  /** `writeOne(putStatus(taskId, s))`, cheaper: a task's observed status, the latest per task. */
  writeStatus(taskId: string, s: TaskStatus): void {
    this.queuedStatuses.set(taskId, s);
    this.arm();
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    this.chain = this.chain
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, COALESCE_MS)))
      // Work queued for the event loop's check phase (executor steps awaiting setImmediate) lands
      // before a busy loop's timer phase drains: one more turn lets it join this batch.
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.drain());
  }

  private async drain(): Promise<void> {
    this.armed = false;
    const queued = this.queued;
    const statuses = this.queuedStatuses;
    if (queued.size === 0 && statuses.size === 0) return;
    this.queued = new Map();
    this.queuedStatuses = new Map();
    this.counters.batches++;
    this.counters.ops += queued.size + statuses.size;
    // A chained batch: each op goes to LevelDB's WriteBatch as it is added (one native call with
    // the key and value), instead of an array of op objects the native side reads property by
    // property (measured: ~30 µs less per batch of 20 ops on the main thread).
    try {
      const batch = this.db.batch();
      for (const op of queued.values()) {
        if (op.type === 'del') batch.del(op.key);
        else if (op.json !== undefined) batch.put(op.key, op.json, BYTES);
        else batch.put(op.key, JSON.stringify(op.value));
      }
      for (const [taskId, s] of statuses) batch.put(PREFIX.status + taskId, JSON.stringify(s));
      await batch.write();
    } catch (err) {
      // Kept for flush(); the chain goes on (later writes are still attempted).
      this.failure ??= err as Error;
    }
  }

  /** Resolves when every queued write is on disk; rejects with the first write failure. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== null) throw new AgentError('ERR_AGENT_DB', `agent: a local database write failed: ${this.failure.message}`, { cause: this.failure });
  }

  async close(): Promise<void> {
    await this.chain;
    await this.db.close();
  }
}
