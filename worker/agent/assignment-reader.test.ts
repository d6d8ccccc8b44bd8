// The agent's hand-written reader of assignment messages against the generated decoder, for the
// messages the dispatcher writes (assignment-wire.ts) and for arbitrary ones of the proto's shape.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { encodeAssignmentsMessage, encodedChange, type AssignedKind } from '../../manager/dispatcher/assignment-wire.js';
import { AssignmentAction, AssignmentsMessage, AssignmentsMessage_Type, type Assignment } from '../../proto/gen/shoal/dispatcher.js';
import { readAssignments, type ReadAssignments } from './assignment-reader.js';

const JSON_KINDS = ['taskJson', 'secretJson', 'configJson', 'networkJson'] as const;

/** What the agent took from the generated decoder's value: the JSON members, in order. */
function fromGenerated(bytes: Uint8Array): ReadAssignments {
  const m = AssignmentsMessage.decode(bytes);
  const changes: ReadAssignments['changes'] = [];
  for (const c of m.changes) {
    const item = c.assignment?.item;
    if (item === undefined) continue;
    if (item.$case !== 'taskJson' && item.$case !== 'secretJson' && item.$case !== 'configJson' && item.$case !== 'networkJson') continue;
    const json = (item as Record<string, unknown>)[item.$case] as Uint8Array;
    changes.push({ kind: item.$case, remove: c.action === AssignmentAction.ASSIGNMENT_ACTION_REMOVE, json: Buffer.from(json) });
  }
  return { type: m.type, appliesTo: m.appliesTo, resultsIn: m.resultsIn, changes, more: m.more };
}

function plain(r: ReadAssignments): unknown {
  return { ...r, changes: r.changes.map((c) => ({ ...c, json: Buffer.from(c.json).toString('hex') })) };
}

const text = fc.string({ maxLength: 30 });
const bytes = fc.uint8Array({ maxLength: 40 });
const item: fc.Arbitrary<Assignment['item']> = fc.oneof(
  fc.constant(undefined),
  ...JSON_KINDS.map((k) => bytes.map((b) => ({ $case: k, [k]: b }) as unknown as Assignment['item'])),
  fc.constant({ $case: 'secret', secret: { id: 's1', meta: undefined, spec: undefined } } as unknown as Assignment['item']),
);
const message = fc.record({
  type: fc.constantFrom(AssignmentsMessage_Type.TYPE_COMPLETE, AssignmentsMessage_Type.TYPE_INCREMENTAL),
  appliesTo: text,
  resultsIn: text,
  changes: fc.array(
    fc.record({
      assignment: fc.oneof(fc.constant(undefined), fc.record({ item })),
      action: fc.constantFrom(AssignmentAction.ASSIGNMENT_ACTION_UPDATE, AssignmentAction.ASSIGNMENT_ACTION_REMOVE),
    }),
    { maxLength: 6 },
  ),
  more: fc.boolean(),
});

describe('readAssignments', () => {
  it('reads what the generated decoder reads, for any message of the proto shape', () => {
    fc.assert(
      fc.property(message, (m) => {
        const buf = Buffer.from(AssignmentsMessage.encode(m as AssignmentsMessage).finish());
        expect(plain(readAssignments(buf))).toEqual(plain(fromGenerated(buf)));
      }),
      { numRuns: 500 },
    );
  });

  it('reads the dispatcher\'s hand-built messages, JSON as views into the message (no copy)', () => {
    const kinds: AssignedKind[] = ['task', 'secret', 'config', 'network'];
    fc.assert(
      fc.property(
        fc.array(fc.record({ kind: fc.constantFrom(...kinds), id: fc.string({ maxLength: 12 }), remove: fc.boolean() }), { maxLength: 8 }),
        fc.boolean(),
        (items, more) => {
          const changes = items.map((i) => encodedChange(i.kind, JSON.stringify({ ID: i.id, Spec: { Name: 'ünïcode' } }), i.remove));
          const buf = encodeAssignmentsMessage(AssignmentsMessage_Type.TYPE_INCREMENTAL, 'a', 'b', changes, more);
          const read = readAssignments(buf);
          expect(plain(read)).toEqual(plain(fromGenerated(buf)));
          for (const c of read.changes) expect(c.json.buffer).toBe(buf.buffer);
        },
      ),
    );
  });

  it('refuses a truncated message', () => {
    const buf = encodeAssignmentsMessage(AssignmentsMessage_Type.TYPE_COMPLETE, '', 'v1', [encodedChange('task', '{"ID":"t1"}', false)], false);
    expect(() => readAssignments(buf.subarray(0, buf.length - 3))).toThrow(RangeError);
  });
});
