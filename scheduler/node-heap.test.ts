// LeafCandidates orders only a few nodes at a time; checked here against the plain definition:
// the best node is the minimum of the nodes not dropped, by (service tasks, all tasks, number).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LeafCandidates, SelectionMarks } from './node-heap.js';

describe('LeafCandidates', () => {
  it('always offers the best remaining node, through placements and drops', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 120 }).chain((nodeCount) =>
          fc.record({
            nodeCount: fc.constant(nodeCount),
            candidates: fc.uniqueArray(fc.integer({ min: 0, max: nodeCount - 1 }), { maxLength: nodeCount, size: 'max' }),
            service: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: nodeCount, maxLength: nodeCount }),
            all: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: nodeCount, maxLength: nodeCount }),
            firstBatch: fc.integer({ min: 1, max: 20 }),
            ops: fc.array(fc.constantFrom('place', 'place', 'place', 'drop'), { maxLength: 300, size: 'max' }),
          }),
        ),
        ({ nodeCount, candidates, service, all, firstBatch, ops }) => {
          const svc = Int32Array.from(service);
          const total = Int32Array.from(all);
          const marks = new SelectionMarks(nodeCount);
          // A second leaf in the same pass shares the marks: its stamps must not confuse this one.
          new LeafCandidates(Int32Array.from(candidates), svc, total, marks, 1).best();
          const leaf = new LeafCandidates(Int32Array.from(candidates), svc, total, marks, firstBatch);
          const remaining = new Set(candidates);
          const expectedBest = () => {
            let best = -1;
            for (const n of remaining) {
              if (best < 0 || svc[n]! < svc[best]! || (svc[n] === svc[best] && (total[n]! < total[best]! || (total[n] === total[best] && n < best)))) best = n;
            }
            return best;
          };
          for (const op of ops) {
            const best = leaf.best();
            expect(best).toBe(expectedBest());
            if (best < 0) break;
            if (op === 'drop') {
              leaf.dropBest();
              remaining.delete(best);
            } else {
              svc[best]!++;
              total[best]!++;
              leaf.placedOnBest();
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
