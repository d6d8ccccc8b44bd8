// The assignment send window: a node hears its incremental changes at most once per window, so a
// burst of scheduler commits reaches it as one message; and a change set over the message size
// limit goes as chunks (one manager, a raw Dispatcher client over mTLS acting as the worker).
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';

import { AssignmentsMessage_Type, type AssignmentsMessage, type SessionMessage } from '../../proto/gen/shoal/dispatcher.js';
import { callUnary } from '../../proto/grpc/client.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { DispatcherConfig } from './dispatcher.js';
import { createNodeTask, DispatchCluster, waitFor } from './testing/harness.js';

// Long enough that a burst of three sequential commits on one manager fits in it.
const WINDOW_MS = 1500;

interface Node {
  readonly store: MemoryStore;
  readonly nodeId: string;
  /** Assignment messages received, in order (the first is the COMPLETE set). */
  readonly got: AssignmentsMessage[];
}

/** One manager with `config`, one worker session with its assignments stream; all closed after `fn`. */
async function withNode(config: Partial<DispatcherConfig>, fn: (n: Node) => Promise<void>): Promise<void> {
  const cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: 1000, maxBatchIntervalMs: 10, leadershipCheckMs: 20, ...config } });
  const streams: grpc.ClientReadableStream<unknown>[] = [];
  let keepAlive: NodeJS.Timeout | undefined;
  let close: (() => void) | undefined;
  try {
    const leader = await cluster.leaderId();
    await waitFor('the leader to dispatch', () => cluster.manager(leader).dispatcher?.leading === true);
    const w = await cluster.workerIdentity();
    const c = cluster.client(cluster.manager(leader).addr, w);
    close = () => c.close();
    const session = c.session({ sessionId: '', descriptionJson: Buffer.from(JSON.stringify({ Hostname: 'window-host' })) });
    streams.push(session);
    session.on('error', () => undefined);
    const first = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
    keepAlive = setInterval(() => void callUnary(c.heartbeat.bind(c), { sessionId: first.sessionId }).catch(() => undefined), 300);
    const got: AssignmentsMessage[] = [];
    const stream = c.assignments({ sessionId: first.sessionId });
    streams.push(stream);
    stream.on('data', (m: AssignmentsMessage) => got.push(m));
    stream.on('error', () => undefined);
    await waitFor('the complete set', () => got.length >= 1);
    expect(got[0]!.type).toBe(AssignmentsMessage_Type.TYPE_COMPLETE);
    await fn({ store: cluster.stores.rs(leader).store, nodeId: w.nodeId, got });
  } finally {
    if (keepAlive !== undefined) clearInterval(keepAlive);
    for (const s of streams) s.cancel();
    close?.();
    await cluster.close();
  }
}

async function createAssigned(store: MemoryStore, nodeId: string): Promise<string> {
  return (await createNodeTask(store, nodeId, 'assigned')).ID;
}

function taskIds(m: AssignmentsMessage): string[] {
  return m.changes.map((ch) => (JSON.parse((ch.assignment!.item as { taskJson: Buffer }).taskJson.toString()) as { ID: string }).ID);
}

describe('assignment send window', () => {
  it('sends the first change after a quiet window alone, and a burst after it in one message', async () => {
    await withNode({ assignmentWindowMs: WINDOW_MS, assignmentFirstDelayMs: 0 }, async ({ store, nodeId, got }) => {
      // Nothing sent since the complete set: the first change goes at once, alone.
      const a = await createAssigned(store, nodeId);
      await waitFor('the first change', () => got.length >= 2);
      expect(taskIds(got[1]!)).toEqual([a]);

      // Three commits right after it: held for the window, then one message with all three, in order.
      const burst = [await createAssigned(store, nodeId), await createAssigned(store, nodeId), await createAssigned(store, nodeId)];
      await waitFor('the burst', () => got.length >= 3, WINDOW_MS + 10_000);
      expect(got[2]!.type).toBe(AssignmentsMessage_Type.TYPE_INCREMENTAL);
      expect(got[2]!.appliesTo).toBe(got[1]!.resultsIn);
      expect(taskIds(got[2]!)).toEqual(burst);
      expect(got).toHaveLength(3);
    });
  });

  it('with a first-change delay, the first change of a quiet node waits for the rest of its burst', async () => {
    await withNode({ assignmentWindowMs: WINDOW_MS, assignmentFirstDelayMs: WINDOW_MS }, async ({ store, nodeId, got }) => {
      const burst = [await createAssigned(store, nodeId), await createAssigned(store, nodeId), await createAssigned(store, nodeId)];
      await waitFor('the burst', () => got.length >= 2, WINDOW_MS + 10_000);
      expect(got[1]!.appliesTo).toBe(got[0]!.resultsIn);
      expect(taskIds(got[1]!)).toEqual(burst);
      expect(got).toHaveLength(2);
    });
  });
});

describe('assignment messages over the size limit', () => {
  it('go as chunks of one change set: `more` on all but the last, each applying to the one before', async () => {
    await withNode({ maxAssignmentMessageBytes: 1 }, async ({ store, nodeId, got }) => {
      const { result } = await store.update((tx) =>
        [1, 2, 3].map(
          (slot) =>
            tx.create('task', {
              Spec: { ContainerSpec: { Image: 'busybox' } },
              ServiceID: '',
              Slot: slot,
              NodeID: nodeId,
              Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: 'assigned' },
              DesiredState: 'running',
            }).ID,
        ),
      );
      await waitFor('three chunks', () => got.length >= 4);
      const chunks = got.slice(1);
      expect(chunks.map((m) => [m.type, m.more])).toEqual([
        [AssignmentsMessage_Type.TYPE_INCREMENTAL, true],
        [AssignmentsMessage_Type.TYPE_INCREMENTAL, true],
        [AssignmentsMessage_Type.TYPE_INCREMENTAL, false],
      ]);
      expect(chunks.map((m) => m.appliesTo)).toEqual([got[0]!.resultsIn, chunks[0]!.resultsIn, chunks[1]!.resultsIn]);
      expect(chunks.flatMap(taskIds)).toEqual(result);
    });
  });
});
