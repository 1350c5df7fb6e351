// The one error type audio input throws, with a machine-readable code next to a message for people (the sibling
// of vision's ImageInputError).

/** Why audio was refused. */
export type AudioInputErrorCode =
  | 'unknown-format' // not a RIFF/WAVE file (RIFX, RF64 and other containers included)
  | 'corrupt' // the container is broken or truncated: chunk sizes past the end, a data chunk cut short, bad fmt
  | 'unsupported-format' // a WAV format code other than PCM (1) and IEEE float (3), or a bit depth they do not define
  | 'empty' // no samples
  | 'too-short' // fewer samples than an operation needs (the log-mel frontend's reflect padding)
  | 'too-large' // over the decoded-size cap
  | 'bad-samples' // NaN, Inf, out-of-range floats, or raw PCM arrays of mismatched lengths
  | 'bad-sample-rate' // not an integer, or outside the accepted range
  | 'bad-channels' // zero, or more channels than the cap
  | 'io'; // the file could not be read

/**
 * Thrown for every clip that cannot be used. `source` names the file (its path, or `<N bytes>` for a buffer) so a
 * failure inside a dataset loop says which item was bad; the message starts with it too.
 */
export class AudioInputError extends Error {
  /** Always 'AudioInputError'. */
  override readonly name = 'AudioInputError';
  /**
   * @param code Why the audio was refused.
   * @param message What was expected, what was found, and what to do.
   * @param source The file path, or `<N bytes>` for a buffer.
   */
  constructor(
    readonly code: AudioInputErrorCode,
    message: string,
    readonly source?: string,
  ) {
    super(source === undefined ? message : `${source}: ${message}`);
  }
}
