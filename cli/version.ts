// Version numbers that the daemon reports and the CLI prints. The API version is the Docker Engine
// API version whose swarm subset shoald serves (see ../shared/reference/docker-api.md §1.2).

export const SHOAL_VERSION = '0.1.0';
/** The highest Docker Engine API version we serve; the docker CLI 28.x negotiates down to it. */
export const API_VERSION = '1.50';
/** The lowest API version we accept in a `/vX.Y/` path prefix (Docker's own minimum). */
export const MIN_API_VERSION = '1.24';

/** Compares two "major.minor" API versions numerically: <0, 0 or >0. */
export function compareApiVersions(a: string, b: string): number {
  const [amaj = 0, amin = 0] = a.split('.').map(Number);
  const [bmaj = 0, bmin = 0] = b.split('.').map(Number);
  return amaj !== bmaj ? amaj - bmaj : amin - bmin;
}

/** `uname -m` style machine name (what Docker prints as Architecture). */
export function machineArch(): string {
  const map: Readonly<Record<string, string>> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ia32: 'i686', s390x: 's390x', ppc64: 'ppc64le' };
  return map[process.arch] ?? process.arch;
}

/** GOARCH style architecture (what `docker version` prints in OS/Arch). */
export function goArch(): string {
  const map: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', s390x: 's390x', ppc64: 'ppc64le' };
  return map[process.arch] ?? process.arch;
}
