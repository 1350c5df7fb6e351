/**
 * Native-resolution sizing (Wang et al. 2024, "Qwen2-VL: Enhancing Vision-Language Model's Perception of the
 * World at Any Resolution"): an image keeps roughly its own size and aspect ratio, rounded so both sides are
 * multiples of patchSize * mergeSize, with the pixel count kept inside [minPixels, maxPixels]. This is the rule
 * of Qwen2-VL's `smart_resize`, rewritten: round each side to the nearest multiple (ties to even, as Python's
 * round does); if that is over maxPixels, scale both sides by sqrt(maxPixels / area) and round down; if under
 * minPixels, scale up by sqrt(minPixels / area) and round up. One deviation: where the reference would
 * return a 0 side (a side under half a factor with minPixels 0), that side becomes one factor. Like the
 * reference, scaling up to minPixels can overshoot maxPixels by the rounding when the two bounds are close.
 */

/** Qwen2-VL's defaults: 14-pixel patches merged 2x2, so sides are multiples of 28. */
export const QWEN2VL_PATCH_SIZE = 14;
/** Qwen2-VL merges 2x2 patches into one token. */
export const QWEN2VL_MERGE_SIZE = 2;
/** `smart_resize`'s default bounds: 56*56 pixels up to 1280 merged tokens of 28*28 pixels. */
export const QWEN2VL_MIN_PIXELS = 56 * 56;
/** `smart_resize`'s default upper bound: 1280 merged tokens of 28x28 pixels. */
export const QWEN2VL_MAX_PIXELS = 14 * 14 * 4 * 1280;
/** Images more elongated than this are refused (as Qwen2-VL does): they would give degenerate grids. */
export const MAX_ASPECT_RATIO = 200;

/** What to do with an image over the pixel cap: refuse it, or scale it down to fit. */
export type OversizePolicy = 'error' | 'resize';

/** Options of {@link smartResize} and {@link nativeGeometry} (Qwen2-VL's native resolution). */
export interface NativeResolutionOptions {
  /** ViT patch side in pixels (default 14). */
  patchSize?: number;
  /** Side of the square of patches merged into one token afterwards (default 2; 1 for no merge). */
  mergeSize?: number;
  /** Lower bound on the processed pixel count (default 56*56). */
  minPixels?: number;
  /** Upper bound on the processed pixel count (default 14*14*4*1280). */
  maxPixels?: number;
  /** Over maxPixels: scale down (default, Qwen2-VL's behaviour) or throw. */
  onOversize?: OversizePolicy;
}

/** The processed size, patch grid and token grid of one native-resolution image, from {@link nativeGeometry}. */
export interface NativeGeometry {
  /** Processed size in pixels: multiples of patchSize * mergeSize. */
  height: number;
  /** Processed width in pixels (a multiple of patchSize * mergeSize). */
  width: number;
  /** ViT patch grid of the processed image (before merging). */
  patchGrid: { rows: number; cols: number };
  /** Token grid after merging mergeSize x mergeSize patches. */
  tokenGrid: { rows: number; cols: number };
}

/** Python's round(): to the nearest integer, ties to the even one (70 / 28 = 2.5 -> 2). */
function roundHalfEven(numerator: number, denominator: number): number {
  const quotient = Math.floor(numerator / denominator);
  const twiceRemainder = 2 * (numerator - quotient * denominator);
  if (twiceRemainder > denominator) return quotient + 1;
  if (twiceRemainder < denominator) return quotient;
  return quotient % 2 === 0 ? quotient : quotient + 1;
}

function positiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`smartResize: ${name} must be a positive integer, got ${value}`);
  }
}

/**
 * The processed size of a `height` x `width` image: both sides multiples of patchSize * mergeSize, the area in
 * [minPixels, maxPixels], the aspect ratio kept as closely as the rounding allows; no side is ever 0.
 */
export function smartResize(
  height: number,
  width: number,
  options: NativeResolutionOptions = {},
): { height: number; width: number } {
  const patchSize = options.patchSize ?? QWEN2VL_PATCH_SIZE;
  const mergeSize = options.mergeSize ?? QWEN2VL_MERGE_SIZE;
  const minPixels = options.minPixels ?? QWEN2VL_MIN_PIXELS;
  const maxPixels = options.maxPixels ?? QWEN2VL_MAX_PIXELS;
  positiveInteger(height, 'height');
  positiveInteger(width, 'width');
  positiveInteger(patchSize, 'patchSize');
  positiveInteger(mergeSize, 'mergeSize');
  const factor = patchSize * mergeSize;
  if (!(minPixels >= 0) || !(maxPixels >= factor * factor) || minPixels > maxPixels) {
    throw new Error(
      `smartResize: need 0 <= minPixels <= maxPixels and maxPixels >= (patchSize*mergeSize)^2 = ${factor * factor}, ` +
        `got minPixels ${minPixels}, maxPixels ${maxPixels}`,
    );
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new Error(
      `smartResize: a ${width}x${height} image has aspect ratio ${ratio.toFixed(1)}:1, over the ${MAX_ASPECT_RATIO}:1 ` +
        `limit; crop it or pad it towards a squarer shape first`,
    );
  }
  let h = roundHalfEven(height, factor) * factor;
  let w = roundHalfEven(width, factor) * factor;
  if (h * w > maxPixels) {
    if ((options.onOversize ?? 'resize') === 'error') {
      throw new Error(
        `smartResize: a ${width}x${height} image needs ${w}x${h} = ${w * h} pixels at native resolution, over maxPixels ` +
          `${maxPixels}; downscale it, raise maxPixels, or pass onOversize: 'resize' to scale it down to fit`,
      );
    }
    // Same operation order as the reference so the float rounding agrees.
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  if (h === 0 || w === 0) {
    // Only with minPixels 0: a side under half a factor rounds to 0 (the reference returns it); use one factor.
    h = Math.max(h, factor);
    w = Math.max(w, factor);
    if (h * w > maxPixels) {
      throw new Error(
        `smartResize: a ${width}x${height} image is too thin for maxPixels ${maxPixels}: one ${factor}-pixel row ` +
          `already makes ${w}x${h} pixels; pad it towards a squarer shape or raise maxPixels`,
      );
    }
  }
  return { height: h, width: w };
}

/** The processed size, the ViT patch grid and the token grid after merging, for a native-resolution image. */
export function nativeGeometry(height: number, width: number, options: NativeResolutionOptions = {}): NativeGeometry {
  const patchSize = options.patchSize ?? QWEN2VL_PATCH_SIZE;
  const mergeSize = options.mergeSize ?? QWEN2VL_MERGE_SIZE;
  const size = smartResize(height, width, options);
  const patchGrid = { rows: size.height / patchSize, cols: size.width / patchSize };
  return { ...size, patchGrid, tokenGrid: { rows: patchGrid.rows / mergeSize, cols: patchGrid.cols / mergeSize } };
}
