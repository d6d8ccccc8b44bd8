// Placement preferences: `spread=node.labels.<key>` (or `engine.labels.<key>`), applied in order.
// Each one splits the nodes by the label's value; a node without the label falls under the value "".

import { PreferenceSyntaxError } from './errors.js';
import type { PlacementPreference, SchedulerNode } from './types.js';

export interface SpreadOver {
  readonly source: 'node.labels' | 'engine.labels';
  readonly label: string;
}

const PREFIXES = [
  ['node.labels.', 'node.labels'],
  ['engine.labels.', 'engine.labels'],
] as const;

/** Parses a `SpreadDescriptor`; throws `PreferenceSyntaxError` for anything but a node or engine label. */
export function parseSpreadDescriptor(descriptor: string): SpreadOver {
  const trimmed = descriptor.trim();
  const lower = trimmed.toLowerCase();
  for (const [prefix, source] of PREFIXES) {
    if (lower.startsWith(prefix) && trimmed.length > prefix.length) {
      return { source, label: trimmed.slice(prefix.length) };
    }
  }
  throw new PreferenceSyntaxError(descriptor, 'spread over node.labels.<label> or engine.labels.<label>');
}

/** Parses every preference; throws on the first that is not a valid spread. */
export function parsePreferences(preferences: readonly PlacementPreference[]): SpreadOver[] {
  return preferences.map((p) => {
    if (p.Spread === undefined) throw new PreferenceSyntaxError('', 'only Spread preferences exist');
    return parseSpreadDescriptor(p.Spread.SpreadDescriptor);
  });
}

export function spreadValue(node: SchedulerNode, over: SpreadOver): string {
  const labels = over.source === 'node.labels' ? node.Spec.Labels : node.Description?.Engine?.Labels;
  return labels?.[over.label] ?? '';
}
