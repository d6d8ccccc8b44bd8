// Validation the control API runs before it accepts a service spec, so that a spec the scheduler
// could never honour is refused with a message instead of leaving tasks pending forever.

import { parseConstraints } from './constraints.js';
import { SchedulerError } from './errors.js';
import { parsePreferences } from './preferences.js';
import type { TaskSpec } from './types.js';

/** Throws a `SchedulerError` (ConstraintSyntaxError, PreferenceSyntaxError, …) for an impossible placement. */
export function validatePlacement(spec: TaskSpec): void {
  const placement = spec.Placement;
  parseConstraints(placement?.Constraints ?? []);
  parsePreferences(placement?.Preferences ?? []);
  const max = placement?.MaxReplicas;
  if (max !== undefined && (!Number.isInteger(max) || max < 0)) {
    throw new SchedulerError('INVALID_INPUT', `Placement.MaxReplicas must be a whole number ≥ 0, not ${max}`);
  }
  const r = spec.Resources?.Reservations;
  for (const [name, value] of [
    ['NanoCPUs', r?.NanoCPUs],
    ['MemoryBytes', r?.MemoryBytes],
  ] as const) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new SchedulerError('INVALID_INPUT', `Resources.Reservations.${name} must be ≥ 0, not ${value}`);
    }
  }
  for (const g of r?.GenericResources ?? []) {
    if (g.NamedResourceSpec !== undefined) {
      throw new SchedulerError(
        'INVALID_INPUT',
        `Resources.Reservations.GenericResources: reserve a count (${g.NamedResourceSpec.Kind}=1), not a named unit`,
      );
    }
    const d = g.DiscreteResourceSpec;
    if (d !== undefined && (!Number.isInteger(d.Value) || d.Value < 0)) {
      throw new SchedulerError('INVALID_INPUT', `Resources.Reservations.GenericResources: ${d.Kind} must be a whole number ≥ 0, not ${d.Value}`);
    }
  }
}
