// The platform this worker runs, in OCI terms, and choosing from a manifest list / OCI index.

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
}

/** Node's `process.arch` → OCI/Go architecture names (GOARCH). */
const ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};

export function hostPlatform(): Platform {
  const architecture = ARCH[process.arch] ?? process.arch;
  let variant: string | undefined;
  if (architecture === 'arm64') variant = 'v8';
  if (architecture === 'arm') {
    const v = (process.config.variables as { arm_version?: string }).arm_version;
    variant = v !== undefined ? `v${v}` : 'v7';
  }
  return { os: 'linux', architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant !== undefined ? `/${p.variant}` : ''}`;
}

/**
 * Picks the best entry for `want` among `candidates`: same os and architecture required; an exact
 * variant beats a missing one (arm64 without a variant means v8), and for arm an older variant
 * runs on a newer CPU (v6 on v7), preferring the newest that fits, as containerd's matcher does.
 */
export function choosePlatform<T extends { readonly platform?: Platform | undefined }>(candidates: readonly T[], want: Platform): T | undefined {
  let best: T | undefined;
  let bestScore = -1;
  for (const c of candidates) {
    const p = c.platform;
    if (p === undefined || p.os !== want.os || p.architecture !== want.architecture) continue;
    const score = variantScore(p.architecture, p.variant, want.variant);
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

function variantScore(arch: string, have: string | undefined, want: string | undefined): number {
  const norm = (v: string | undefined): string | undefined => (arch === 'arm64' && v === undefined ? 'v8' : v);
  const h = norm(have);
  const w = norm(want);
  if (h === w) return 100;
  if (h === undefined || w === undefined) return 50;
  if (arch === 'arm') {
    const hn = Number(h.slice(1));
    const wn = Number(w.slice(1));
    if (hn < wn) return 10 + hn; // runs, newer is better
  }
  return -1;
}
