// Image platform vs node platform. Docker reports a node's architecture the way `uname -m` does
// (`x86_64`, `aarch64`) while image indexes say `amd64`, `arm64`: both spellings name one thing.

import type { Platform } from './types.js';

const ARCH_ALIASES: Readonly<Record<string, string>> = { x86_64: 'amd64', aarch64: 'arm64' };

export function normalizeArch(arch: string): string {
  const lower = arch.toLowerCase();
  return ARCH_ALIASES[lower] ?? lower;
}

/** True when the node's platform is one the image supports; an empty field in the image's entry matches anything. */
export function platformSupported(imagePlatforms: readonly Platform[], node: Platform | undefined): boolean {
  if (imagePlatforms.length === 0) return true;
  if (node === undefined) return false;
  const nodeOs = (node.OS ?? '').toLowerCase();
  const nodeArch = normalizeArch(node.Architecture ?? '');
  return imagePlatforms.some((p) => {
    const os = (p.OS ?? '').toLowerCase();
    const arch = p.Architecture === undefined || p.Architecture === '' ? '' : normalizeArch(p.Architecture);
    return (os === '' || os === nodeOs) && (arch === '' || arch === nodeArch);
  });
}

const SHOWN_PLATFORMS_MAX = 4;

/** `linux/amd64, linux/arm64` — at most a few, for a refusal a person reads. */
export function formatPlatforms(platforms: readonly Platform[]): string {
  const shown = platforms.slice(0, SHOWN_PLATFORMS_MAX).map((p) => `${p.OS || '*'}/${p.Architecture || '*'}`);
  const more = platforms.length - shown.length;
  return more > 0 ? `${shown.join(', ')} and ${more} more` : shown.join(', ');
}
