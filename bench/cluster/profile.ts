// A summary of a V8 CPU profile (.cpuprofile, what `--cpu-prof` and the inspector's
// Profiler.stop write): self time per function and per source file, largest first, so that a
// bench run says which part of the control plane its leader spent its time in.
import { round } from '../stats.js';

export interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

export interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly ms: number;
  readonly pct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Share of samples that were not idle (program + GC + functions). */
  readonly busyPct: number;
  readonly functions: readonly SelfTime[];
  readonly files: readonly SelfTime[];
}

const IDLE = new Set(['(idle)', '(program)']);

/** The project-relative path of a script URL (node_modules kept by package name). */
export function shortFile(url: string): string {
  if (url === '') return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  for (const part of ['/manager/', '/worker/', '/raft/', '/scheduler/', '/proto/', '/ca/', '/bench/', '/cli/', '/overlay/']) {
    const i = u.lastIndexOf(part);
    if (i >= 0) return u.slice(i + 1);
  }
  return u.startsWith('node:') ? u : path_basename(u);
}

function path_basename(u: string): string {
  const i = u.lastIndexOf('/');
  return i >= 0 ? u.slice(i + 1) : u;
}

/** Self time by function and by file; `top` rows of each. */
export function summarizeProfile(profile: CpuProfile, top: number): ProfileSummary {
  // Time per sample: from timeDeltas when present (exact), else the mean interval.
  const hits = new Map<number, number>();
  if (profile.samples !== undefined && profile.timeDeltas !== undefined && profile.samples.length === profile.timeDeltas.length) {
    const s = profile.samples;
    const d = profile.timeDeltas;
    // The delta before sample i+1 is the time spent in sample i.
    for (let i = 0; i < s.length; i++) hits.set(s[i]!, (hits.get(s[i]!) ?? 0) + (d[i + 1] ?? 0) / 1000);
  } else {
    const total = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
    const per = total > 0 ? (profile.endTime - profile.startTime) / 1000 / total : 0;
    for (const n of profile.nodes) hits.set(n.id, (n.hitCount ?? 0) * per);
  }
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const n of profile.nodes) {
    const ms = hits.get(n.id) ?? 0;
    if (ms === 0) continue;
    totalMs += ms;
    const f = n.callFrame;
    if (IDLE.has(f.functionName)) {
      idleMs += f.functionName === '(idle)' ? ms : 0;
    }
    const file = f.url === '' ? f.functionName || '(native)' : shortFile(f.url);
    const fn = `${f.functionName || '(anonymous)'} ${f.url === '' ? '' : `${file}:${f.lineNumber + 1}`}`.trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
  }
  const rank = (m: Map<string, number>): SelfTime[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms: round(ms, 1), pct: totalMs > 0 ? round((100 * ms) / totalMs, 1) : 0 }));
  return { totalMs: round(totalMs, 1), busyPct: totalMs > 0 ? round((100 * (totalMs - idleMs)) / totalMs, 1) : 0, functions: rank(byFn), files: rank(byFile) };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const lines = [`  ${s.totalMs} ms sampled, ${s.busyPct} % busy`, '  by file:'];
  for (const f of s.files) lines.push(`    ${f.pct.toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`);
  lines.push('  by function:');
  for (const f of s.functions) lines.push(`    ${f.pct.toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`);
  return lines.join('\n');
}
