// The one error type image input throws, with a machine-readable code next to a message for people.

/** Why an image was refused. */
export type ImageInputErrorCode =
  | 'unknown-format' // neither PNG nor JPEG magic bytes
  | 'corrupt' // the container or compressed data is broken or truncated
  | 'unsupported' // valid but uses a feature the decoder lacks (arithmetic JPEG, CMYK without Adobe marker, ...)
  | 'empty' // zero width or height
  | 'too-large' // over the pixel cap
  | 'bad-pixels' // raw pixel arrays of the wrong size, channel count or values
  | 'io'; // the file could not be read

/**
 * Thrown for every image that cannot be used. `source` names the file (its path, or `<N bytes>` for a buffer)
 * so a failure inside a dataset loop says which item was bad.
 */
export class ImageInputError extends Error {
  /** Always 'ImageInputError'. */
  override readonly name = 'ImageInputError';
  /**
   * @param code Why the image was refused.
   * @param message What was expected, what was found, and what to do.
   * @param source The file path, or `<N bytes>` for a buffer.
   */
  constructor(
    readonly code: ImageInputErrorCode,
    message: string,
    readonly source?: string,
  ) {
    super(message);
  }
}
