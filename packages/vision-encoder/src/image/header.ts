// Format sniffing and header parsing (PNG IHDR, JPEG SOFn): image size known before any pixel is decoded.
import { ImageInputError } from './errors';

/** The image formats the package decodes. */
export type ImageFormat = 'png' | 'jpeg';

/** What the header says, read without decoding pixel data. */
export interface ImageHeader {
  /** Format, from the magic bytes. */
  format: ImageFormat;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** PNG: bit depth (1, 2, 4, 8, 16); JPEG: sample precision (8 or 12). */
  bitDepth: number;
  /** PNG: samples per pixel of the colour type (palette = 1); JPEG: component count. */
  channels: number;
  /** PNG: Adam7 interlacing; JPEG: progressive (SOF2). */
  interlaced: boolean;
  /** PNG colour type (0, 2, 3, 4, 6); JPEG: the SOF marker's low nibble (0 baseline, 1 extended, 2 progressive). */
  colorType: number;
  /** JPEG only: each component's horizontal and vertical sampling factors (what decoding memory depends on). */
  sampling?: { h: number; v: number }[];
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const PNG_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** 'png' or 'jpeg' from the magic bytes, or null. */
export function detectImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** Reads format and size from the header; throws ImageInputError for unknown, broken or zero-size headers. */
export function readImageHeader(bytes: Uint8Array, source = `<${bytes.length} bytes>`): ImageHeader {
  const format = detectImageFormat(bytes);
  if (format === 'png') return readPngHeader(bytes, source);
  if (format === 'jpeg') return readJpegHeader(bytes, source);
  const start = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new ImageInputError(
    bytes.length === 0 ? 'empty' : 'unknown-format',
    `${source}: not a PNG or JPEG (${bytes.length === 0 ? 'no data' : `starts with ${start}`}); ` +
      'only PNG and JPEG are decoded: convert other formats, or pass raw pixels to imageFromPixels()',
    source,
  );
}

function readPngHeader(bytes: Uint8Array, source: string): ImageHeader {
  const corrupt = (what: string) =>
    new ImageInputError('corrupt', `${source}: corrupt PNG: ${what}; the file is damaged or truncated`, source);
  if (bytes.length < 33) throw corrupt(`${bytes.length} bytes is too short for the signature and IHDR chunk`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = Array.from(bytes.subarray(12, 16), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?')).join('');
  const length = view.getUint32(8);
  if (type !== 'IHDR' || length !== 13) {
    throw corrupt(`the first chunk must be a 13-byte IHDR, found '${type}' of ${length} bytes`);
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const bitDepth = bytes[24];
  const colorType = bytes[25];
  const interlace = bytes[28];
  if (width === 0 || height === 0) {
    throw new ImageInputError('empty', `${source}: the PNG is empty (${width}x${height}); images need at least 1x1 pixel`, source);
  }
  if (width > 0x7fffffff || height > 0x7fffffff) throw corrupt(`size ${width}x${height} is over the PNG limit of 2^31-1`);
  if (!(colorType in PNG_CHANNELS)) throw corrupt(`colour type ${colorType} does not exist (0, 2, 3, 4, 6 do)`);
  if (!PNG_DEPTHS[colorType].includes(bitDepth)) {
    throw corrupt(`bit depth ${bitDepth} is not allowed for colour type ${colorType} (allowed: ${PNG_DEPTHS[colorType].join(', ')})`);
  }
  if (bytes[26] !== 0 || bytes[27] !== 0) throw corrupt(`unknown compression/filter method ${bytes[26]}/${bytes[27]}`);
  if (interlace > 1) throw corrupt(`unknown interlace method ${interlace}`);
  return { format: 'png', width, height, bitDepth, channels: PNG_CHANNELS[colorType], interlaced: interlace === 1, colorType };
}

function readJpegHeader(bytes: Uint8Array, source: string): ImageHeader {
  const corrupt = (what: string) =>
    new ImageInputError('corrupt', `${source}: corrupt JPEG: ${what}; the file is damaged or truncated`, source);
  let offset = 2;
  while (offset < bytes.length) {
    if (bytes[offset] !== 0xff) throw corrupt(`expected a marker at byte ${offset}, found 0x${bytes[offset].toString(16)}`);
    while (offset < bytes.length && bytes[offset] === 0xff) offset++; // fill bytes
    if (offset >= bytes.length) break;
    const marker = bytes[offset++];
    if (marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no payload
    if (marker === 0xd9) throw corrupt('end of image before any frame header (SOF)');
    if (marker === 0xda) throw corrupt('scan data before any frame header (SOF)');
    if (offset + 2 > bytes.length) break;
    let length = (bytes[offset] << 8) | bytes[offset + 1];
    if (length < 2) {
      // APPn, COM and DNL are skipped by length; libjpeg and PIL read a length below 2 as an empty segment.
      if (!((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe || marker === 0xdc)) {
        throw corrupt(`segment 0xff${marker.toString(16)} at byte ${offset - 2} has length ${length}`);
      }
      length = 2;
    }
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (offset + 8 > bytes.length) break;
      const bitDepth = bytes[offset + 2];
      const height = (bytes[offset + 3] << 8) | bytes[offset + 4];
      const width = (bytes[offset + 5] << 8) | bytes[offset + 6];
      const channels = bytes[offset + 7];
      if (width === 0 || height === 0) {
        throw new ImageInputError(
          'empty',
          `${source}: the JPEG frame is ${width}x${height}; zero-size (or height-by-DNL) JPEGs are not decoded`,
          source,
        );
      }
      if (offset + 8 + 3 * channels > bytes.length) throw corrupt(`the frame header (SOF) at byte ${offset - 2} is cut short`);
      const sampling = Array.from({ length: channels }, (_, i) => ({
        h: bytes[offset + 9 + 3 * i] >> 4,
        v: bytes[offset + 9 + 3 * i] & 15,
      }));
      return { format: 'jpeg', width, height, bitDepth, channels, interlaced: marker === 0xc2, colorType: marker & 0x0f, sampling };
    }
    offset += length;
  }
  throw corrupt(`no frame header (SOF) in ${bytes.length} bytes`);
}
