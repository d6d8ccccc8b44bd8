// The e2e tests run the CLI and daemons as users do, from bin/ (the compiled code in dist/). When
// dist/ is missing or older than the sources (a run of `vitest` without `npm run build`), this
// compiles just the CLI and what it imports, into the same dist/ layout `npm run build` makes.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const BUILD_TIMEOUT_MS = 240_000;

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules') newest = Math.max(newest, newestMtimeMs(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

export function ensureCliBuilt(): void {
  const built = Math.min(mtimeMs(join(REPO, 'dist', 'cli', 'shoal.js')), mtimeMs(join(REPO, 'dist', 'cli', 'shoald.js')));
  // Every part the daemon and the CLI are made of (a change in manager/ alone must rebuild too).
  const parts = ['cli', 'ca', 'manager', 'worker', 'overlay', 'proto', 'raft', 'scheduler'];
  const sources = Math.max(...parts.map((p) => newestMtimeMs(join(REPO, p))));
  if (built > sources) return;
  const r = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'e2e', 'tsconfig.cli.json')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: BUILD_TIMEOUT_MS,
  });
  if (r.status !== 0) throw new Error(`building the CLI for the e2e tests failed:\n${r.stdout}${r.stderr}`);
}
