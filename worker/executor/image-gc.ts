// Periodic garbage collection of the image store for a worker: images no task of this executor
// holds (prepared, running, exited and not yet removed — adopted containers included) and that were
// not used within `keepUsedWithinMs` are removed with the layers no other image needs. The store
// also keeps whatever is mounted, so a root under a running container never loses a layer.
import { pino, type Logger } from 'pino';
import type { GcOptions, GcResult } from '../image/index.js';

export interface ImageGcOptions {
  readonly images: { gc(inUse: Iterable<string>, options?: GcOptions): Promise<GcResult> };
  /** Image IDs (or references) still needed: RuncExecutor.imagesInUse. */
  readonly inUse: () => Iterable<string>;
  /** Time between runs; default 10 minutes. */
  readonly intervalMs?: number;
  /** Images pulled or unmounted less than this long ago stay; default 1 hour. */
  readonly keepUsedWithinMs?: number;
  readonly logger?: Logger;
}

const DEFAULT_INTERVAL_MS = 10 * 60_000;
const DEFAULT_KEEP_USED_WITHIN_MS = 60 * 60_000;

export class ImageGarbageCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<GcResult | undefined> = Promise.resolve(undefined);
  private readonly log: Logger;

  constructor(private readonly opts: ImageGcOptions) {
    this.log = (opts.logger ?? pino({ name: 'image-gc', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ component: 'image-gc' });
  }

  /** Runs every intervalMs until stop(); the first run comes after one interval. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.runOnce(), this.opts.intervalMs ?? DEFAULT_INTERVAL_MS);
    this.timer.unref();
  }

  /** One collection (runs never overlap); failures are logged, not thrown. */
  runOnce(): Promise<GcResult | undefined> {
    this.running = this.running.then(async () => {
      try {
        const result = await this.opts.images.gc(this.opts.inUse(), { keepUsedWithinMs: this.opts.keepUsedWithinMs ?? DEFAULT_KEEP_USED_WITHIN_MS });
        if (result.removedImages.length + result.removedLayers.length > 0) this.log.info({ images: result.removedImages.length, layers: result.removedLayers.length }, 'removed unused images');
        return result;
      } catch (err) {
        this.log.warn({ err }, 'image gc failed');
        return undefined;
      }
    });
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
