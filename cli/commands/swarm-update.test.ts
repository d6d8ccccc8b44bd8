// `shoal swarm update`'s duration flags (--cert-expiry, --dispatcher-heartbeat) take Go's duration
// forms, as docker's do, and go to the API in nanoseconds.
import { describe, expect, it } from 'vitest';

import { CliError } from '../errors.js';
import { parseGoDurationNs } from './swarm.js';

describe('parseGoDurationNs', () => {
  it("reads docker's duration forms", () => {
    expect(parseGoDurationNs('2160h0m0s')).toBe(2160 * 3600e9);
    expect(parseGoDurationNs('5s')).toBe(5e9);
    expect(parseGoDurationNs('1h30m')).toBe(5400e9);
    expect(parseGoDurationNs('500ms')).toBe(500e6);
    expect(parseGoDurationNs('1.5s')).toBe(1.5e9);
    expect(parseGoDurationNs('0')).toBe(0);
  });

  it('refuses what is not a duration, naming it', () => {
    for (const bad of ['', '5', 'five seconds', '5s junk', '-5s']) {
      expect(() => parseGoDurationNs(bad)).toThrow(CliError);
    }
    expect(() => parseGoDurationNs('10x')).toThrow('invalid duration "10x" (e.g. 2160h0m0s, 5s)');
  });
});
