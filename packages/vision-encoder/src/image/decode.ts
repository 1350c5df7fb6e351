/**
 * PNG (pngjs) and JPEG (jpeg-js) bytes or files to RgbImage, chosen by magic bytes. The header is read first so
 * the pixel cap is enforced before any pixel buffer exists; both decoders also get memory limits derived from
 * the cap, and files too small to hold the pixels their header claims are refused before decoding, so a hostile
 * header can neither exhaust memory nor burn minutes decoding padding.
 *
 * Conventions: 16-bit PNG samples become round(v * 255 / 65535); alpha (RGBA, gray+alpha, palette or colour-key
 * transparency) is composited on white unless `background` says otherwise; PNG gamma and EXIF orientation are
 * ignored, as PIL does by default. Every failure is an ImageInputError naming the source.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { ImageInputError, type ImageInputErrorCode } from './errors';
import { readImageHeader, type ImageHeader } from './header';
import { compositeRgba, DEFAULT_BACKGROUND, type AlphaBackground } from './pixels';
import { resizeImage, type ResizeFilter } from './resize';
import { fitWithinPixels } from './sizing';
import type { RgbImage } from './types';

/** Default pixel cap: 50 megapixels (a 12 MP phone photo fits four times over). */
export const DEFAULT_MAX_PIXELS = 50_000_000;
/** Default ceiling for `onOversize: 'resize'`, which must hold the full image before shrinking it. */
export const DEFAULT_MAX_DECODE_PIXELS = 100_000_000;

export interface DecodeOptions {
  /** Largest width * height accepted (default DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
  /** Over the cap: 'error' (default) refuses; 'resize' decodes, then shrinks to fit, keeping the aspect ratio. */
  onOversize?: 'error' | 'resize';
  /** With 'resize': images above this are still refused (default DEFAULT_MAX_DECODE_PIXELS). */
  maxDecodePixels?: number;
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
  const resizeOversize = options.onOversize === 'resize';
  const ceiling = resizeOversize ? Math.max(maxPixels, options.maxDecodePixels ?? DEFAULT_MAX_DECODE_PIXELS) : maxPixels;
  const header = readImageHeader(bytes, source);
  checkCap(header.width, header.height, ceiling, maxPixels, resizeOversize, source, header.format);
  const background = options.background ?? DEFAULT_BACKGROUND;
  const image =
    header.format === 'png' ? decodePng(bytes, header, source, background) : decodeJpeg(bytes, header, ceiling, source);
  if (image.width * image.height <= maxPixels) return image;
  const fit = fitWithinPixels(image.width, image.height, maxPixels);
  return resizeImage(image, fit.width, fit.height, options.filter ?? 'bicubic');
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

// ---------------------------------------------------------------------------------------------------- PNG

/** Deflate expands at most 1032:1 (a 258-byte match in 2 bits); any more is a lie in the header or truncation. */
const DEFLATE_MAX_RATIO = 1032;

function decodePng(bytes: Uint8Array, header: ImageHeader, source: string, background: AlphaBackground): RgbImage {
  const { width, height } = header;
  const inflatedSize = pngInflatedSize(header);
  if (bytes.length * DEFLATE_MAX_RATIO + 4096 < inflatedSize) {
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt PNG: ${bytes.length} bytes cannot hold the ${width}x${height} image the header ` +
        `declares (${inflatedSize} bytes uncompressed); the file is truncated or its header is damaged`,
      source,
    );
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // pngjs inflates interlaced data without an output limit: bound it here first.
  if (header.interlaced) checkInterlacedInflate(buffer, inflatedSize, source);
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = PNG.sync.read(buffer, { checkCRC: true });
  } catch (err) {
    throw libraryError('PNG', source, err);
  }
  if (decoded.width !== width || decoded.height !== height || decoded.data.length !== width * height * 4) {
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt PNG: decoded ${decoded.width}x${decoded.height} with ${decoded.data.length} bytes, ` +
        `expected ${width}x${height} RGBA`,
      source,
    );
  }
  return { data: compositeRgba(decoded.data, width * height, background), width, height };
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Bytes of filtered scanlines (each with its filter-type byte) the image data inflates to. */
function pngInflatedSize(header: ImageHeader): number {
  const bitsPerPixel = header.channels * header.bitDepth;
  const rowBytes = (cols: number) => 1 + Math.ceil((cols * bitsPerPixel) / 8);
  if (!header.interlaced) return rowBytes(header.width) * header.height;
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const cols = Math.ceil(Math.max(0, header.width - x0) / dx);
    const rows = Math.ceil(Math.max(0, header.height - y0) / dy);
    if (cols > 0 && rows > 0) total += rows * rowBytes(cols);
  }
  return total;
}

function checkInterlacedInflate(buffer: Buffer, expected: number, source: string): void {
  const parts: Buffer[] = [];
  let offset = 8;
  while (offset + 12 <= buffer.length) {
    const length = buffer.readUInt32BE(offset);
    const type = buffer.toString('latin1', offset + 4, offset + 8);
    if (offset + 12 + length > buffer.length) break; // truncated: pngjs reports it
    if (type === 'IDAT') parts.push(buffer.subarray(offset + 8, offset + 8 + length));
    if (type === 'IEND') break;
    offset += 12 + length;
  }
  try {
    inflateSync(Buffer.concat(parts), { maxOutputLength: Math.max(1, expected) });
  } catch (err) {
    const tooBig = (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt PNG: the interlaced image data ` +
        (tooBig ? `inflates to more than the ${expected} bytes the header allows` : `does not inflate (${errorMessage(err)})`),
      source,
    );
  }
}

// ---------------------------------------------------------------------------------------------------- JPEG

/**
 * Huffman-coded JPEG spends at least one bit per 8x8 block of a component (its DC code), so a file holds at
 * least pixels / 512 bytes; half of that is a safe floor. Without it a few-byte file claiming 50 MP makes jpeg-js
 * decode 50 MP of zero bits read past the end before noticing; with it, work is bounded by the file size.
 */
const JPEG_MIN_BYTES_PER_PIXEL = 1 / 1024;
/** jpeg-js keeps ~4 bytes per sample of coefficients plus component lines and output: a generous bound. */
const JPEG_BYTES_PER_PIXEL_BUDGET = 48;

function decodeJpeg(bytes: Uint8Array, header: ImageHeader, ceiling: number, source: string): RgbImage {
  const { width, height, bitDepth, colorType } = header;
  if (colorType !== 0 && colorType !== 1 && colorType !== 2) {
    const kind = colorType === 3 || colorType === 7 || colorType === 11 || colorType === 15 ? 'lossless' : 'arithmetic-coded or hierarchical';
    throw new ImageInputError(
      'unsupported',
      `${source}: unsupported JPEG: ${kind} (SOF${colorType}); only baseline, extended and progressive Huffman ` +
        'JPEGs decode: re-encode the image',
      source,
    );
  }
  if (bitDepth !== 8 && bitDepth !== 12 && bitDepth !== 16) {
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt JPEG: sample precision ${bitDepth} does not exist (8, 12 or 16 do); the file is damaged`,
      source,
    );
  }
  if (bitDepth !== 8) {
    throw new ImageInputError(
      'unsupported',
      `${source}: unsupported JPEG: ${bitDepth}-bit samples; only 8-bit JPEGs decode: re-encode the image`,
      source,
    );
  }
  const minBytes = Math.floor(width * height * JPEG_MIN_BYTES_PER_PIXEL);
  if (bytes.length < minBytes) {
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt JPEG: ${bytes.length} bytes cannot hold the ${width}x${height} image the header ` +
        `declares (at least ${minBytes} bytes); the file is truncated or its header is damaged`,
      source,
    );
  }
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: ceiling / 1e6,
      maxMemoryUsageInMB: Math.ceil((ceiling * JPEG_BYTES_PER_PIXEL_BUDGET) / 2 ** 20) + 64,
    });
  } catch (err) {
    throw libraryError('JPEG', source, err);
  }
  if (decoded.width !== width || decoded.height !== height || decoded.data.length !== width * height * 3) {
    throw new ImageInputError(
      'corrupt',
      `${source}: corrupt JPEG: decoded ${decoded.width}x${decoded.height} with ${decoded.data.length} bytes, ` +
        `but the first frame header says ${width}x${height}`,
      source,
    );
  }
  return { data: decoded.data, width, height };
}

// ---------------------------------------------------------------------------------------------------- errors

function libraryError(format: 'PNG' | 'JPEG', source: string, err: unknown): ImageInputError {
  if (err instanceof ImageInputError) return err;
  const message = errorMessage(err);
  let code: ImageInputErrorCode = 'corrupt';
  if (/maxResolutionInMP|maxMemoryUsageInMB|Could not allocate|Array buffer allocation failed/i.test(message)) {
    code = 'too-large';
  } else if (/unsupported|only single frame/i.test(message)) {
    code = 'unsupported';
  }
  const what =
    code === 'corrupt'
      ? 'the file is damaged or truncated'
      : code === 'unsupported'
        ? 'the decoder cannot handle this variant; re-encode it as 8-bit RGB or gray'
        : 'decoding needs more memory than the limits derived from maxPixels; raise maxPixels if you trust the file';
  return new ImageInputError(code, `${source}: ${code} ${format}: ${what} (decoder said: ${message})`, source);
}

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
