// Convergence progress for `service create|update|scale|rollback` (unless `-d`) and `stack deploy
// --detach=false`, as docker prints it (docker-api.md §3): every 200 ms the service, its tasks and
// the nodes are read; each task slot (each node for a global service) shows its task's state as a
// bar; once every slot runs, the wait goes on for the service's UpdateConfig.Monitor (default 5 s)
// to verify the tasks stay up, then `verify: Service <ref> converged`.
//
// On a terminal the block of lines is redrawn in place; otherwise each line is printed when its
// text changes (plain lines, to stderr, so `ID=$(shoal service create …)` keeps working). Ctrl-C
// stops the waiting only: the service goes on converging in the background.
import type { ApiClient } from '../client/api-client.js';
import { CliError } from '../errors.js';

export interface ProgressTask {
  readonly ID: string;
  readonly Slot?: number;
  readonly NodeID?: string;
  readonly ServiceID?: string;
  readonly DesiredState?: string;
  readonly CreatedAt?: string;
  readonly Spec?: unknown;
  readonly Status?: { readonly State?: string; readonly Err?: string; readonly Timestamp?: string };
}

export interface ProgressService {
  readonly ID: string;
  readonly Spec: {
    readonly Name?: string;
    readonly Mode?: { readonly Replicated?: { readonly Replicas?: number }; readonly Global?: unknown; readonly ReplicatedJob?: unknown; readonly GlobalJob?: unknown };
    readonly TaskTemplate?: unknown;
    readonly UpdateConfig?: { readonly Monitor?: number };
    readonly RollbackConfig?: { readonly Monitor?: number };
  };
  readonly UpdateStatus?: { readonly State?: string; readonly Message?: string; readonly StartedAt?: string };
}

export interface ProgressNode {
  readonly ID: string;
  readonly Status?: { readonly State?: string };
  readonly Spec?: { readonly Availability?: string };
}

/** Task states in their order, as docker numbers them for the bar (running = 9 = full). */
const STATE_RANK: Readonly<Record<string, number>> = {
  new: 1,
  allocated: 2,
  pending: 3,
  assigned: 4,
  accepted: 5,
  preparing: 6,
  ready: 7,
  starting: 8,
  running: 9,
  complete: 10,
  shutdown: 11,
  failed: 12,
  rejected: 13,
  remove: 14,
  orphaned: 15,
};
const MAX_PROGRESS = STATE_RANK['running']!;
const LONGEST_STATE = Math.max(...Object.keys(STATE_RANK).map((s) => s.length));
const BAR_WIDTH = 50;
export const DEFAULT_MONITOR_MS = 5_000;
export const POLL_MS = 200;
const ERROR_MAX_CHARS = 100;
/** The loop's own bound (about two days at 200 ms): docker waits until converged or Ctrl-C. */
const MAX_ROUNDS = 1_000_000;

/** docker's progress bar with hidden counts: `[=====>      ]`. */
export function renderBar(current: number, total: number): string {
  const filled = current >= total ? BAR_WIDTH : Math.floor(Math.floor((current / total) * 100) / 2);
  return `[${'='.repeat(filled)}>${' '.repeat(BAR_WIDTH - filled)}]`;
}

const isTerminal = (state: string | undefined): boolean => (STATE_RANK[state ?? ''] ?? 0) > MAX_PROGRESS;

/** JSON with sorted keys (absent = undefined), to tell whether a task was made from the current template. */
function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
    .join(',')}}`;
}

/** swarmkit's !IsTaskDirty: the task's spec is the service's current task template. */
export function upToDate(service: ProgressService, tasks: readonly ProgressTask[]): ProgressTask[] {
  const key = stableJson(service.Spec.TaskTemplate ?? {});
  return tasks.filter((t) => t.Spec === undefined || stableJson(t.Spec) === key);
}

export interface ProgressLine {
  /** `overall progress`, `1/3`, a node ID, `verify`. */
  readonly id: string;
  readonly text: string;
}

export interface ProgressSnapshot {
  readonly lines: readonly ProgressLine[];
  readonly running: number;
  readonly desired: number;
  readonly converged: boolean;
}

/** The task shown for a slot: the lowest desired state first, then the newest. */
function pick(tasks: readonly ProgressTask[]): ProgressTask | undefined {
  return [...tasks].sort((a, b) => {
    const d = (STATE_RANK[a.DesiredState ?? ''] ?? 99) - (STATE_RANK[b.DesiredState ?? ''] ?? 99);
    if (d !== 0) return d;
    return (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? '');
  })[0];
}

function taskText(t: ProgressTask | undefined): string {
  if (t === undefined) return '';
  const err = t.Status?.Err ?? '';
  if (err !== '') return err.length > ERROR_MAX_CHARS ? `${err.slice(0, ERROR_MAX_CHARS - 1)}…` : err;
  const state = t.Status?.State ?? '';
  if (isTerminal(t.DesiredState) || isTerminal(state) || STATE_RANK[state] === undefined) return state;
  return `${state.padEnd(LONGEST_STATE)} ${renderBar(STATE_RANK[state]!, MAX_PROGRESS)}`;
}

const isRunning = (t: ProgressTask | undefined): boolean =>
  t !== undefined && t.Status?.State === 'running' && (STATE_RANK[t.DesiredState ?? ''] ?? 99) <= MAX_PROGRESS;

/**
 * One round of the loop, pure: what to print and whether every slot runs. `activeNodes` are the IDs
 * of nodes that are not down; tasks on other nodes are ignored, as docker does.
 */
export function snapshot(service: ProgressService, allTasks: readonly ProgressTask[], activeNodes: ReadonlySet<string>, rollback = false): ProgressSnapshot {
  const tasks = upToDate(service, allTasks).filter((t) => (t.ServiceID === undefined || t.ServiceID === service.ID) && (t.NodeID === undefined || t.NodeID === '' || activeNodes.has(t.NodeID)));
  const overallWord = rollback ? 'rolling back update' : 'overall progress';
  const mode = service.Spec.Mode ?? {};
  if (mode.Global !== undefined) {
    const byNode = new Map<string, ProgressTask[]>();
    for (const t of tasks) {
      if (t.NodeID === undefined || t.NodeID === '' || isTerminal(t.DesiredState)) continue;
      byNode.set(t.NodeID, [...(byNode.get(t.NodeID) ?? []), t]);
    }
    const nodes = [...byNode.keys()].sort();
    const shown = nodes.map((n) => ({ id: n.slice(0, 12), task: pick(byNode.get(n)!) }));
    const running = shown.filter((s) => isRunning(s.task)).length;
    const desired = nodes.length;
    return {
      lines: [{ id: overallWord, text: `${running} out of ${desired} tasks` }, ...shown.map((s) => ({ id: s.id, text: taskText(s.task) }))],
      running,
      desired,
      converged: desired > 0 && running === desired,
    };
  }
  const replicas = mode.Replicated?.Replicas ?? 1;
  const bySlot = new Map<number, ProgressTask[]>();
  for (const t of tasks) {
    const slot = t.Slot ?? 0;
    if (slot < 1 || slot > replicas) continue;
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), t]);
  }
  const rows: ProgressLine[] = [];
  let running = 0;
  for (let slot = 1; slot <= replicas; slot++) {
    const t = pick(bySlot.get(slot) ?? []);
    if (isRunning(t)) running++;
    rows.push({ id: `${slot}/${replicas}`, text: taskText(t) });
  }
  return { lines: [{ id: overallWord, text: `${running} out of ${replicas} tasks` }, ...rows], running, desired: replicas, converged: running === replicas };
}

/** Where progress goes: a terminal block redrawn in place, or plain lines printed when they change. */
export class ProgressView {
  private readonly order: string[] = [];
  private readonly texts = new Map<string, string>();
  private drawn = 0;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
  ) {}

  update(lines: readonly ProgressLine[]): void {
    let changed = false;
    for (const l of lines) {
      if (!this.texts.has(l.id)) this.order.push(l.id);
      if (this.texts.get(l.id) === l.text) continue;
      this.texts.set(l.id, l.text);
      changed = true;
      if (!this.tty) this.write(`${l.id}: ${l.text}`.trimEnd() + '\n');
    }
    if (this.tty && changed) this.redraw();
  }

  private redraw(): void {
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const id of this.order) out += `\x1b[2K${`${id}: ${this.texts.get(id) ?? ''}`.trimEnd()} \n`;
    this.drawn = this.order.length;
    this.write(out);
  }

  /** A line below the block (not redrawn), e.g. "Operation continuing in background." */
  note(text: string): void {
    this.write(`${text}\n`);
  }
}

export interface WaitOptions {
  /** The reference the user typed (messages name it) — the ID after a create. */
  readonly ref: string;
  readonly view: ProgressView;
  /** Aborted by Ctrl-C: the wait stops, the service is left converging. */
  readonly signal?: AbortSignal;
  readonly pollMs?: number;
  /** Overrides the service's UpdateConfig.Monitor. */
  readonly monitorMs?: number;
  readonly rollback?: boolean;
  /** Bounds the wait (undefined: until converged or Ctrl-C, as docker). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

export type WaitResult = 'converged' | 'interrupted';

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Polls until the service converged (verified for the monitor period), or Ctrl-C. */
export async function waitForService(client: ApiClient, opts: WaitOptions): Promise<WaitResult> {
  const now = opts.now ?? Date.now;
  const pollMs = opts.pollMs ?? POLL_MS;
  const started = now();
  let rollback = opts.rollback === true;
  let convergedAt: number | undefined;
  let lastWaitS: number | undefined;
  const interrupted = (): boolean => opts.signal?.aborted === true;
  for (let round = 0; ; round++) {
    if (interrupted()) break;
    if (opts.timeoutMs !== undefined && now() - started > opts.timeoutMs) {
      throw new CliError('ERR_USAGE', `service ${opts.ref} did not converge within ${Math.round(opts.timeoutMs / 1000)} s; it goes on converging in the background`);
    }
    const service = await client.get<ProgressService>(`/services/${encodeURIComponent(opts.ref)}`, { insertDefaults: 'false' });
    const us = service.UpdateStatus;
    const thisUpdate = us?.StartedAt !== undefined && Date.parse(us.StartedAt) >= started - 2_000;
    if (us !== undefined && thisUpdate) {
      if (us.State === 'updating') rollback = false;
      if (us.State === 'rollback_started') rollback = true;
      if (us.State === 'paused') throw new CliError('ERR_USAGE', `service update paused: ${us.Message ?? ''}`);
      if (us.State === 'rollback_paused') throw new CliError('ERR_USAGE', `service rollback paused: ${us.Message ?? ''}`);
      if (us.State === 'rollback_completed' && opts.rollback !== true) throw new CliError('ERR_USAGE', `service rolled back: ${us.Message ?? ''}`);
    }
    const filters = JSON.stringify({ '_up-to-date': { true: true }, service: { [service.ID]: true } });
    const tasks = await client.get<ProgressTask[]>('/tasks', { filters });
    const nodes = await client.get<ProgressNode[]>('/nodes');
    const active = new Set(nodes.filter((n) => n.Status?.State !== 'down').map((n) => n.ID));
    const snap = snapshot(service, tasks, active, rollback);
    opts.view.update(snap.lines);
    if (us !== undefined && thisUpdate && (us.State === 'completed' || us.State === 'rollback_completed') && convergedAt === undefined && snap.converged) {
      opts.view.update([{ id: 'verify', text: `Service ${opts.ref} converged` }]);
      return 'converged';
    }
    if (snap.converged) {
      convergedAt ??= now();
      const monitorMs = opts.monitorMs ?? nsToMs((rollback ? service.Spec.RollbackConfig?.Monitor : service.Spec.UpdateConfig?.Monitor) ?? undefined) ?? DEFAULT_MONITOR_MS;
      const waitMs = monitorMs - (now() - convergedAt);
      if (waitMs <= 0) {
        opts.view.update([{ id: 'verify', text: `Service ${opts.ref} converged` }]);
        return 'converged';
      }
      const waitS = 1 + Math.floor(waitMs / 1000);
      if (waitS !== lastWaitS) opts.view.update([{ id: 'verify', text: `Waiting ${waitS} seconds to verify that tasks are stable...` }]);
      lastWaitS = waitS;
    } else {
      if (convergedAt !== undefined) opts.view.update([{ id: 'verify', text: 'Detected task failure' }]);
      convergedAt = undefined;
      lastWaitS = undefined;
    }
    await sleep(pollMs, opts.signal);
    if (round >= MAX_ROUNDS) throw new CliError('ERR_USAGE', `gave up waiting for service ${opts.ref} after ${MAX_ROUNDS} rounds; it goes on converging in the background`);
  }
  opts.view.note(`Operation continuing in background.\nUse \`shoal service ps ${opts.ref}\` to check progress.`);
  return 'interrupted';
}

const nsToMs = (ns: number | undefined): number | undefined => (ns === undefined || ns <= 0 ? undefined : Math.round(ns / 1e6));

/** Runs `fn` with an AbortSignal that SIGINT (Ctrl-C) aborts; the default SIGINT exit is suspended meanwhile. */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.on('SIGINT', onSigint);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The view for a command: on a terminal stdout, in place; else plain lines on stderr. */
export function viewFor(io: { out(t: string): void; err(t: string): void }, tty = process.stdout.isTTY === true): ProgressView {
  return tty ? new ProgressView((t) => io.out(t), true) : new ProgressView((t) => io.err(t), false);
}
