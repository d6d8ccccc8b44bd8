// assignment-wire.ts: hand-built assignment messages are the generated encoder's bytes, and decode
// to the same message; a store object's JSON (shared fields reused) is JSON.stringify's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { AssignmentAction, AssignmentsMessage, AssignmentsMessage_Type, type AssignmentChange } from '../../proto/gen/shoal/dispatcher.js';
import { DISPATCHER_SERVICE, EncodedAssignments, encodeAssignmentsMessage, encodedChange, objectJson, type AssignedKind } from './assignment-wire.js';

const KIND_CASE = { task: 'taskJson', secret: 'secretJson', config: 'configJson', network: 'networkJson' } as const;

function generated(type: AssignmentsMessage_Type, appliesTo: string, resultsIn: string, changes: { kind: AssignedKind; json: string; remove: boolean }[], more: boolean): Buffer {
  const list: AssignmentChange[] = changes.map((c) => {
    const bytes = Buffer.from(c.json, 'utf8');
    const item =
      c.kind === 'task'
        ? { $case: 'taskJson' as const, taskJson: bytes }
        : c.kind === 'secret'
          ? { $case: 'secretJson' as const, secretJson: bytes }
          : c.kind === 'config'
            ? { $case: 'configJson' as const, configJson: bytes }
            : { $case: 'networkJson' as const, networkJson: bytes };
    return { assignment: { item }, action: c.remove ? AssignmentAction.ASSIGNMENT_ACTION_REMOVE : AssignmentAction.ASSIGNMENT_ACTION_UPDATE };
  });
  return Buffer.from(AssignmentsMessage.encode({ type, appliesTo, resultsIn, changes: list, more }).finish());
}

const change = fc.record({
  kind: fc.constantFrom<AssignedKind>('task', 'secret', 'config', 'network'),
  json: fc.oneof(fc.json(), fc.string({ unit: 'grapheme', maxLength: 300 }), fc.constant('x'.repeat(20_000))),
  remove: fc.boolean(),
});

describe('encodeAssignmentsMessage', () => {
  it('writes exactly the bytes AssignmentsMessage.encode writes, for any message', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(AssignmentsMessage_Type.TYPE_COMPLETE, AssignmentsMessage_Type.TYPE_INCREMENTAL),
        fc.oneof(fc.constant(''), fc.nat().map(String), fc.string({ unit: 'grapheme' })),
        fc.oneof(fc.nat().map(String), fc.string({ unit: 'grapheme' })),
        fc.array(change, { maxLength: 12 }),
        fc.boolean(),
        (type, appliesTo, resultsIn, changes, more) => {
          const mine = encodeAssignmentsMessage(type, appliesTo, resultsIn, changes.map((c) => encodedChange(c.kind, c.json, c.remove)), more);
          expect(mine.equals(generated(type, appliesTo, resultsIn, changes, more))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes with the generated decoder to what was sent (what a worker reads)', () => {
    const task = { ID: 'task-1', Spec: { ContainerSpec: { Image: 'nginx:1.27', Env: ['A=é'] } }, Status: { State: 'assigned' } };
    const bytes = encodeAssignmentsMessage(AssignmentsMessage_Type.TYPE_INCREMENTAL, '7', '8', [encodedChange('task', objectJson(task), false), encodedChange('secret', '{"ID":"s1"}', true)], true);
    const msg = AssignmentsMessage.decode(bytes);
    expect(msg.type).toBe(AssignmentsMessage_Type.TYPE_INCREMENTAL);
    expect([msg.appliesTo, msg.resultsIn, msg.more]).toEqual(['7', '8', true]);
    expect(msg.changes.map((c) => [c.assignment?.item?.$case, c.action])).toEqual([
      [KIND_CASE.task, AssignmentAction.ASSIGNMENT_ACTION_UPDATE],
      [KIND_CASE.secret, AssignmentAction.ASSIGNMENT_ACTION_REMOVE],
    ]);
    const item = msg.changes[0]!.assignment!.item!;
    expect(item.$case === 'taskJson' && JSON.parse(Buffer.from(item.taskJson).toString('utf8'))).toEqual(task);
  });

  it('is what the leader serves: encoded messages pass through as bytes, plain ones are encoded', () => {
    const bytes = encodeAssignmentsMessage(AssignmentsMessage_Type.TYPE_COMPLETE, '', '1', [], false);
    expect(DISPATCHER_SERVICE.assignments.responseSerialize(new EncodedAssignments(bytes))).toBe(bytes);
    const plain = { type: AssignmentsMessage_Type.TYPE_COMPLETE, appliesTo: '', resultsIn: '1', changes: [], more: false };
    expect(DISPATCHER_SERVICE.assignments.responseSerialize(plain).equals(bytes)).toBe(true);
  });
});

describe('objectJson', () => {
  it('is JSON.stringify for any plain object, frozen or not', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('ID', 'Spec', 'Labels', 'Status', 'Endpoint', 'NetworksAttachments', '__proto__', 'x'), fc.jsonValue()), fc.boolean(), (o, freeze) => {
        const deepFreeze = (v: unknown): unknown => {
          if (typeof v === 'object' && v !== null) {
            for (const x of Object.values(v)) deepFreeze(x);
            Object.freeze(v);
          }
          return v;
        };
        const obj = freeze ? (deepFreeze(o) as object) : o;
        expect(objectJson(obj)).toBe(JSON.stringify(obj));
        expect(objectJson(obj)).toBe(JSON.stringify(obj));
      }),
      { numRuns: 300 },
    );
  });

  it('is JSON.stringify for anything JavaScript can hold in a field (escapes, surrogates, -0, NaN, sparse arrays, dates, maps, null prototypes)', () => {
    const anything = fc.anything({ withNullPrototype: true, withBoxedValues: true, withMap: true, withSet: true, withDate: true, withTypedArray: true, withSparseArray: true, withObjectString: true, withUnicodeString: true });
    fc.assert(
      fc.property(anything, fc.string({ unit: 'binary', maxLength: 30 }), (x, text) => {
        const o = { ID: text, [text]: x, Spec: x, Labels: Object.freeze({ text, x }), list: [x, undefined, () => 1, text] };
        expect(objectJson(o)).toBe(JSON.stringify(o));
      }),
      { numRuns: 400 },
    );
  });

  it('leaves out undefined fields and reuses a shared frozen Spec across tasks', () => {
    const spec = Object.freeze({ ContainerSpec: Object.freeze({ Image: 'busybox', Args: Object.freeze(['sleep', '1d']) }) });
    const a = Object.freeze({ ID: 'a', Spec: spec, Slot: 1, Gone: undefined, Status: Object.freeze({ State: 'assigned' }) });
    const b = Object.freeze({ ID: 'b', Spec: spec, Slot: 2, Status: Object.freeze({ State: 'running' }) });
    expect(objectJson(a)).toBe(JSON.stringify(a));
    expect(objectJson(b)).toBe(JSON.stringify(b));
    class WithToJson {
      toJSON(): string {
        return 'custom';
      }
    }
    expect(objectJson(new WithToJson())).toBe('"custom"');
  });
});
