// Raw pixel arrays to RgbImage: channel expansion, alpha compositing, and the validity checks every stage shares.
import { ImageInputError } from './errors';
import type { RgbColor, RgbImage } from './types';

/** White: what transparent pixels show unless a background is given (as Qwen-VL's `to_rgb` does). */
export const DEFAULT_BACKGROUND: RgbColor = [255, 255, 255];

/**
 * How alpha is removed: composite on this colour, or `'ignore'` to drop alpha and keep the stored colour (what
 * PIL's `convert('RGB')`, and so HF processors, do).
 */
export type AlphaBackground = RgbColor | 'ignore';

/** Pixels with alpha are blended `round((c * a + bg * (255 - a)) / 255)`, per channel, in integers. */
export function compositeRgba(rgba: ArrayLike<number>, pixelCount: number, background: AlphaBackground): Uint8Array {
  const out = new Uint8Array(pixelCount * 3);
  if (background === 'ignore') {
    for (let p = 0; p < pixelCount; p++) {
      out[p * 3] = rgba[p * 4];
      out[p * 3 + 1] = rgba[p * 4 + 1];
      out[p * 3 + 2] = rgba[p * 4 + 2];
    }
    return out;
  }
  const bg = checkColor(background, 'background');
  for (let p = 0; p < pixelCount; p++) {
    const a = rgba[p * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = rgba[p * 4 + c];
      out[p * 3 + c] = a === 255 ? v : a === 0 ? bg[c] : Math.round((v * a + bg[c] * (255 - a)) / 255);
    }
  }
  return out;
}

/**
 * An RgbImage from raw row-major pixels with 1 (gray), 3 (RGB) or 4 (RGBA) channels of integers 0..255. Alpha is
 * composited on `background` (default white). The data is copied, never aliased.
 */
export function imageFromPixels(
  data: ArrayLike<number>,
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  options: { background?: AlphaBackground } = {},
): RgbImage {
  checkSize(width, height, 'imageFromPixels');
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ImageInputError(
      'bad-pixels',
      `imageFromPixels: channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got ${String(channels)}; ` +
        'convert other layouts (gray+alpha, planar CHW) to one of these first',
    );
  }
  const expected = width * height * channels;
  if (!data || typeof data.length !== 'number' || data.length !== expected) {
    throw new ImageInputError(
      'bad-pixels',
      `imageFromPixels: a ${width}x${height} image with ${channels} channel(s) needs ${expected} values, ` +
        `got ${data && typeof data.length === 'number' ? data.length : typeof data}; check width, height and channels`,
    );
  }
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) checkByteValues(data);
  const pixels = width * height;
  if (channels === 4) return { data: compositeRgba(data, pixels, options.background ?? DEFAULT_BACKGROUND), width, height };
  const out = new Uint8Array(pixels * 3);
  if (channels === 3) {
    for (let i = 0; i < out.length; i++) out[i] = data[i];
  } else {
    for (let p = 0; p < pixels; p++) out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = data[p];
  }
  return { data: out, width, height };
}

/** A solid `width` x `height` image of one colour. */
export function solidImage(width: number, height: number, color: RgbColor): RgbImage {
  checkSize(width, height, 'solidImage');
  const [r, g, b] = checkColor(color, 'color');
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = r;
    data[i + 1] = g;
    data[i + 2] = b;
  }
  return { data, width, height };
}

/** Throws unless `image` is a well-formed, non-empty RgbImage; `what` names it in the message. */
export function assertRgbImage(image: RgbImage, what = 'image'): void {
  if (!image || typeof image !== 'object' || !(image.data instanceof Uint8Array)) {
    throw new ImageInputError(
      'bad-pixels',
      `${what}: expected an RgbImage { data: Uint8Array, width, height }, got ${describe(image)}; ` +
        'decode bytes with decodeImage() or wrap raw arrays with imageFromPixels()',
    );
  }
  checkSize(image.width, image.height, what);
  if (image.data.length !== image.width * image.height * 3) {
    throw new ImageInputError(
      'bad-pixels',
      `${what}: a ${image.width}x${image.height} RgbImage needs ${image.width * image.height * 3} bytes ` +
        `(3 per pixel), got ${image.data.length}; use imageFromPixels() for 1- or 4-channel data`,
    );
  }
}

/** Throws unless width and height are positive integers. */
export function checkSize(width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new ImageInputError(
      'bad-pixels',
      `${what}: width and height must be non-negative integers, got ${String(width)}x${String(height)}`,
    );
  }
  if (width === 0 || height === 0) {
    throw new ImageInputError('empty', `${what}: the image is empty (${width}x${height}); images need at least 1x1 pixel`);
  }
}

/** Validates an [r, g, b] colour of integers 0..255. */
export function checkColor(color: RgbColor, what: string): RgbColor {
  if (!Array.isArray(color) || color.length !== 3 || !color.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw new ImageInputError(
      'bad-pixels',
      `${what}: expected [r, g, b] with integers 0..255, got ${JSON.stringify(color)}`,
    );
  }
  return color;
}

function checkByteValues(data: ArrayLike<number>): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new ImageInputError(
        'bad-pixels',
        `imageFromPixels: values must be integers 0..255, got ${v} at index ${i}; ` +
          'for floats in 0..1 multiply by 255 and round first',
      );
    }
  }
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  const v = value as Partial<RgbImage>;
  return `{ data: ${v.data?.constructor?.name ?? typeof v.data}, width: ${v.width}, height: ${v.height} }`;
}
