// Assignment messages as the agent reads them, by hand: the dispatcher writes every assignment as
// JSON bytes (`task_json`, `secret_json`, `config_json`, `network_json`; see
// proto/shoal/dispatcher.proto), so the agent needs, per change, only which kind it is, whether it
// is a removal, and where its JSON lies in the message. The generated decoder built an
// AssignmentChange, an Assignment and a oneof object per change and kept a recursion counter on its
// reader; this reads the same fields (assignment-reader.test.ts checks it against the generated
// decoder) into one small object per change. The typed members of the oneof (`task`, `secret`,
// `config`: fields 1–3) are not sent by any Shoal manager and are skipped, as the agent ignored them.
import { AssignmentAction, AssignmentsMessage_Type } from '../../proto/gen/shoal/dispatcher.js';
import { ProtoReader as Reader } from '../../proto/wire.js';

/** Which JSON member of `Assignment.item` a change carries. */
export type AssignedJsonKind = 'taskJson' | 'secretJson' | 'configJson' | 'networkJson';

export interface ReadChange {
  readonly kind: AssignedJsonKind;
  readonly remove: boolean;
  /** The object's JSON, a view into the message's buffer (no copy). */
  readonly json: Buffer;
}

export interface ReadAssignments {
  readonly type: AssignmentsMessage_Type;
  readonly appliesTo: string;
  readonly resultsIn: string;
  readonly changes: ReadChange[];
  readonly more: boolean;
}

const KINDS: readonly (AssignedJsonKind | null)[] = [null, null, null, null, 'taskJson', 'secretJson', 'configJson', 'networkJson'];

/** One AssignmentChange (its bytes end at `end`): null when it carries no JSON member. */
function readChange(r: Reader, end: number): ReadChange | null {
  const outer = r.end;
  r.end = end;
  let kind: AssignedJsonKind | null = null;
  let json: Buffer | null = null;
  let action = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) {
      // Assignment{oneof item}: the last member present wins (as the generated decoder's oneof).
      const aEnd = r.delimited();
      const aOuter = r.end;
      r.end = aEnd;
      while (r.pos < r.end) {
        const t = r.uint32();
        const field = t >>> 3;
        if ((t & 7) === 2 && field >= 1 && field <= 7) {
          const jEnd = r.delimited();
          const k = KINDS[field]!;
          kind = k;
          json = k === null ? null : r.buf.subarray(r.pos, jEnd);
          r.pos = jEnd;
        } else r.skip(t);
      }
      r.end = aOuter;
    } else if (tag === 16) action = r.int32();
    else r.skip(tag);
  }
  r.end = outer;
  if (kind === null || json === null) return null;
  return { kind, remove: action === AssignmentAction.ASSIGNMENT_ACTION_REMOVE, json };
}

/** AssignmentsMessage from its bytes; changes without a JSON member are left out. */
export function readAssignments(buf: Buffer): ReadAssignments {
  const r = new Reader(buf);
  let type: AssignmentsMessage_Type = AssignmentsMessage_Type.TYPE_COMPLETE;
  let appliesTo = '';
  let resultsIn = '';
  let more = false;
  const changes: ReadChange[] = [];
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 8) type = r.int32();
    else if (tag === 18) appliesTo = r.string();
    else if (tag === 26) resultsIn = r.string();
    else if (tag === 34) {
      const end = r.delimited();
      const c = readChange(r, end);
      r.pos = end;
      if (c !== null) changes.push(c);
    } else if (tag === 40) more = r.bool();
    else r.skip(tag);
  }
  return { type, appliesTo, resultsIn, changes, more };
}
