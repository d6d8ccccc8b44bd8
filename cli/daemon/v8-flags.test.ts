import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shoaldV8Flags } from './v8-flags.js';

describe('shoald V8 flags', () => {
  it('keeps the young generation small unless the node command line sizes it', () => {
    const young = (flags: string[]): string[] => flags.filter((f) => f.startsWith('--semi-space'));
    expect(young(shoaldV8Flags([]))).toEqual(['--semi-space-growth-factor=1']);
    expect(young(shoaldV8Flags(['--import', 'tsx', '--enable-source-maps']))).toEqual(['--semi-space-growth-factor=1']);
    expect(young(shoaldV8Flags(['--max-semi-space-size=16']))).toEqual([]);
    expect(young(shoaldV8Flags(['--max_semi_space_size=8']))).toEqual([]);
    expect(young(shoaldV8Flags(['--min-semi-space-size', '4']))).toEqual([]);
    expect(young(shoaldV8Flags([], '--max-semi-space-size=16 --enable-source-maps'))).toEqual([]);
    expect(young(shoaldV8Flags([], '--enable-source-maps'))).toEqual(['--semi-space-growth-factor=1']);
  });

  it('tiers code up sooner unless the node command line sets the interrupt budget', () => {
    const tier = (flags: string[]): string[] => flags.filter((f) => f.startsWith('--interrupt-budget'));
    expect(tier(shoaldV8Flags([]))).toEqual(['--interrupt-budget=16384']);
    expect(tier(shoaldV8Flags(['--interrupt-budget=65536']))).toEqual([]);
    expect(tier(shoaldV8Flags(['--interrupt_budget=65536', '--max-semi-space-size=16']))).toEqual([]);
    expect(tier(shoaldV8Flags([], '--interrupt-budget=1000'))).toEqual([]);
  });

  it('caps TurboFan inlining unless the node command line sets the cap', () => {
    expect(shoaldV8Flags([])).toEqual(['--semi-space-growth-factor=1', '--interrupt-budget=16384', '--max-inlined-bytecode-size-cumulative=300']);
    expect(shoaldV8Flags(['--max-inlined-bytecode-size-cumulative=920'])).toEqual(['--semi-space-growth-factor=1', '--interrupt-budget=16384']);
    expect(shoaldV8Flags(['--max_inlined_bytecode_size_cumulative=920', '--interrupt-budget=1', '--max-semi-space-size=16'])).toEqual([]);
    expect(shoaldV8Flags([], '--max-inlined-bytecode-size-cumulative=920')).toEqual(['--semi-space-growth-factor=1', '--interrupt-budget=16384']);
  });

  it('every flag is one this node knows (an unknown one would be a startup error on the command line)', () => {
    const r = spawnSync(process.execPath, [...shoaldV8Flags([]), '-e', '0'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the flags hold when set at run time: new space stays at its initial size under allocation', () => {
    // A child node sets the flags as cli/shoald.ts does, allocates ~200 MiB of short-lived objects
    // and reports new space's size; without the flags V8 grows it to 32 MiB.
    const script = `
      const v8 = require('node:v8');
      for (const f of JSON.parse(process.argv[1])) v8.setFlagsFromString(f);
      let keep = [];
      for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50000) keep = []; }
      const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      process.stdout.write(String(ns.space_size));`;
    const run = (flags: string[]): number => {
      const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(flags)], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(0);
      return Number(r.stdout);
    };
    expect(run(shoaldV8Flags([]))).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(run([])).toBeGreaterThan(2 * 1024 * 1024);
  });
});
