// Query-string decoding the way the Docker daemon does it (../shared/reference/docker-api.md §1.5):
// booleans in two dialects, `filters` as JSON in map or array form, `version` as a decimal integer.
import { InvalidArgumentError } from './errors.js';

/** moby's httputils.BoolValue: false only for absent, "", "0", "no", "false", "none" (any case). */
export function boolValue(query: URLSearchParams, name: string): boolean {
  const raw = query.get(name);
  if (raw === null) return false;
  const v = raw.trim().toLowerCase();
  return !(v === '' || v === '0' || v === 'no' || v === 'false' || v === 'none');
}

const PARSE_BOOL_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const PARSE_BOOL_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Go's strconv.ParseBool, used for status, insertDefaults and the swarm/update rotate flags. */
export function parseBoolParam(query: URLSearchParams, name: string, fallback = false): boolean {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  if (PARSE_BOOL_TRUE.has(raw)) return true;
  if (PARSE_BOOL_FALSE.has(raw)) return false;
  throw new InvalidArgumentError(`invalid value for ${name}: strconv.ParseBool: parsing "${raw}": invalid syntax`);
}

/** Decoded `filters`: key → values (map form `{"name":{"web":true}}` or array form `{"name":["web"]}`). */
export type Filters = ReadonlyMap<string, readonly string[]>;

export function parseFilters(query: URLSearchParams): Filters {
  const raw = query.get('filters');
  const out = new Map<string, string[]>();
  if (raw === null || raw.trim() === '') return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`invalid filter: ${raw}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`invalid filter: ${raw}`);
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(value)) {
      out.set(key, value.map((v) => String(v)));
    } else if (value !== null && typeof value === 'object') {
      out.set(
        key,
        Object.entries(value as Record<string, unknown>)
          .filter(([, on]) => on === true)
          .map(([v]) => v),
      );
    } else {
      throw new InvalidArgumentError(`invalid filter: ${raw}`);
    }
  }
  return out;
}

/** Fails with Docker's `invalid filter 'x'` when a key is not one the endpoint supports. */
export function checkFilterKeys(filters: Filters, allowed: readonly string[]): void {
  for (const key of filters.keys()) {
    if (!allowed.includes(key)) throw new InvalidArgumentError(`invalid filter '${key}'`);
  }
}

/** The `version` query parameter of every update call: the object's current Version.Index. */
export function versionParam(query: URLSearchParams): number {
  const raw = query.get('version');
  if (raw === null || !/^\d+$/.test(raw)) throw new InvalidArgumentError(`invalid version '${raw ?? ''}': an update needs the object's current Version.Index`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`invalid version '${raw}'`);
  return n;
}
