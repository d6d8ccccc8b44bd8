// VXLAN network identifiers: one per overlay network, from 4096 up (Docker's first is 4096, the
// ingress network's), the lowest free one first. 24 bits on the wire.
import { AllocatorError } from './errors.js';

export const FIRST_VNI = 4096;
export const LAST_VNI = 2 ** 24 - 1;
/** The driver option swarm keeps a network's VNI in (`DriverState.Options`). */
export const VNI_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export class VniSet {
  private readonly used = new Set<number>();

  reserve(vni: number): boolean {
    if (!Number.isInteger(vni) || vni < FIRST_VNI || vni > LAST_VNI || this.used.has(vni)) return false;
    this.used.add(vni);
    return true;
  }

  release(vni: number): void {
    this.used.delete(vni);
  }

  has(vni: number): boolean {
    return this.used.has(vni);
  }

  /** The lowest free VNI ≥ 4096. At most used.size + 1 candidates are looked at. */
  allocate(): number {
    for (let v = FIRST_VNI, n = 0; v <= LAST_VNI && n <= this.used.size; v++, n++) {
      if (!this.used.has(v)) {
        this.used.add(v);
        return v;
      }
    }
    throw new AllocatorError('ERR_ALLOC_VNI_EXHAUSTED', `no free VXLAN ID left (${FIRST_VNI}–${LAST_VNI} are all in use): remove unused networks`);
  }
}

/** A network's VNI from its DriverState, or null when it has none yet. */
export function vniOf(options: Readonly<Record<string, string>> | undefined): number | null {
  const text = options?.[VNI_OPTION];
  if (text === undefined) return null;
  const first = Number(text.split(',')[0]);
  return Number.isInteger(first) && first >= FIRST_VNI && first <= LAST_VNI ? first : null;
}
