import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHOALD_LAUNCH_ENV, withShoaldLaunchEnv } from './launch-env.js';

describe('shoald launch environment', () => {
  it('adds the malloc settings and keeps what the caller set', () => {
    expect(withShoaldLaunchEnv({ PATH: '/bin' })).toEqual({ PATH: '/bin', MALLOC_ARENA_MAX: '2' });
    expect(withShoaldLaunchEnv({ MALLOC_ARENA_MAX: '8' })).toEqual({ MALLOC_ARENA_MAX: '8' });
  });

  it('bin/shoald sets the same variables on its first line', () => {
    const first = readFileSync(join(import.meta.dirname, '..', '..', 'bin', 'shoald'), 'utf8').split('\n')[0];
    const vars = Object.entries(SHOALD_LAUNCH_ENV).map(([k, v]) => `${k}=${v}`);
    expect(first).toBe(`#!/usr/bin/env -S ${vars.join(' ')} node`);
  });
});
