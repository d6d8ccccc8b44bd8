// The environment a launcher should give shoald; bin/shoald's first line sets the same (keep them
// in step). glibc reads these once at process start, so the daemon cannot set them on itself.
//
// MALLOC_ARENA_MAX=2: LevelDB's reads and writes (agent DB, Raft log) run on libuv's pool threads
// and V8 compiles on its worker threads; glibc gives each thread a malloc arena of its own, which
// keeps what it freed. Two arenas kept ~10 MiB less of shoald's PSS after 1,000 config writes
// (53 vs 65 MiB, medians of an A/B run), with no CPU cost per write beyond the noise.

/** Variables to add to shoald's environment (a launcher's own settings win). */
export const SHOALD_LAUNCH_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** `env` with shoald's launch variables added where `env` does not set them already. */
export function withShoaldLaunchEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const [k, v] of Object.entries(SHOALD_LAUNCH_ENV)) if (out[k] === undefined) out[k] = v;
  return out;
}
