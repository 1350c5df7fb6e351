/**
 * PNG and JPEG bytes or files to RgbImage, chosen by magic bytes. Both decoders are this package's own (png.ts,
 * jpeg.ts): they refuse damaged files instead of guessing, and give the same pixels for the same bytes every time.
 *
 * Resource bounds, all checked from the header before any pixel buffer exists: the pixel cap (`maxPixels`), a
 * floor on the file size for the frame it claims, and the memory budget (`maxDecodeBytes`), which counts every
 * large buffer the decode would allocate (inflated data, planes, coefficients, output, the oversize shrink).
 *
 * Conventions: 16-bit PNG samples become round(v * 255 / 65535); alpha (RGBA, gray+alpha, palette or colour-key
 * transparency) is composited on white unless `background` says otherwise; PNG gamma and EXIF orientation are
 * ignored, as PIL does by default. JPEG pixels are libjpeg's (what PIL gives). Every failure is an
 * ImageInputError naming the source.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ImageInputError } from './errors';
import { readImageHeader, type ImageHeader } from './header';
import { checkJpegHeader, decodeJpeg, jpegDecodeCost } from './jpeg';
import { DEFAULT_BACKGROUND, type AlphaBackground } from './pixels';
import { checkPngFileSize, decodePng, pngDecodeCost } from './png';
import { resizeImage, type ResizeFilter } from './resize';
import { fitWithinPixels } from './sizing';
import type { RgbImage } from './types';

/** Default pixel cap: 50 megapixels (a 12 MP phone photo fits four times over). */
export const DEFAULT_MAX_PIXELS = 50_000_000;
/** Default ceiling for `onOversize: 'resize'`, which must hold the full image before shrinking it. */
export const DEFAULT_MAX_DECODE_PIXELS = 100_000_000;
/**
 * Default memory budget of one decode: 256 MiB. A 12 MP photo needs about 40-150 MB (JPEG baseline to 16-bit
 * PNG), a 24 MP 4:2:0 JPEG about 110 MB (180 MB progressive); a hostile 400 KB PNG claiming 50 MP of 16-bit
 * RGBA would need 550 MB and is refused before allocating.
 */
export const DEFAULT_MAX_DECODE_BYTES = 256 * 2 ** 20;

/**
 * Options of {@link decodeImage} and {@link decodeImageSync}: the pixel cap, the memory budget, oversize handling and
 * alpha.
 */
export interface DecodeOptions {
  /** Largest width * height accepted (default DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
  /** Over the cap: 'error' (default) refuses; 'resize' decodes, then shrinks to fit, keeping the aspect ratio. */
  onOversize?: 'error' | 'resize';
  /** With 'resize': images above this are still refused (default DEFAULT_MAX_DECODE_PIXELS). */
  maxDecodePixels?: number;
  /**
   * Memory budget of one decode, in bytes (default DEFAULT_MAX_DECODE_BYTES, 256 MiB): images whose decoding
   * would allocate more are refused from their header, before any allocation. `Infinity` turns the check off.
   */
  maxDecodeBytes?: number;
  /** Filter for the oversize shrink (default 'bicubic'). */
  filter?: ResizeFilter;
  /** Colour transparent pixels are composited on (default white), or 'ignore' to drop alpha. */
  background?: AlphaBackground;
}

/** Decodes a PNG or JPEG from bytes or a file path. */
export async function decodeImage(input: Uint8Array | string, options: DecodeOptions = {}): Promise<RgbImage> {
  if (typeof input === 'string') {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(input);
    } catch (err) {
      throw ioError(input, err);
    }
    return decodeBytes(bytes, input, options);
  }
  return decodeImageSync(input, options);
}

/** The synchronous form (for `Modality.prepare`, which is synchronous). */
export function decodeImageSync(input: Uint8Array | string, options: DecodeOptions = {}): RgbImage {
  if (typeof input === 'string') {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(input);
    } catch (err) {
      throw ioError(input, err);
    }
    return decodeBytes(bytes, input, options);
  }
  if (!(input instanceof Uint8Array)) {
    throw new ImageInputError(
      'bad-pixels',
      `decodeImage: expected PNG/JPEG bytes (Uint8Array or Buffer) or a file path, got ${describeInput(input)}; ` +
        'for raw pixel arrays use imageFromPixels()',
    );
  }
  return decodeBytes(input, `<${input.length} bytes>`, options);
}

function decodeBytes(bytes: Uint8Array, source: string, options: DecodeOptions): RgbImage {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isInteger(maxPixels) || maxPixels <= 0) {
    throw new ImageInputError('bad-pixels', `decodeImage: maxPixels must be a positive integer, got ${String(maxPixels)}`);
  }
  const budget = options.maxDecodeBytes ?? DEFAULT_MAX_DECODE_BYTES;
  if (typeof budget !== 'number' || !(budget > 0)) {
    throw new ImageInputError(
      'bad-pixels',
      `decodeImage: maxDecodeBytes must be a positive number of bytes (or Infinity), got ${String(budget)}`,
    );
  }
  const resizeOversize = options.onOversize === 'resize';
  const ceiling = resizeOversize ? Math.max(maxPixels, options.maxDecodePixels ?? DEFAULT_MAX_DECODE_PIXELS) : maxPixels;
  const header = readImageHeader(bytes, source);
  checkCap(header.width, header.height, ceiling, maxPixels, resizeOversize, source, header.format);
  if (header.format === 'png') checkPngFileSize(bytes, header, source);
  else checkJpegHeader(bytes, header, source);
  const fit = header.width * header.height > maxPixels ? fitWithinPixels(header.width, header.height, maxPixels) : null;
  const cost = header.format === 'png' ? pngDecodeCost(header, bytes.length) : jpegDecodeCost(header);
  // The shrink keeps the decoded image and allocates its horizontal pass (new width x old height) and result.
  if (fit) cost.push({ label: 'shrink to maxPixels', bytes: 3 * fit.width * (header.height + fit.height) });
  checkBudget(cost, budget, header, source);
  const image =
    header.format === 'png'
      ? decodePng(bytes, header, source, options.background ?? DEFAULT_BACKGROUND)
      : decodeJpeg(bytes, source);
  if (!fit) return image;
  return resizeImage(image, fit.width, fit.height, options.filter ?? 'bicubic');
}

function checkBudget(cost: { label: string; bytes: number }[], budget: number, header: ImageHeader, source: string): void {
  const total = cost.reduce((n, c) => n + c.bytes, 0);
  if (total <= budget) return;
  const mb = (n: number) =>
    n >= 1e7 ? `${(n / 1e6).toFixed(0)} MB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} bytes`;
  const parts = cost.filter((c) => c.bytes > 0).map((c) => `${c.label} ${mb(c.bytes)}`).join(' + ');
  throw new ImageInputError(
    'too-large',
    `${source}: decoding this ${header.width}x${header.height} ${describeHeader(header)} needs about ${mb(total)} ` +
      `(${parts}), over the decode memory budget maxDecodeBytes = ${budget} (${mb(budget)}); raise maxDecodeBytes ` +
      "(an option of decodeImage, ImageProcessor and the image modality's input) if you trust the file and have the " +
      'memory, or downscale the image',
    source,
  );
}

function describeHeader(h: ImageHeader): string {
  if (h.format === 'jpeg') return `${h.interlaced ? 'progressive' : 'sequential'} JPEG with ${h.channels} component(s)`;
  const kinds: Record<number, string> = { 0: 'gray', 2: 'RGB', 3: 'palette', 4: 'gray+alpha', 6: 'RGBA' };
  return `${h.bitDepth}-bit ${kinds[h.colorType] ?? ''} ${h.interlaced ? 'interlaced ' : ''}PNG`;
}

function checkCap(
  width: number,
  height: number,
  ceiling: number,
  maxPixels: number,
  resizeOversize: boolean,
  source: string,
  format: string,
): void {
  if (width * height <= ceiling) return;
  const mp = (n: number) => `${(n / 1e6).toFixed(1)} MP`;
  const advice = resizeOversize
    ? `raise maxDecodePixels (now ${ceiling}) if you trust the file`
    : `raise maxPixels (now ${maxPixels}) or pass onOversize: 'resize' to shrink it`;
  throw new ImageInputError(
    'too-large',
    `${source}: the ${format.toUpperCase()} is ${width}x${height} = ${mp(width * height)}, over the cap of ` +
      `${ceiling} pixels; ${advice}`,
    source,
  );
}

// ---------------------------------------------------------------------------------------------------- errors

function ioError(path: string, err: unknown): ImageInputError {
  return new ImageInputError('io', `cannot read image file '${path}': ${errorMessage(err)}`, path);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeInput(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  return (value as object).constructor?.name ?? 'object';
}
