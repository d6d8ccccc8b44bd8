// Memory of a system's processes: PSS and RSS from /proc/PID/smaps_rollup, summed over the
// processes of a host's network namespace (a daemon and its per-task helpers; the containers
// themselves have namespaces of their own and are not counted).
import { readFileSync } from 'node:fs';
import { runCommand } from '../../cli/lab/sys.js';

export interface Footprint {
  readonly pssKb: number;
  readonly rssKb: number;
  readonly processes: number;
}

/** The `Pss:` and `Rss:` lines (kB) of a smaps_rollup text; 0 when absent. */
export function parseSmapsRollup(text: string): { pssKb: number; rssKb: number } {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m === null ? 0 : Number(m[1]);
  };
  return { pssKb: field('Pss'), rssKb: field('Rss') };
}

export function sumFootprints(parts: readonly { pssKb: number; rssKb: number }[]): Footprint {
  return parts.reduce<Footprint>((a, p) => ({ pssKb: a.pssKb + p.pssKb, rssKb: a.rssKb + p.rssKb, processes: a.processes + 1 }), { pssKb: 0, rssKb: 0, processes: 0 });
}

/** PIDs whose network namespace is `netns`. */
export async function netnsPids(netns: string): Promise<number[]> {
  const r = await runCommand('ip', ['netns', 'pids', netns]);
  return r.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

export interface ProcessFootprint {
  readonly pid: number;
  readonly pssKb: number;
  readonly rssKb: number;
}

/** The footprint of each process in these namespaces (processes that vanish are skipped). */
export async function processFootprints(namespaces: readonly string[]): Promise<ProcessFootprint[]> {
  const parts: ProcessFootprint[] = [];
  for (const ns of namespaces) {
    for (const pid of await netnsPids(ns)) {
      try {
        parts.push({ pid, ...parseSmapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')) });
      } catch {
        /* exited meanwhile */
      }
    }
  }
  return parts;
}

/** The summed footprint of every process in these namespaces (processes that vanish are skipped). */
export async function footprintOf(namespaces: readonly string[]): Promise<Footprint> {
  return sumFootprints(await processFootprints(namespaces));
}

/**
 * PSS (kB) of the processes in `daemonPids` — the processes found in the namespace at rest with no
 * tasks, i.e. the system's daemons; the rest of a footprint is per-task helpers.
 */
export function daemonPssKb(parts: readonly ProcessFootprint[], daemonPids: ReadonlySet<number>): number {
  return parts.filter((p) => daemonPids.has(p.pid)).reduce((a, p) => a + p.pssKb, 0);
}
