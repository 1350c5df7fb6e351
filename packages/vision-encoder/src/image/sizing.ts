// Output-size arithmetic shared by the processor and the decoders: shortest-edge scaling and pixel-cap fitting.
import { ImageInputError } from './errors';

/** A size in pixels. */
export interface ImageSize {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/**
 * The size with the shorter side equal to `edge` and the aspect ratio kept, the longer side truncated toward
 * zero: `floor(edge * long / short)`, as HF's `get_resize_output_image_size(default_to_square=False)` does.
 */
export function shortestEdgeSize(width: number, height: number, edge: number): ImageSize {
  checkPositiveInteger(edge, 'shortest edge');
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const scaledLong = Math.max(1, Math.floor((edge * long) / short));
  return width <= height ? { width: edge, height: scaledLong } : { width: scaledLong, height: edge };
}

/**
 * The largest size with the same aspect ratio (each side floored, at least 1) whose area is at most
 * `maxPixels`; the input itself when it already fits.
 */
export function fitWithinPixels(width: number, height: number, maxPixels: number): ImageSize {
  checkPositiveInteger(maxPixels, 'maxPixels');
  if (width * height <= maxPixels) return { width, height };
  const scale = Math.sqrt(maxPixels / (width * height));
  let w = Math.max(1, Math.floor(width * scale));
  let h = Math.max(1, Math.floor(height * scale));
  // Float error (or the clamp to 1 for extreme aspect ratios) can leave the product over the cap.
  if (w * h > maxPixels) {
    if (w >= h) w = Math.max(1, Math.floor(maxPixels / h));
    else h = Math.max(1, Math.floor(maxPixels / w));
  }
  return { width: w, height: h };
}

export function checkPositiveInteger(value: number, what: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new ImageInputError('bad-pixels', `${what} must be a positive integer, got ${String(value)}`);
  }
}
