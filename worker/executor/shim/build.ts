// Builds the native shim (shoal-shim.c beside this file) on first use: gcc compiles it into a cache
// keyed by the hash of the source and the flags, written under a temporary name and renamed into
// place, so concurrent builders (vitest workers, two daemons) never see half a binary and a changed
// source is rebuilt. Where the binary lives, and why: ../README.md ("The native shim").
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { access, constants, mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE_NAME = 'shoal-shim.c';
/** The source's path relative to the repository root (how the compiled dist/ copy finds it). */
const SOURCE_IN_REPO = join('worker', 'executor', 'shim', SOURCE_NAME);
/** How far up from this module the repository root is looked for (dist/worker/executor/shim is 4). */
const ANCESTORS_MAX = 6;
const COMPILER = 'gcc';
const FLAGS = ['-std=gnu11', '-Wall', '-Wextra', '-O2', '-s'] as const;
const BUILD_TIMEOUT_MS = 120_000;

export class ShimBuildError extends Error {
  override readonly name = 'ShimBuildError';
  readonly code = 'ERR_SHIM_BUILD';
}

/** Where shoal-shim.c is: beside this module (TS sources), or in the repository above dist/. */
export function shimSourcePath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, SOURCE_NAME)];
  let dir = here;
  for (let i = 0; i < ANCESTORS_MAX; i++) {
    dir = dirname(dir);
    candidates.push(join(dir, SOURCE_IN_REPO));
  }
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new ShimBuildError(`the shim's source ${SOURCE_NAME} was not found (looked in ${candidates.join(', ')})`);
  return found;
}

function compile(compiler: string, args: readonly string[]): Promise<{ ok: boolean; output: string; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(compiler, args, { timeout: BUILD_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      const missing = (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
      resolve({ ok: err === null, output: `${stdout}${stderr}`.trim() || (err?.message ?? ''), missing });
    });
  });
}

async function writable(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cache key of a source: its hash and the flags', 16 hex digits. */
function shimHash(text: string): string {
  return createHash('sha256').update(text).update(FLAGS.join(' ')).digest('hex').slice(0, 16);
}

/**
 * Compiles `source` into `dir/shoal-shim-<hash>` unless that exists (under a temporary name, then
 * renamed) and returns its path. ShimBuildError when the compiler is missing or fails.
 */
export async function compileShim(source: string, dir: string, compiler: string = COMPILER): Promise<string> {
  const target = join(dir, `shoal-shim-${shimHash(readFileSync(source, 'utf8'))}`);
  if (existsSync(target)) return target;
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    // Static first (no loader, fewer pages); glibc without libc.a still builds it dynamically.
    let r = await compile(compiler, [...FLAGS, '-static', '-o', tmp, source]);
    if (!r.ok && !r.missing) r = await compile(compiler, [...FLAGS, '-o', tmp, source]);
    if (r.missing) throw new ShimBuildError(`building the container shim needs ${compiler}, which is not installed (Debian: apt-get install gcc libc6-dev; scripts/setup.sh installs them)`);
    if (!r.ok) throw new ShimBuildError(`${compiler} could not build the container shim from ${source} (Debian: apt-get install gcc libc6-dev): ${r.output}`);
    await rename(tmp, target);
    return target;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Builds under way, by source, hash and fallback directory. */
const built = new Map<string, Promise<string>>();

/**
 * The path of the compiled shim, building it when missing or stale. It is cached in `build/`
 * beside the source (one binary for tests, dist/ and labs of this checkout), or in `fallbackDir`
 * when that is not writable (a read-only installation: the executor passes its data root).
 */
export function shimBinary(fallbackDir?: string): Promise<string> {
  const source = shimSourcePath();
  const hash = shimHash(readFileSync(source, 'utf8'));
  const key = `${source}\0${hash}\0${fallbackDir ?? ''}`;
  let p = built.get(key);
  if (p === undefined) {
    p = (async () => {
      const primary = join(dirname(source), 'build');
      const cached = join(primary, `shoal-shim-${hash}`);
      if (existsSync(cached)) return cached;
      const dir = (await writable(primary)) ? primary : fallbackDir;
      if (dir === undefined || !(await writable(dir))) throw new ShimBuildError(`no writable directory to build the container shim in (${[primary, fallbackDir].filter((d) => d !== undefined).join(', ')})`);
      return compileShim(source, dir);
    })();
    // Shared while it builds only: a later call looks at the file again (a failed build is tried
    // again once gcc is there; a binary removed from the cache is built again).
    built.set(key, p);
    p.then(
      () => built.delete(key),
      () => built.delete(key),
    );
  }
  return p;
}
