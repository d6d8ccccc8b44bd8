// MemoryStore: the manager's objects in memory, changed only by Raft-committed transactions.
//
// Reads are synchronous and see committed state only: JavaScript runs one thing at a time and
// entries are applied synchronously, so everything read inside one synchronous stretch of code
// (a `view`, a transaction function) is one consistent snapshot. Stored objects are deeply
// frozen and shared, never copied.
//
// Writes: `update(tx => …)` runs the function against committed state plus the transaction's
// own pending writes, checks what it can early (versions, names) and turns the writes into a
// batch of actions. The batch — with IDs and timestamps already stamped, so applying it needs
// no clock and no randomness — is proposed through Raft. Every manager applies committed
// batches in log order with `applyEntry`, re-checking each action against the state at that
// point (another batch may have been committed in between); if any action fails the whole
// batch is rolled back and the error is what the proposer's `update` rejects with. Objects
// written by a batch get `Version.Index` = the entry's index.
//
// Concurrency is optimistic: several transactions may be in flight at once (they share the
// Raft group commit); one built on a version another changed in the meantime fails on apply
// with "update out of sequence" and changes nothing.
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { BatchVersionError, batchOrigin, decodeBatch, encodeBatch, ORIGIN_BYTES, type StoreAction } from './actions.js';
import {
  AmbiguousError,
  ExistsError,
  InvalidObjectError,
  NameConflictError,
  NoProposerError,
  NotFoundError,
  SequenceConflictError,
  StoreClosedError,
  StoreEntryVersionError,
  StoreError,
  TransactionTooLargeError,
} from './errors.js';
import { newId } from './ids.js';
import { all, byIdPrefix, byName, findIn, matches, type By } from './query.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot.js';
import { SCHEMA, Table } from './tables.js';
import { KINDS, type Kind, type NewObject, type ObjectByKind, type StoreObject } from './types.js';
import { ChangeRing, StoreWatch, type ChangeEvent, type WatchOptions, type WatchSource } from './watch.js';

/** What the store needs from Raft. `RaftNode` satisfies it: `propose` resolves once the entry is applied here. */
export interface Proposer {
  propose(data: Uint8Array): Promise<{ readonly index: number; readonly term: number }>;
}

/** What `applyEntry` and `restore` take (raft/types.ts Entry and Snapshot have these shapes). */
export interface AppliedEntry {
  readonly index: number;
  readonly data: Uint8Array;
}

export interface StoreSnapshot {
  readonly metadata: { readonly index: number };
  readonly data: Uint8Array;
}

export interface MemoryStoreOptions {
  readonly proposer?: Proposer;
  readonly logger?: Logger;
  /** Change events kept for watches (default 10,000). */
  readonly watchRingEvents?: number;
  /** Largest encoded transaction (default 1.5 MiB). */
  readonly maxTransactionBytes?: number;
  /** Most actions in one transaction (default 10,000). */
  readonly maxTransactionActions?: number;
  /** Clock for CreatedAt/UpdatedAt, read only when a transaction is built (default: the system clock). */
  readonly now?: () => Date;
}

export interface ReadTx {
  /** The Raft index of the last applied entry this view reflects. */
  readonly version: number;
  get<K extends Kind>(kind: K, id: string): ObjectByKind[K] | undefined;
  /** Objects of `kind` matching `q` (default: all of them). */
  find<K extends Kind>(kind: K, q?: By): ObjectByKind[K][];
  /**
   * Resolves a user's reference as dockerd does: full ID, then exact name, then unique ID
   * prefix. Throws NotFoundError ("service web not found") or AmbiguousError.
   */
  lookup<K extends Kind>(kind: K, ref: string): ObjectByKind[K];
}

export interface Tx extends ReadTx {
  /** Stamps ID (unless given), CreatedAt and UpdatedAt; the returned object's Version.Index is 0 until committed. */
  create<K extends Kind>(kind: K, obj: NewObject<K>): ObjectByKind[K];
  /** `obj.Version` must be the version it was read at, else SequenceConflictError ("update out of sequence"). */
  update<K extends Kind>(kind: K, obj: ObjectByKind[K]): ObjectByKind[K];
  /** With `version`, fails like update when the object changed since. */
  delete(kind: Kind, id: string, version?: number): void;
}

export interface UpdateResult<T> {
  readonly result: T;
  /** The Raft index of the committed transaction: the new Version.Index of every object it wrote. */
  readonly version: number;
}

export interface StoreStats {
  readonly version: number;
  readonly objects: Readonly<Record<Kind, number>>;
  readonly watches: number;
  /** Watches can start from any version ≥ this one. */
  readonly oldestWatchVersion: number;
  /** How many times a snapshot replaced the contents (on start and from the leader). */
  readonly restores: number;
  readonly lastRestoreIndex: number;
  /** Committed entries applied since this store was made (its own and others'), and the object writes in them. */
  readonly entriesApplied: number;
  readonly actionsApplied: number;
  readonly bytesApplied: number;
}

type Outcome = { readonly ok: true; readonly events: readonly ChangeEvent[] } | { readonly ok: false; readonly error: StoreError };

interface Waiter {
  outcome: Outcome | undefined;
  /**
   * The batch as this store built it: applying these objects gives exactly what decoding the
   * entry would (they are frozen, JSON-faithful copies), so the proposer skips the decode.
   */
  readonly actions: readonly StoreAction[];
}

type Tables = { readonly [K in Kind]: Table<K> };

const DEFAULT_WATCH_RING_EVENTS = 10_000;
const DEFAULT_MAX_TX_BYTES = 1.5 * 1024 * 1024;
const DEFAULT_MAX_TX_ACTIONS = 10_000;

export class MemoryStore implements WatchSource, ReadTx {
  readonly ring: ChangeRing;
  private readonly tables: Tables;
  private readonly log: Logger;
  private readonly origin = randomBytes(ORIGIN_BYTES);
  private readonly waiters = new Map<number, Waiter>();
  private readonly watches = new Set<StoreWatch>();
  private readonly now: () => Date;
  private readonly maxTxBytes: number;
  private readonly maxTxActions: number;
  private proposer: Proposer | undefined;
  private seq = 0;
  private applied = 0;
  private gen = 0;
  private resetVersion = 0;
  private restoreCount = 0;
  private entriesApplied = 0;
  private actionsApplied = 0;
  private bytesApplied = 0;
  private isClosed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    this.proposer = opts.proposer;
    this.log = (opts.logger ?? pino({ name: 'store', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ component: 'store' });
    this.now = opts.now ?? (() => new Date());
    this.maxTxBytes = opts.maxTransactionBytes ?? DEFAULT_MAX_TX_BYTES;
    this.maxTxActions = opts.maxTransactionActions ?? DEFAULT_MAX_TX_ACTIONS;
    this.ring = new ChangeRing(opts.watchRingEvents ?? DEFAULT_WATCH_RING_EVENTS, 0);
    const t = {} as Record<Kind, Table<Kind>>;
    for (const k of KINDS) t[k] = new Table(k);
    this.tables = t as unknown as Tables;
  }

  /** Attaches the Raft node once it exists (the node needs the store's apply hooks first). */
  setProposer(p: Proposer): void {
    this.proposer = p;
  }

  // ------------------------------------------------------------------------- reads

  get version(): number {
    return this.applied;
  }

  get generation(): number {
    return this.gen;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get lastResetVersion(): number {
    return this.resetVersion;
  }

  get<K extends Kind>(kind: K, id: string): ObjectByKind[K] | undefined {
    return this.table(kind).get(id);
  }

  find<K extends Kind>(kind: K, q: By = all): ObjectByKind[K][] {
    return findIn(this.table(kind), q);
  }

  lookup<K extends Kind>(kind: K, ref: string): ObjectByKind[K] {
    return lookupIn(this, kind, ref);
  }

  count(kind: Kind): number {
    return this.tables[kind].size;
  }

  /** Runs `fn` against committed state; nothing can change while it runs (it is synchronous). */
  view<T>(fn: (tx: ReadTx) => T): T {
    return fn(this);
  }

  stats(): StoreStats {
    const objects = {} as Record<Kind, number>;
    for (const k of KINDS) objects[k] = this.tables[k].size;
    return {
      version: this.applied,
      objects,
      watches: this.watches.size,
      oldestWatchVersion: this.ring.oldestVersion,
      restores: this.restoreCount,
      lastRestoreIndex: this.resetVersion,
      entriesApplied: this.entriesApplied,
      actionsApplied: this.actionsApplied,
      bytesApplied: this.bytesApplied,
    };
  }

  // ------------------------------------------------------------------------- watch

  /** Changes after `opts.sinceVersion` (default: now), in order; see watch.ts. Throws TooOldError synchronously. */
  watch(opts: WatchOptions = {}): StoreWatch {
    if (this.isClosed) throw new StoreClosedError();
    return new StoreWatch(this, opts, this.applied);
  }

  /** Reads and starts a watch at the same version: no change can fall between the two. */
  viewAndWatch<T>(fn: (tx: ReadTx) => T, opts: Omit<WatchOptions, 'sinceVersion'> = {}): [T, StoreWatch] {
    const result = fn(this);
    return [result, this.watch({ ...opts, sinceVersion: this.applied })];
  }

  attach(w: StoreWatch): void {
    this.watches.add(w);
  }

  detach(w: StoreWatch): void {
    this.watches.delete(w);
  }

  // ------------------------------------------------------------------------- writes

  /**
   * Runs `fn` (synchronously: it must not await) in a transaction, proposes the resulting
   * batch and resolves once it is committed and applied here. Rejects with the first failing
   * check (SequenceConflictError, NameConflictError, NotFoundError, ExistsError), with what
   * `fn` threw, or with the proposer's error (e.g. not the leader). On any rejection nothing
   * of the transaction was applied — except after a proposer timeout, whose outcome is unknown.
   */
  async update<T>(fn: (tx: Tx) => T): Promise<UpdateResult<T>> {
    if (this.isClosed) throw new StoreClosedError();
    const tx = new WriteTx(this, this.now().toISOString());
    const result = fn(tx);
    if (result instanceof Promise) throw new InvalidObjectError('store.update: the transaction function must be synchronous (it returned a Promise)');
    const actions = tx.actions();
    if (actions.length === 0) return { result, version: this.applied };
    if (this.proposer === undefined) throw new NoProposerError();
    const seq = ++this.seq;
    const data = encodeBatch({ origin: this.origin, seq, actions });
    if (data.byteLength > this.maxTxBytes || actions.length > this.maxTxActions) {
      throw new TransactionTooLargeError(data.byteLength, this.maxTxBytes, actions.length, this.maxTxActions);
    }
    const waiter: Waiter = { outcome: undefined, actions };
    this.waiters.set(seq, waiter);
    let index: number;
    try {
      ({ index } = await this.proposer.propose(data));
    } finally {
      this.waiters.delete(seq);
    }
    const outcome = waiter.outcome;
    if (outcome === undefined) {
      // The proposer said "applied" but apply never saw the batch: the wiring is wrong.
      throw new Error(`store: entry ${index} was reported applied but the store did not apply it; is apply wired to this store?`);
    }
    if (!outcome.ok) throw outcome.error;
    return { result, version: index };
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of [...this.watches]) w.close();
  }

  // ------------------------------------------------------------------------- replication

  /** Applies one committed entry (the RaftNode `apply` hook). Deterministic: no clock, no randomness. */
  applyEntry(e: AppliedEntry): void {
    if (e.index <= this.applied) {
      this.log.warn({ index: e.index, applied: this.applied }, 'entry already applied; skipped');
      return;
    }
    this.applied = e.index;
    let actions: readonly StoreAction[];
    let waiter: Waiter | undefined;
    try {
      const head = batchOrigin(e.data);
      if (this.origin.equals(head.origin)) waiter = this.waiters.get(head.seq);
      // Our own proposal: its actions are at hand (the entry holds exactly them).
      actions = waiter !== undefined ? waiter.actions : decodeBatch(e.data).actions;
    } catch (err) {
      if (err instanceof BatchVersionError) {
        // A newer manager wrote it: skipping would leave this store behind the others' for good.
        // Stop here (the Raft node stops on it, and a restart stops at the same entry) until this
        // manager runs a build that knows it.
        this.applied = e.index - 1;
        throw new StoreEntryVersionError(e.index, err);
      }
      // Every manager decodes the same bytes the same way, so every one skips it alike.
      this.log.error({ index: e.index, err }, 'committed entry is not a store transaction; skipped');
      return;
    }
    const outcome = this.applyActions(actions, e.index);
    this.entriesApplied++;
    this.actionsApplied += actions.length;
    this.bytesApplied += e.data.byteLength;
    if (outcome.ok && outcome.events.length > 0) {
      const fromSeq = this.ring.head;
      for (const ev of outcome.events) this.ring.push(ev);
      for (const w of this.watches) w.changed(fromSeq, outcome.events);
    }
    if (waiter !== undefined) waiter.outcome = outcome;
  }

  /** The whole store, for a Raft snapshot (the RaftNode `snapshotData` hook). */
  snapshotData(): Uint8Array {
    const objects = new Map<Kind, StoreObject[]>();
    for (const k of KINDS) objects.set(k, [...this.tables[k].all()]);
    return encodeSnapshot({ version: this.applied, objects });
  }

  /**
   * Replaces the contents with a snapshot (the RaftNode `restore` hook: on start, and when a
   * follower installs the leader's snapshot). Open watches end with WatchResetError.
   */
  restore(snap: StoreSnapshot): void {
    const index = snap.metadata.index;
    const contents = snap.data.byteLength === 0 ? { version: index, objects: new Map<Kind, StoreObject[]>() } : decodeSnapshot(snap.data);
    for (const k of KINDS) this.tables[k].clear();
    for (const [k, list] of contents.objects) {
      const t = this.table(k);
      for (const o of list) t.put(deepFreeze(o));
    }
    this.applied = index;
    this.resetVersion = index;
    this.restoreCount++;
    this.gen++;
    this.ring.reset(index);
    this.log.info({ index, objects: this.stats().objects }, 'store restored from snapshot');
    for (const w of [...this.watches]) w.notify();
  }

  // ------------------------------------------------------------------------- internals

  private table<K extends Kind>(kind: K): Table<K> {
    const t = this.tables[kind] as Table<K> | undefined;
    if (t === undefined) throw new InvalidObjectError(`store: unknown kind ${String(kind)}`);
    return t;
  }

  /**
   * Applies all actions or none. Only StoreErrors are expected; anything else is a bug and
   * propagates. The events double as the undo log: each says what its action replaced.
   */
  private applyActions(actions: readonly StoreAction[], index: number): Outcome {
    const events: ChangeEvent[] = [];
    // Every object of the entry gets this version: one frozen object for all of them.
    const version = Object.freeze({ Index: index });
    try {
      for (const a of actions) {
        const t = this.table(a.kind) as Table<Kind>;
        if (a.op === 'create') {
          const id = a.object.ID;
          if (t.get(id) !== undefined) throw new ExistsError(a.kind, id);
          checkUniqueName(t, a.object, id);
          const o = stamp(a.object, version);
          t.insert(o);
          events.push({ kind: a.kind, action: 'create', version: index, object: o } as ChangeEvent);
        } else if (a.op === 'update') {
          const id = a.object.ID;
          const cur = t.get(id);
          if (cur === undefined) throw new NotFoundError(a.kind, id);
          if (cur.Version.Index !== a.expectVersion) throw new SequenceConflictError(a.kind, id, a.expectVersion, cur.Version.Index);
          checkUniqueName(t, a.object, id);
          const o = stamp(a.object, version);
          t.replace(o, cur);
          events.push({ kind: a.kind, action: 'update', version: index, object: o, old: cur } as ChangeEvent);
        } else if (a.op === 'patch') {
          const id = a.id;
          const cur = t.get(id);
          if (cur === undefined) throw new NotFoundError(a.kind, id);
          if (cur.Version.Index !== a.expectVersion) throw new SequenceConflictError(a.kind, id, a.expectVersion, cur.Version.Index);
          const o = patched(cur, a.set, a.unset, version);
          checkUniqueName(t, o, id);
          t.replace(o, cur);
          events.push({ kind: a.kind, action: 'update', version: index, object: o, old: cur } as ChangeEvent);
        } else {
          const cur = t.get(a.id);
          if (cur === undefined) throw new NotFoundError(a.kind, a.id);
          if (a.expectVersion !== null && cur.Version.Index !== a.expectVersion) {
            throw new SequenceConflictError(a.kind, a.id, a.expectVersion, cur.Version.Index);
          }
          t.remove(a.id);
          events.push({ kind: a.kind, action: 'delete', version: index, object: cur } as ChangeEvent);
        }
      }
    } catch (err) {
      for (let i = events.length - 1; i >= 0; i--) {
        const ev = events[i]!;
        const t = this.table(ev.kind) as Table<Kind>;
        if (ev.action === 'create') t.remove(ev.object.ID);
        else if (ev.action === 'update') t.replace(ev.old!, ev.object);
        else t.insert(ev.object);
      }
      if (err instanceof StoreError) return { ok: false, error: err };
      throw err;
    }
    return { ok: true, events };
  }
}

// ----------------------------------------------------------------------------- transaction

interface Pending {
  readonly op: 'create' | 'update' | 'delete';
  /** null for a delete. */
  readonly object: StoreObject | null;
  /** The committed version the transaction read (update, delete-if-version). */
  readonly expect: number | null;
  /** First-touch order, so the batch keeps the order the function wrote in. */
  readonly order: number;
}

class WriteTx implements Tx {
  private readonly pending = new Map<Kind, Map<string, Pending>>();
  private touches = 0;

  constructor(private readonly store: MemoryStore, private readonly nowIso: string) {}

  get version(): number {
    return this.store.version;
  }

  get<K extends Kind>(kind: K, id: string): ObjectByKind[K] | undefined {
    const p = this.pending.get(kind)?.get(id);
    if (p !== undefined) return (p.object ?? undefined) as ObjectByKind[K] | undefined;
    return this.store.get(kind, id);
  }

  find<K extends Kind>(kind: K, q: By = all): ObjectByKind[K][] {
    const base = this.store.find(kind, q);
    const ov = this.pending.get(kind);
    if (ov === undefined || ov.size === 0) return base;
    const out = base.filter((o) => !ov.has(o.ID));
    for (const p of ov.values()) if (p.object !== null && matches(kind, q, p.object)) out.push(p.object as ObjectByKind[K]);
    return out;
  }

  lookup<K extends Kind>(kind: K, ref: string): ObjectByKind[K] {
    return lookupIn(this, kind, ref);
  }

  create<K extends Kind>(kind: K, obj: NewObject<K>): ObjectByKind[K] {
    checkShape(kind, obj);
    const id = obj.ID ?? newId();
    if (typeof id !== 'string' || id.length === 0 || /\s/.test(id)) throw new InvalidObjectError(`${kind} ID must be a non-empty string without spaces`);
    if (this.get(kind, id) !== undefined) throw new ExistsError(kind, id);
    const o: Record<string, unknown> = { ID: id, Version: UNCOMMITTED_VERSION, CreatedAt: this.nowIso, UpdatedAt: this.nowIso };
    const src = obj as Record<string, unknown>;
    for (const k of Object.keys(src)) {
      if (k === 'ID' || k === 'Version' || k === 'CreatedAt' || k === 'UpdatedAt') continue;
      const v = cloneFrozen(src[k], 1);
      if (v !== undefined) setOwn(o, k, v);
    }
    const created = Object.freeze(o) as unknown as StoreObject;
    this.checkName(kind, created);
    this.record(kind, id, 'create', created, null);
    return created as ObjectByKind[K];
  }

  update<K extends Kind>(kind: K, obj: ObjectByKind[K]): ObjectByKind[K] {
    checkShape(kind, obj);
    const cur = this.get(kind, obj.ID);
    if (cur === undefined) throw new NotFoundError(kind, obj.ID);
    const given = obj.Version?.Index;
    if (given !== cur.Version.Index) throw new SequenceConflictError(kind, obj.ID, typeof given === 'number' ? given : -1, cur.Version.Index);
    const o = this.nextVersion(cur, obj);
    this.checkName(kind, o);
    const p = this.pending.get(kind)?.get(obj.ID);
    if (p !== undefined) this.record(kind, obj.ID, p.op, o, p.expect, p.order);
    else this.record(kind, obj.ID, 'update', o, cur.Version.Index);
    return o as ObjectByKind[K];
  }

  delete(kind: Kind, id: string, version?: number): void {
    const cur = this.get(kind, id);
    if (cur === undefined) throw new NotFoundError(kind, id);
    if (version !== undefined && version !== cur.Version.Index) throw new SequenceConflictError(kind, id, version, cur.Version.Index);
    const ov = this.pending.get(kind);
    const p = ov?.get(id);
    if (p?.op === 'create') {
      ov!.delete(id); // created and deleted in one transaction: nothing to propose
      return;
    }
    const expect = p?.op === 'update' ? p.expect : (version ?? null);
    this.record(kind, id, 'delete', null, expect);
  }

  /** The batch, in first-touch order; an update is sent as the top-level fields it changed. */
  actions(): StoreAction[] {
    const flat: { kind: Kind; id: string; p: Pending }[] = [];
    for (const [kind, m] of this.pending) for (const [id, p] of m) flat.push({ kind, id, p });
    flat.sort((a, b) => a.p.order - b.p.order);
    return flat.map(({ kind, id, p }): StoreAction => {
      if (p.op === 'create') return { op: 'create', kind, object: p.object! };
      if (p.op === 'update') {
        const base = this.store.get(kind, id);
        if (base === undefined || base.Version.Index !== p.expect) return { op: 'update', kind, object: p.object!, expectVersion: p.expect! };
        return { op: 'patch', kind, id, ...diff(base, p.object!), expectVersion: p.expect! };
      }
      return { op: 'delete', kind, id, expectVersion: p.expect };
    });
  }

  /**
   * What `update` stores: `obj`'s fields with the bookkeeping of `cur`. A field that is still
   * `cur`'s own value (same reference: the caller spread the object it read) is shared — it is
   * the store's, deeply frozen already; any other is copied and frozen.
   */
  private nextVersion(cur: StoreObject, obj: StoreObject): StoreObject {
    const src = obj as unknown as Record<string, unknown>;
    const prev = cur as unknown as Record<string, unknown>;
    const o: Record<string, unknown> = {};
    let seen = 0;
    for (const k of Object.keys(src)) {
      switch (k) {
        case 'ID':
        case 'Version':
        case 'CreatedAt':
          o[k] = prev[k];
          seen++;
          continue;
        case 'UpdatedAt':
          o[k] = this.nowIso;
          seen++;
          continue;
      }
      const v = src[k];
      const c = v === prev[k] && hasOwn(prev, k) ? v : cloneFrozen(v, 1);
      if (c !== undefined) setOwn(o, k, c);
    }
    if (seen < 4) {
      if (!hasOwn(o, 'ID')) o['ID'] = cur.ID;
      if (!hasOwn(o, 'Version')) o['Version'] = cur.Version;
      if (!hasOwn(o, 'CreatedAt')) o['CreatedAt'] = cur.CreatedAt;
      if (!hasOwn(o, 'UpdatedAt')) o['UpdatedAt'] = this.nowIso;
    }
    return Object.freeze(o) as unknown as StoreObject;
  }

  private record(kind: Kind, id: string, op: Pending['op'], object: StoreObject | null, expect: number | null, order?: number): void {
    let m = this.pending.get(kind);
    if (m === undefined) this.pending.set(kind, (m = new Map()));
    const p: Pending = { op, object, expect, order: order ?? this.touches++ };
    m.set(id, p);
  }

  private checkName(kind: Kind, o: StoreObject): void {
    const schema = SCHEMA[kind];
    if (!schema.uniqueNames) return;
    const name = schema.name(o)!;
    for (const other of this.find(kind, byName(name))) {
      if (other.ID !== o.ID) throw new NameConflictError(kind, name, other.ID);
    }
  }
}

// ----------------------------------------------------------------------------- helpers

function lookupIn<K extends Kind>(tx: ReadTx, kind: K, ref: string): ObjectByKind[K] {
  if (ref.length === 0) throw new NotFoundError(kind, ref);
  const exact = tx.get(kind, ref);
  if (exact !== undefined) return exact;
  const named = tx.find(kind, byName(ref));
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw new AmbiguousError(kind, ref, named.length);
  const prefixed = tx.find(kind, byIdPrefix(ref));
  if (prefixed.length === 1) return prefixed[0]!;
  if (prefixed.length > 1) throw new AmbiguousError(kind, ref, prefixed.length);
  throw new NotFoundError(kind, ref);
}

/** What every object must have before it may be proposed; the rest of a spec is the control API's to validate. */
function checkShape(kind: Kind, obj: unknown): void {
  const o = obj as { Spec?: unknown } | null;
  if (typeof o !== 'object' || o === null) throw new InvalidObjectError(`${kind}: not an object`);
  if (typeof o.Spec !== 'object' || o.Spec === null) throw new InvalidObjectError(`${kind}: Spec is required`);
  const schema = SCHEMA[kind];
  if (schema === undefined) throw new InvalidObjectError(`store: unknown kind ${String(kind)}`);
  if (schema.uniqueNames) {
    const name = schema.name(o as StoreObject);
    if (typeof name !== 'string' || name.length === 0) throw new InvalidObjectError(`${kind}: Spec.Name is required`);
  }
}

function checkUniqueName(t: Table<Kind>, o: StoreObject, id: string): void {
  if (!t.schema.uniqueNames) return;
  const name = t.schema.name(o);
  if (name === undefined) return;
  for (const other of t.byName(name)) if (other.ID !== id) throw new NameConflictError(t.kind, name, other.ID);
}

/** The object as committed at `version` (the entry's, shared by its objects): bookkeeping first, as dockerd orders its fields. */
function stamp(o: StoreObject, version: StoreObject['Version']): StoreObject {
  // One copy (a rest pattern and a spread made two): the fields in `o`'s order after ID and Version.
  const src = o as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { ID: o.ID, Version: version };
  for (const k in src) if (k !== 'ID' && k !== 'Version') setOwn(out, k, src[k]);
  return deepFreeze(out) as unknown as StoreObject;
}

/** A transaction's objects before commit (the stored one gets the entry's index). */
const UNCOMMITTED_VERSION = Object.freeze({ Index: 0 });

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** `o[k] = v` that also works for a key named `__proto__` (JSON.parse makes it an own field; so must we). */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/**
 * The top-level fields of `next` that differ from `base` (by reference: a field the caller kept
 * is the same object), and those it dropped. ID and Version are the store's bookkeeping.
 */
function diff(base: StoreObject, next: StoreObject): { set: Record<string, unknown>; unset: string[] } {
  const b = base as unknown as Record<string, unknown>;
  const n = next as unknown as Record<string, unknown>;
  const set: Record<string, unknown> = {};
  const unset: string[] = [];
  for (const k in n) {
    if (k === 'ID' || k === 'Version') continue;
    if (n[k] !== b[k] || !hasOwn(b, k)) setOwn(set, k, n[k]);
  }
  for (const k in b) if (k !== 'ID' && k !== 'Version' && !hasOwn(n, k)) unset.push(k);
  return { set, unset };
}

/**
 * `cur` with a patch applied, as committed at `version`: the fields in `cur`'s order (changed ones
 * replaced, removed ones left out), then new ones in the patch's order. Every manager builds the
 * same object from the same stored one. Unchanged fields are shared with `cur` (frozen already).
 */
function patched(cur: StoreObject, set: Readonly<Record<string, unknown>>, unset: readonly string[], version: StoreObject['Version']): StoreObject {
  const c = cur as unknown as Record<string, unknown>;
  const o: Record<string, unknown> = { ID: cur.ID, Version: version };
  for (const k in c) {
    if (k === 'ID' || k === 'Version') continue;
    if (hasOwn(set, k)) setOwn(o, k, deepFreeze(set[k]));
    else if (unset.length === 0 || !unset.includes(k)) setOwn(o, k, c[k]);
  }
  for (const k in set) if (!hasOwn(c, k)) setOwn(o, k, deepFreeze(set[k]));
  return Object.freeze(o) as unknown as StoreObject;
}

const MAX_CLONE_DEPTH = 100;

/**
 * A deeply frozen copy of what a transaction writes, so the caller's object cannot change the
 * stored one — and exactly what JSON.parse(JSON.stringify(v)) gives, because the proposing
 * manager applies this copy while the others apply the JSON of it: a field holding `undefined`
 * is left out (in an array it becomes null), a non-finite number becomes null and -0 becomes 0,
 * and anything that is neither plain data nor an array (a Date, a Map) goes through JSON.
 * A function, a symbol or a bigint cannot be stored, and neither can a cycle. Returns undefined
 * for what JSON leaves out.
 */
function cloneFrozen(v: unknown, depth: number): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return v;
    case 'number':
      return Number.isFinite(v) ? (v === 0 ? 0 : v) : null;
    case 'object':
      break;
    default:
      throw new InvalidObjectError(`store: a ${typeof v} cannot be stored`);
  }
  if (v === null) return null;
  // Frozen all the way down and plain JSON data (every stored object is; so is the task template
  // a service's tasks are created from): nothing can change it, so it is shared, not copied.
  if (Object.isFrozen(v) && isFrozenJson(v, depth)) return v;
  if (depth > MAX_CLONE_DEPTH) throw new InvalidObjectError(`store: object nested more than ${MAX_CLONE_DEPTH} levels deep (or cyclic)`);
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const x = cloneFrozen(v[i], depth + 1);
      out[i] = x === undefined ? null : x;
    }
    return Object.freeze(out);
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    const json = JSON.stringify(v) as string | undefined;
    return json === undefined ? undefined : deepFreeze(JSON.parse(json) as unknown);
  }
  const src = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    const x = cloneFrozen(src[k], depth + 1);
    if (x !== undefined) setOwn(out, k, x);
  }
  return Object.freeze(out);
}

/**
 * Is `v` deeply frozen and made only of what JSON gives back unchanged (plain objects, arrays,
 * strings, booleans, null, finite numbers other than -0)? Such a value is exactly what a
 * follower decodes, and nobody can change it. Walks without allocating; a deeper (or cyclic)
 * value answers false and is copied (and refused) by cloneFrozen. Accessor properties are not
 * looked for: a frozen object with a getter is not data, and a caller writing one gets what its
 * getter returns when the entry is encoded on followers.
 */
function isFrozenJson(v: object, depth: number): boolean {
  if (depth > MAX_CLONE_DEPTH || !Object.isFrozen(v)) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!isJsonValue(v[i], depth)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  const r = v as Record<string, unknown>;
  for (const k in r) if (!isJsonValue(r[k], depth)) return false;
  return true;
}

function isJsonValue(x: unknown, depth: number): boolean {
  switch (typeof x) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(x) && !Object.is(x, -0);
    case 'object':
      return x === null || isFrozenJson(x, depth + 1);
    default:
      return false;
  }
}

/** Freezes `o` and everything in it; stops at what is frozen already (the store froze it whole). */
function deepFreeze<T>(o: T): T {
  if (typeof o !== 'object' || o === null || Object.isFrozen(o)) return o;
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) deepFreeze(o[i] as unknown);
  } else {
    const r = o as Record<string, unknown>;
    for (const k in r) deepFreeze(r[k]);
  }
  return Object.freeze(o);
}
