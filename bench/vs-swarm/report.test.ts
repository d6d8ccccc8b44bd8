import { describe, expect, it } from 'vitest';
import { latencyFigures, pairRows, paramsKey, renderTable, type Row } from './report.js';
import { daemonPssKb, parseSmapsRollup, sumFootprints } from './memory.js';

describe('bench:vs-swarm report', () => {
  const rows: Row[] = [
    { bench: 'config-writes', system: 'shoal', concurrency: 16, ops: 1000, ops_per_s: 2000, p50_ms: 7, p99_ms: 20 },
    { bench: 'config-writes', system: 'docker-swarm', concurrency: 16, ops: 1000, ops_per_s: 800, p50_ms: 18, p99_ms: 37 },
    { bench: 'config-writes', system: 'shoal', concurrency: 1, ops: 1000, ops_per_s: 600, p50_ms: 1.5, p99_ms: 3 },
    { bench: 'task-start', system: 'runc', trials: 10, p50_ms: 90, p99_ms: 120 },
    { bench: 'task-start', system: 'docker-swarm', trials: 10, p50_ms: 800, p99_ms: 900 },
    { bench: 'task-start', system: 'shoal', trials: 10, p50_ms: 400, p99_ms: 500 },
  ];

  it('keys rows by bench and parameters, not by figures or system', () => {
    expect(paramsKey(rows[0]!)).toBe('config-writes concurrency=16 ops=1000');
    expect(paramsKey(rows[0]!)).toBe(paramsKey(rows[1]!));
    expect(paramsKey(rows[2]!)).not.toBe(paramsKey(rows[0]!));
  });

  it('pairs the two systems and computes shoal/docker on the headline figure', () => {
    const lines = pairRows(rows);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ figure: 'ops_per_s', shoal: 2000, docker: 800, ratio: 2.5 });
    expect(lines[1]).toMatchObject({ shoal: 600, docker: undefined, ratio: undefined });
    expect(lines[2]).toMatchObject({ figure: 'p50_ms', shoal: 400, docker: 800, ratio: 0.5 });
  });

  it('renders one line per pair plus the runc floor', () => {
    const text = renderTable(rows);
    expect(text.split('\n')).toHaveLength(1 + 3 + 1);
    expect(text).toContain('runc floor: 90');
    expect(text).toMatch(/config-writes concurrency=16 ops=1000\s+ops_per_s\s+2000\s+800\s+2\.5\s+p99_ms=20\s+p99_ms=37$/m);
  });

  it('latency figures: median, nearest-rank p99 and max', () => {
    expect(latencyFigures([5, 1, 3, 2, 4])).toEqual({ p50_ms: 3, p99_ms: 5, max_ms: 5 });
    expect(latencyFigures([1, 2])).toEqual({ p50_ms: 1.5, p99_ms: 2, max_ms: 2 });
  });

  it('reads Pss and Rss from smaps_rollup and sums processes', () => {
    const text = '00400000-7ffd [rollup]\nRss:               10240 kB\nPss:                4096 kB\nPss_Anon:           2048 kB\n';
    expect(parseSmapsRollup(text)).toEqual({ pssKb: 4096, rssKb: 10240 });
    expect(parseSmapsRollup('nothing')).toEqual({ pssKb: 0, rssKb: 0 });
    expect(sumFootprints([{ pssKb: 1, rssKb: 2 }, { pssKb: 3, rssKb: 4 }])).toEqual({ pssKb: 4, rssKb: 6, processes: 2 });
  });

  it('the daemon part of a footprint is the PSS of the processes found at rest', () => {
    const parts = [
      { pid: 10, pssKb: 40_000, rssKb: 80_000 },
      { pid: 11, pssKb: 300, rssKb: 1_000 },
      { pid: 12, pssKb: 2_000, rssKb: 9_000 },
    ];
    expect(daemonPssKb(parts, new Set([10, 99]))).toBe(40_000);
    expect(daemonPssKb(parts, new Set())).toBe(0);
  });
});
