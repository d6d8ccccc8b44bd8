// Compose values with units: Go durations ("1m30s", "500ms") → nanoseconds, sizes ("512M", "1g")
// → bytes (docker's RAMInBytes: binary multiples), CPUs ("0.5") → NanoCPUs.
import { StackError } from './errors.js';

const DURATION_UNITS_NS: Readonly<Record<string, number>> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration string (or a number of seconds, as compose also allows) → integer nanoseconds. */
export function durationNs(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.round(v * 1e9);
  if (typeof v !== 'string' || v.trim() === '') throw new StackError(`${what}: invalid duration ${JSON.stringify(v)} (use e.g. "10s", "1m30s", "500ms")`);
  const s = v.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * DURATION_UNITS_NS[m[2] as string]!;
    pos = re.lastIndex;
    if (pos >= s.length) break;
  }
  if (pos !== s.length) throw new StackError(`${what}: invalid duration ${JSON.stringify(v)} (use e.g. "10s", "1m30s", "500ms")`);
  return Math.round(total);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** A size ("512M", "1gb", "2048") → bytes. */
export function sizeBytes(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(v) : null;
  if (m === null) throw new StackError(`${what}: invalid size ${JSON.stringify(v)} (use e.g. "512M", "1G")`);
  return Math.round(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
}

/** CPUs ("0.5", 2) → NanoCPUs. */
export function nanoCpus(v: unknown, what: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d*(\.\d+)?\s*$/.test(v) && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0) throw new StackError(`${what}: invalid CPU count ${JSON.stringify(v)} (use e.g. "0.5")`);
  return Math.round(n * 1e9);
}
