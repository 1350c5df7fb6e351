// Geometric framing without resampling: crops, center crops (HF's rounding), and LLaVA-style pad-to-square.
import { ImageInputError } from './errors';
import { assertRgbImage, checkColor, checkSize } from './pixels';
import type { RgbColor, RgbImage } from './types';

const BLACK: RgbColor = [0, 0, 0];

/**
 * Copies the window at (`left`, `top`) of size `width` x `height` onto a canvas filled with `fill`; parts of the
 * window outside the image stay `fill`, so the same call crops and pads.
 */
export function cropImage(
  image: RgbImage,
  left: number,
  top: number,
  width: number,
  height: number,
  fill: RgbColor = BLACK,
): RgbImage {
  assertRgbImage(image, 'cropImage');
  checkSize(width, height, `cropImage size ${width}x${height}`);
  if (!Number.isInteger(left) || !Number.isInteger(top)) {
    throw new ImageInputError('bad-pixels', `cropImage: left and top must be integers, got ${left}, ${top}`);
  }
  const [r, g, b] = checkColor(fill, 'cropImage fill');
  const out = new Uint8Array(width * height * 3);
  const x0 = Math.max(0, left);
  const x1 = Math.min(image.width, left + width);
  const y0 = Math.max(0, top);
  const y1 = Math.min(image.height, top + height);
  const covers = x0 === left && y0 === top && x1 === left + width && y1 === top + height;
  if (!covers) {
    for (let i = 0; i < out.length; i += 3) {
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
    }
  }
  if (x1 > x0) {
    for (let y = y0; y < y1; y++) {
      const from = (y * image.width + x0) * 3;
      out.set(image.data.subarray(from, from + (x1 - x0) * 3), ((y - top) * width + (x0 - left)) * 3);
    }
  }
  return { data: out, width, height };
}

/**
 * The centred `width` x `height` window, offsets floored (`(H - h) >> 1`, as HF's `center_crop`); a window
 * larger than the image pads with `fill` (default black, HF pads with zeros).
 */
export function centerCrop(image: RgbImage, width: number, height: number, fill: RgbColor = BLACK): RgbImage {
  assertRgbImage(image, 'centerCrop');
  checkSize(width, height, `centerCrop size ${width}x${height}`);
  return cropImage(image, Math.floor((image.width - width) / 2), Math.floor((image.height - height) / 2), width, height, fill);
}

/**
 * Pads the short side to make a square, the image centred with the offset floored (LLaVA's `expand2square`,
 * which fills with the processor's mean colour: see `meanColor`). A square image is returned as a copy.
 */
export function padToSquare(image: RgbImage, fill: RgbColor = BLACK): RgbImage {
  assertRgbImage(image, 'padToSquare');
  const side = Math.max(image.width, image.height);
  return cropImage(image, -Math.floor((side - image.width) / 2), -Math.floor((side - image.height) / 2), side, side, fill);
}
