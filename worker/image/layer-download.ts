// Streams one layer blob from the registry through digest checks and gunzip into the tar
// applier, and classifies what went wrong. The compressed digest is always computed over the
// whole body, even when unpacking fails early, so that a corrupt blob is reported as a digest
// mismatch rather than as a bad archive.
import { Readable, Writable, PassThrough, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DigestingStream } from './digest.js';
import { LayerFormatError } from './errors.js';
import { applyLayer, type ApplyStats } from './layer-apply.js';
import type { Descriptor, LayerCompression } from './manifest.js';
import { RegistryRequestError } from './registry-client.js';

const GUNZIP_CHUNK_BYTES = 64 << 10;

export interface UnpackResult {
  readonly stats: ApplyStats;
  readonly diffId: string;
  readonly compressedBytes: number;
}

function errText(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return e.message ?? String(err);
}

/** True for errors that say the archive is bad, as opposed to a local disk problem. */
function isFormatError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return err instanceof LayerFormatError || (typeof code === 'string' && code.startsWith('Z_'));
}

export class LocalUnpackError extends Error {
  override readonly name = 'LocalUnpackError';
}

/**
 * Reads `res` (a 2xx blob response) into `fsDir`. Throws RegistryRequestError ('truncated',
 * 'digest-mismatch'), LayerFormatError (valid blob, unusable archive) or LocalUnpackError.
 */
export async function unpackLayerResponse(
  res: Response,
  desc: Descriptor,
  compression: LayerCompression,
  expectedDiffId: string,
  fsDir: string,
  idleTimeoutMs: number,
): Promise<UnpackResult> {
  if (res.body === null) throw new RegistryRequestError('truncated', `blob ${desc.digest}: empty response`);
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  const compressed = new DigestingStream(desc.size);
  const decoder: Duplex = compression === 'gzip' ? createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES }) : new PassThrough();
  const uncompressed = new DigestingStream();
  let processingFailed = false;

  const processing = pipeline(decoder, uncompressed, async (src: AsyncIterable<Buffer>) => applyLayer(src, fsDir));
  processing.catch(() => {
    processingFailed = true;
  });

  let idle: NodeJS.Timeout | undefined;
  const armIdle = (): void => {
    if (idle !== undefined) idle.refresh();
    else
      idle = setTimeout(() => {
        body.destroy(new RegistryRequestError('truncated', `blob ${desc.digest}: no data for ${idleTimeoutMs} ms`));
      }, idleTimeoutMs);
  };
  // Forwards to the decoder with back-pressure; once unpacking failed it keeps reading (and
  // hashing) the download to its end, discarding the data.
  const forwarder = new Writable({
    highWaterMark: GUNZIP_CHUNK_BYTES,
    write(chunk: Buffer, _enc, cb) {
      armIdle();
      if (processingFailed || decoder.destroyed) {
        cb();
        return;
      }
      if (decoder.write(chunk)) {
        cb();
        return;
      }
      let called = false;
      const resume = (): void => {
        if (called) return;
        called = true;
        decoder.off('drain', resume);
        decoder.off('close', resume);
        cb();
      };
      decoder.on('drain', resume);
      decoder.on('close', resume);
    },
    final(cb) {
      if (!decoder.destroyed) decoder.end();
      cb();
    },
    destroy(err, cb) {
      if (err !== null && !decoder.destroyed) decoder.destroy(err);
      cb(err);
    },
  });

  armIdle();
  const [download, unpacked] = await Promise.allSettled([pipeline(body, compressed, forwarder), processing]);
  clearTimeout(idle);

  if (compressed.bytes > desc.size) {
    throw new RegistryRequestError('digest-mismatch', `blob ${desc.digest}: digest mismatch: the registry sent more than the ${desc.size} bytes the manifest says`);
  }
  if (download.status === 'rejected') {
    const cause = download.reason as unknown;
    if (cause instanceof RegistryRequestError) throw cause;
    throw new RegistryRequestError('truncated', `blob ${desc.digest}: download cut off after ${compressed.bytes} of ${desc.size} bytes: ${errText(cause)}`, undefined, { cause });
  }
  if (compressed.bytes < desc.size) {
    throw new RegistryRequestError('truncated', `blob ${desc.digest}: truncated: the registry sent ${compressed.bytes} of ${desc.size} bytes`);
  }
  const got = compressed.digest();
  if (got !== desc.digest) throw new RegistryRequestError('digest-mismatch', `blob ${desc.digest}: digest mismatch: received content has digest ${got}`);
  if (unpacked.status === 'rejected') {
    const cause = unpacked.reason as unknown;
    if (isFormatError(cause)) throw new LayerFormatError(`layer ${desc.digest} is not a valid ${compression === 'gzip' ? 'gzip-compressed ' : ''}tar archive: ${errText(cause)}`, { cause });
    throw new LocalUnpackError(`unpacking layer ${desc.digest}: ${errText(cause)}`, { cause });
  }
  const diffId = uncompressed.digest();
  if (diffId !== expectedDiffId) {
    throw new RegistryRequestError('digest-mismatch', `layer ${desc.digest}: digest mismatch: uncompressed content has digest ${diffId}, the image config says ${expectedDiffId}`);
  }
  return { stats: unpacked.value, diffId, compressedBytes: compressed.bytes };
}
