// Typed errors of the image store. A pull failure names the image as the user wrote it and the
// cause, because the task controller copies the message into the task's REJECTED status.

export type ImagePullErrorCode =
  | 'ERR_IMAGE_NOT_FOUND'
  | 'ERR_IMAGE_UNAUTHORIZED'
  | 'ERR_IMAGE_DIGEST_MISMATCH'
  | 'ERR_IMAGE_BLOB_TRUNCATED'
  | 'ERR_IMAGE_REGISTRY_UNREACHABLE'
  | 'ERR_IMAGE_REGISTRY'
  | 'ERR_IMAGE_BAD_MANIFEST'
  | 'ERR_IMAGE_NO_MATCHING_PLATFORM'
  | 'ERR_IMAGE_UNSUPPORTED'
  | 'ERR_IMAGE_BAD_LAYER'
  | 'ERR_IMAGE_ABORTED'
  | 'ERR_IMAGE_INVALID_REFERENCE'
  | 'ERR_IMAGE_BAD_CREDENTIALS'
  | 'ERR_IMAGE_LOCAL';

export class ImagePullError extends Error {
  override readonly name = 'ImagePullError';
  constructor(
    readonly code: ImagePullErrorCode,
    /** The reference as the user gave it (e.g. `busybox:1.36`). */
    readonly image: string,
    /** What went wrong, without the image name. */
    readonly causeText: string,
    options?: { cause?: unknown },
  ) {
    super(`pull ${image}: ${causeText}`, options);
  }
}

export class InvalidReferenceError extends Error {
  override readonly name = 'InvalidReferenceError';
  readonly code = 'ERR_IMAGE_INVALID_REFERENCE';
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super(`invalid image reference ${JSON.stringify(reference)}: ${reason}`);
  }
}

export type ImageStoreErrorCode =
  | 'ERR_IMAGE_NOT_PRESENT'
  | 'ERR_IMAGE_MOUNT'
  | 'ERR_IMAGE_TOO_MANY_LAYERS'
  | 'ERR_IMAGE_STORE';

export class ImageStoreError extends Error {
  override readonly name = 'ImageStoreError';
  constructor(
    readonly code: ImageStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A layer archive that cannot be applied (bad tar, path escaping the layer, unknown entry type). */
export class LayerFormatError extends Error {
  override readonly name = 'LayerFormatError';
  readonly code = 'ERR_IMAGE_LAYER_FORMAT';
}
