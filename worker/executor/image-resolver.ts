// Which image a task runs, with as few registry round trips as Docker's rules allow:
//  - a reference pinned to a digest (`repo@sha256:…`, what `docker service create` sends) or an
//    image ID names immutable content: when the store has it, no registry is asked (Docker's swarm
//    executor skips the pull in that case too);
//  - pull policy `missing`: a local copy of the reference is used as it is;
//  - otherwise the registry resolves the tag, but prepares of the same reference (and credentials)
//    share one resolution while it runs, and reuse its answer for `tagFreshMs` afterwards: a service
//    scaled to 50 replicas on one node asks the registry once, not 50 times.
// A pull that fails falls back to the local copy in the caller (runc-executor.ts), as swarm's agent does.
import { ImagePullError, type ImageConfig, type PullOptions } from '../image/index.js';

export interface ResolvedImage {
  readonly id: string;
  readonly config: ImageConfig;
}

/** The part of the image store the resolver needs. */
export interface ImageLookup {
  pull(reference: string, options?: PullOptions): Promise<{ readonly image: ResolvedImage }>;
  get(idOrReference: string): ResolvedImage | undefined;
}

export interface ImageResolverOptions {
  readonly pullPolicy: 'always' | 'missing';
  /** How long a tag resolved by a pull is reused without asking the registry again; 0: never. */
  readonly tagFreshMs: number;
  /** Most remembered resolutions (oldest dropped first). */
  readonly maxRemembered?: number;
  readonly nowMs?: () => number;
}

export type Resolution = 'local' | 'pulled' | 'shared' | 'fresh';

const DEFAULT_MAX_REMEMBERED = 256;
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
const PINNED = /@sha256:[0-9a-f]{64}$/;

/** True for an image ID or a reference that names a manifest digest: content that cannot change. */
export function isPinnedReference(reference: string): boolean {
  return IMAGE_ID.test(reference) || PINNED.test(reference);
}

export class ImageResolver {
  private readonly inflight = new Map<string, Promise<ResolvedImage>>();
  private readonly fresh = new Map<string, { readonly id: string; readonly atMs: number }>();
  private readonly now: () => number;

  constructor(
    private readonly images: ImageLookup,
    private readonly opts: ImageResolverOptions,
  ) {
    this.now = opts.nowMs ?? Date.now;
  }

  /** The image to run for `reference`, and how it was found. Pull errors propagate (the caller falls back). */
  async resolve(reference: string, options: PullOptions = {}): Promise<{ image: ResolvedImage; how: Resolution }> {
    if (this.opts.pullPolicy === 'missing' || isPinnedReference(reference)) {
      const local = this.images.get(reference);
      if (local !== undefined) return { image: local, how: 'local' };
    }
    const key = `${reference}\0${options.registryAuth ?? ''}`;
    const remembered = this.fresh.get(key);
    if (remembered !== undefined) {
      const local = this.images.get(remembered.id);
      if (local !== undefined && this.now() - remembered.atMs < this.opts.tagFreshMs) return { image: local, how: 'fresh' };
      this.fresh.delete(key);
    }
    const running = this.inflight.get(key);
    if (running !== undefined) {
      try {
        return { image: await running, how: 'shared' };
      } catch (err) {
        // A pull aborted by the other prepare's caller says nothing about ours: pull ourselves.
        if (!(err instanceof ImagePullError && err.code === 'ERR_IMAGE_ABORTED') || options.signal?.aborted === true) throw err;
      }
    }
    const pull = this.images.pull(reference, options).then((r) => r.image);
    this.inflight.set(key, pull);
    try {
      const image = await pull;
      this.remember(key, image.id);
      return { image, how: 'pulled' };
    } finally {
      if (this.inflight.get(key) === pull) this.inflight.delete(key);
    }
  }

  private remember(key: string, id: string): void {
    if (this.opts.tagFreshMs <= 0) return;
    this.fresh.delete(key);
    this.fresh.set(key, { id, atMs: this.now() });
    const max = this.opts.maxRemembered ?? DEFAULT_MAX_REMEMBERED;
    for (const oldest of this.fresh.keys()) {
      if (this.fresh.size <= max) break;
      this.fresh.delete(oldest);
    }
  }
}
