// Majority arithmetic over one voter set.
import type { NodeId } from './types.js';

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The largest index that a majority of voters have durably matched. */
export function committedIndex(voters: Iterable<NodeId>, matchOf: (id: NodeId) => number): number {
  const matches: number[] = [];
  for (const id of voters) matches.push(matchOf(id));
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[quorumSize(matches.length) - 1]!;
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** Outcome of an election given the votes received so far (true = granted). */
export function voteResult(voters: Iterable<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let n = 0;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    n++;
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = quorumSize(n);
  if (granted >= q) return 'won';
  if (n - rejected < q) return 'lost';
  return 'pending';
}
