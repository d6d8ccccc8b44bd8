// V8 settings shoald applies to itself before it loads anything else (cli/shoald.ts), so they hold
// whichever way the daemon is started (bin/shoald, systemd, `shoal lab`, tests).
//
// The young generation: V8 grows each of new space's two semi-spaces from 1 MiB up to 16 MiB
// (Node 20, 64-bit) under allocation, and keeps them until its memory reducer notices the process
// is idle. For shoald that was 16–32 MiB of a ~90 MiB PSS right after any burst of work (a task
// start, a batch of writes), and at 50 or 150 running tasks. With a growth factor of 1 they stay at
// 1 MiB: more frequent (and shorter) scavenges. Measured A/B (cli/README.md, "Memory"): 14 MiB
// less at rest after work, 13 at 50 tasks, 18–25 during writes; task start unchanged, CPU per
// config write the same within the noise (0.62 vs 0.59 ms, 1.21 vs 1.14 ms in two A/B sets).
// The old generation is left at V8's default limit (a quarter of RAM, at most 4 GiB here), so a big
// cluster's store never meets an artificially low ceiling.
//
// Tier-up: V8 optimizes a function once it has run through an interrupt budget of bytecode
// (67,584 by default in Node 20). A control-API write runs a few hundred small functions once
// each, so a fresh shoald spent 2-3x its steady CPU per config write for its first ~3,500 writes
// (900 → 350 µs at c=16, batches of 500). With a budget of 16,384 it is at its steady cost after
// ~1,000 writes; the first 500 cost more (more is compiled, on V8's background threads), the
// total over the first 2,000 about the same; PSS the same (bench/store/README.md, session 5).
//
// Inlining: TurboFan inlines callees into a function it optimizes up to 920 bytes of bytecode in
// all (V8's default); the bigger graph is what its compile threads spend their time on. In
// bench:cluster (a fresh manager's first service of 10,000 tasks), compiling was ~70 % of the
// managers' non-main-thread CPU and ~30 % of the leader's total — far more than GC (perf,
// cpu-clock samples by thread, manager/store/README.md session 6). A cap of 300 cut the compile
// threads' time by ~35–40 % on leader and followers, and the warmed-up store path was not slower
// (bench:store-apply --ab-v8). `--max-inlined-bytecode-size-cumulative=…` on the command line wins.

/** Flags the node command line may already carry that size the young generation: then we leave it alone. */
const YOUNG_GENERATION_FLAGS = ['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor', '--max-new-space-size'];
const TIER_UP_FLAG = '--interrupt-budget';
const TIER_UP_BUDGET = 16_384;
const INLINING_FLAG = '--max-inlined-bytecode-size-cumulative';
const INLINING_CUMULATIVE = 300;

/**
 * The V8 flags to set at run time, given the node command line's own flags (`process.execArgv`)
 * and NODE_OPTIONS (whose flags are not in execArgv).
 */
export function shoaldV8Flags(execArgv: readonly string[], nodeOptions = ''): string[] {
  // V8 takes `--max_semi_space_size` as well as `--max-semi-space-size`.
  const names = [...execArgv, ...nodeOptions.split(/\s+/)].map((a) => a.split('=')[0]!.replace(/_/g, '-'));
  const sized = names.some((n) => YOUNG_GENERATION_FLAGS.includes(n));
  return [
    ...(sized ? [] : ['--semi-space-growth-factor=1']),
    ...(names.includes(TIER_UP_FLAG) ? [] : [`${TIER_UP_FLAG}=${TIER_UP_BUDGET}`]),
    ...(names.includes(INLINING_FLAG) ? [] : [`${INLINING_FLAG}=${INLINING_CUMULATIVE}`]),
  ];
}
