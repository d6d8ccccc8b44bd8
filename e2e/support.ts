// Helpers the lab e2e suites share.
import type { SpawnSyncReturns } from 'node:child_process';

/**
 * Polls `probe` every `pollMs` until it returns a value, for at most `limitMs` (bounded in count
 * and time); a probe that throws counts as "not yet", and the last failure is in the error.
 */
export async function pollUntil<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, limitMs: number, pollMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last = '';
  for (let i = 0; i < limitMs / pollMs; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`timed out after ${limitMs} ms waiting for ${what}${last === '' ? '' : ` (last: ${last})`}`);
}

/** The stdout of a command that must have succeeded; its exit status and output otherwise. */
export function ok(r: SpawnSyncReturns<string>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
