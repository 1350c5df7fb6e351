/**
 * PNG decoding, written from the PNG specification (ISO/IEC 15948): chunk walk with CRC checks, one zlib stream
 * inflated into a buffer of exactly the size the header implies (Node's zlib checks the Adler-32), then
 * unfiltering (types 0-4) in place and conversion to 8-bit RGB, plain or Adam7-interlaced, at every bit depth and
 * colour type. Nothing is read that was not written: a short, overlong or damaged stream is an error, never
 * pixels from uninitialised memory.
 *
 * Conventions (unchanged from the pngjs-based decoder this replaces): 16-bit samples become
 * round(v * 255 / 65535); sub-byte gray scales to 0..255 exactly; alpha (RGBA, gray+alpha, tRNS) is composited
 * on `background` as round((c * a + bg * (255 - a)) / 255), or dropped with 'ignore'. Gamma, colour profiles and
 * APNG frames other than the default image are ignored, as PIL does.
 */
import { crc32, inflateSync } from 'node:zlib';
import { ImageInputError } from './errors';
import type { ImageHeader } from './header';
import type { AlphaBackground } from './pixels';
import { checkColor } from './pixels';
import type { RgbImage } from './types';

/** Adam7 passes: first column, first row, column step, row step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Deflate expands at most 1032:1 (a 258-byte match in 2 bits); a header claiming more is lying or truncated. */
const DEFLATE_MAX_RATIO = 1032;

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  cols: number;
  rows: number;
}

function passes(header: ImageHeader): Pass[] {
  const { width, height } = header;
  if (!header.interlaced) return [{ x0: 0, y0: 0, dx: 1, dy: 1, cols: width, rows: height }];
  return ADAM7.map(([x0, y0, dx, dy]) => ({
    x0,
    y0,
    dx,
    dy,
    cols: Math.ceil(Math.max(0, width - x0) / dx),
    rows: Math.ceil(Math.max(0, height - y0) / dy),
  })).filter((p) => p.cols > 0 && p.rows > 0);
}

function rowBytes(header: ImageHeader, cols: number): number {
  return Math.ceil((cols * header.channels * header.bitDepth) / 8);
}

/** Bytes of filtered scanlines (each with its filter-type byte) the image data must inflate to, exactly. */
export function pngInflatedSize(header: ImageHeader): number {
  return passes(header).reduce((n, p) => n + p.rows * (1 + rowBytes(header, p.cols)), 0);
}

/** Working memory of a decode, by part, for the budget check (see decode.ts). */
export function pngDecodeCost(header: ImageHeader, fileBytes: number): { label: string; bytes: number }[] {
  return [
    { label: 'inflated image data', bytes: pngInflatedSize(header) },
    { label: 'RGB output', bytes: header.width * header.height * 3 },
    { label: 'row buffer', bytes: header.width * 4 },
    // Image data split over several IDAT chunks is copied into one buffer before inflating.
    { label: 'compressed data', bytes: fileBytes },
  ];
}

/** Refuses, before any allocation, a file too small to hold what its header declares. */
export function checkPngFileSize(bytes: Uint8Array, header: ImageHeader, source: string): void {
  const inflated = pngInflatedSize(header);
  if (bytes.length * DEFLATE_MAX_RATIO + 4096 < inflated) {
    throw corrupt(
      source,
      `${bytes.length} bytes cannot hold the ${header.width}x${header.height} image the header declares ` +
        `(${inflated} bytes uncompressed, and deflate expands at most ${DEFLATE_MAX_RATIO}:1)`,
    );
  }
}

interface Chunks {
  palette: Uint8Array | null;
  trns: Uint8Array | null;
  idat: Uint8Array[];
}

/** Walks the chunks from after IHDR to IEND, checking lengths, names, CRCs and order. */
function readChunks(bytes: Uint8Array, header: ImageHeader, source: string): Chunks {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Chunks = { palette: null, trns: null, idat: [] };
  let idatState: 'before' | 'in' | 'after' = 'before';
  let offset = 8;
  for (let index = 0; ; index++) {
    if (offset + 8 > bytes.length) {
      throw corrupt(source, `the file ends at byte ${bytes.length} before the IEND chunk (it is truncated)`);
    }
    const length = view.getUint32(offset);
    const typeBytes = bytes.subarray(offset + 4, offset + 8);
    const type = chunkName(typeBytes);
    if (!typeBytes.every(isLetter)) {
      throw corrupt(source, `the chunk at byte ${offset} has type ${type}, which is not four ASCII letters`);
    }
    if (length > 0x7fffffff) throw corrupt(source, `the '${type}' chunk at byte ${offset} claims ${length} bytes (over 2^31 - 1)`);
    const end = offset + 12 + length;
    if (end > bytes.length) {
      throw corrupt(
        source,
        `the '${type}' chunk at byte ${offset} needs ${length} bytes of data but the file ends ` +
          `${bytes.length - offset - 8} bytes later (it is truncated)`,
      );
    }
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const stored = view.getUint32(offset + 8 + length);
    const computed = crc32(data, crc32(typeBytes));
    if (stored !== computed) {
      throw corrupt(
        source,
        `the '${type}' chunk at byte ${offset} fails its CRC check (stored ${hex(stored)}, computed ${hex(computed)})`,
      );
    }
    if (idatState === 'in' && type !== 'IDAT') idatState = 'after';
    switch (type) {
      case 'IHDR':
        if (index !== 0) throw corrupt(source, `a second IHDR chunk at byte ${offset}`);
        break;
      case 'PLTE':
        // Only palette images use it; for others it is a suggestion that PIL and libpng ignore, so ignore it too.
        if (header.colorType !== 3) break;
        if (idatState !== 'before') throw corrupt(source, `the PLTE chunk at byte ${offset} comes after the image data`);
        if (out.palette) throw corrupt(source, `a second PLTE chunk at byte ${offset}`);
        if (length === 0 || length % 3 !== 0 || length > 768) {
          throw corrupt(source, `the PLTE chunk at byte ${offset} holds ${length} bytes; it must be 3 bytes per entry, 1 to 256 entries`);
        }
        out.palette = data;
        break;
      case 'tRNS':
        out.trns = readTrns(header, data, out, idatState, offset, source);
        break;
      case 'IDAT':
        if (idatState === 'after') {
          throw corrupt(source, `an IDAT chunk at byte ${offset} after other chunks followed the image data (IDAT chunks must be consecutive)`);
        }
        if (header.colorType === 3 && !out.palette) throw corrupt(source, 'a palette image has no PLTE chunk before its image data');
        idatState = 'in';
        if (length > 0) out.idat.push(data);
        break;
      case 'IEND':
        if (idatState === 'before') throw corrupt(source, 'the file has no image data (no IDAT chunk before IEND)');
        return out; // bytes after IEND are ignored, as every decoder does
      default:
        // Upper-case first letter: a critical chunk this decoder does not know, so it cannot render the image.
        if (typeBytes[0] < 0x61) {
          throw new ImageInputError(
            'unsupported',
            `${source}: unsupported PNG: unknown critical chunk '${type}' at byte ${offset}; re-encode the image as a standard PNG`,
            source,
          );
        }
    }
    offset = end;
  }
}

/**
 * Transparency must come before the image data (and after PLTE), once: decoders disagree on a misplaced one
 * (libpng drops it, PIL applies it), so such a file is refused rather than read one way. Longer-than-needed data
 * is read as PIL reads it (the first value; palette alphas beyond the palette are never used).
 */
function readTrns(header: ImageHeader, data: Uint8Array, chunks: Chunks, idatState: string, offset: number, source: string): Uint8Array | null {
  if (header.colorType === 4 || header.colorType === 6) return null; // these carry alpha already
  if (idatState !== 'before') throw corrupt(source, `the tRNS chunk at byte ${offset} comes after the image data`);
  if (chunks.trns) throw corrupt(source, `a second tRNS chunk at byte ${offset}`);
  if (header.colorType === 3 && !chunks.palette) throw corrupt(source, `the tRNS chunk at byte ${offset} comes before PLTE`);
  const need = header.colorType === 0 ? 2 : header.colorType === 2 ? 6 : 0;
  if (data.length < need) {
    throw corrupt(source, `the tRNS chunk at byte ${offset} holds ${data.length} bytes; a colour key of this colour type needs ${need}`);
  }
  return data;
}

/** Inflates the image data to exactly `expected` bytes; anything else is a damaged file. */
function inflateImageData(idat: Uint8Array[], header: ImageHeader, source: string): Uint8Array {
  const expected = pngInflatedSize(header);
  const input = idat.length === 1 ? idat[0] : Buffer.concat(idat);
  let out: Buffer;
  try {
    // One output buffer of expected + 1 bytes: no doubling by concatenation, and one byte to notice excess.
    out = inflateSync(input, { chunkSize: Math.max(64, expected + 1), maxOutputLength: expected });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === 'ERR_BUFFER_TOO_LARGE') {
      throw corrupt(source, `the image data inflates to more than the ${expected} bytes the header implies`);
    }
    if (e.code === 'Z_BUF_ERROR') {
      throw corrupt(source, `the compressed image data is cut short (the zlib stream ends before its end-of-stream and checksum)`);
    }
    if (/incorrect data check/.test(e.message ?? '')) {
      throw corrupt(source, 'the compressed image data fails its Adler-32 checksum');
    }
    throw corrupt(source, `the compressed image data is not a valid zlib stream (zlib: ${e.message ?? String(err)})`);
  }
  if (out.length !== expected) {
    throw corrupt(
      source,
      `the image data inflates to ${out.length} bytes, but the ${header.width}x${header.height} image the header ` +
        `declares needs ${expected}`,
    );
  }
  return out;
}

/** Decodes a PNG whose header was already read and checked against the caps and the memory budget. */
export function decodePng(bytes: Uint8Array, header: ImageHeader, source: string, background: AlphaBackground): RgbImage {
  const chunks = readChunks(bytes, header, source);
  if (chunks.idat.length === 0) throw corrupt(source, 'the IDAT chunks hold no data');
  const data = inflateImageData(chunks.idat, header, source);
  const { width, height, bitDepth, channels } = header;
  const out = new Uint8Array(width * height * 3);
  const bg = background === 'ignore' ? null : checkColor(background, 'background');
  const convert = makeRowConverter(header, chunks, source);
  const filterStep = Math.max(1, (channels * bitDepth) >> 3); // bytes between a byte and the one it predicts from
  const rgba = new Uint8Array(width * 4);
  let pos = 0;
  passes(header).forEach((pass, passIndex) => {
    const stride = rowBytes(header, pass.cols);
    for (let r = 0; r < pass.rows; r++) {
      const filter = data[pos];
      const start = pos + 1;
      unfilter(data, start, stride, r === 0 ? -1 : start - stride - 1, filter, filterStep, () =>
        corrupt(
          source,
          `row ${r}${header.interlaced ? ` of interlace pass ${passIndex + 1}` : ''} has filter type ${filter}; only 0-4 exist`,
        ),
      );
      convert(data, start, pass.cols, rgba, pass.y0 + r * pass.dy, pass.x0, pass.dx);
      const y = pass.y0 + r * pass.dy;
      for (let i = 0, x = pass.x0; i < pass.cols; i++, x += pass.dx) {
        const o = (y * width + x) * 3;
        const a = rgba[i * 4 + 3];
        for (let c = 0; c < 3; c++) {
          const v = rgba[i * 4 + c];
          out[o + c] = bg === null || a === 255 ? v : a === 0 ? bg[c] : Math.round((v * a + bg[c] * (255 - a)) / 255);
        }
      }
      pos = start + stride;
    }
  });
  return { data: out, width, height };
}

/** Undoes one row's filter in place; `prev` is the start of the previous (already unfiltered) row, or -1. */
function unfilter(d: Uint8Array, start: number, n: number, prev: number, filter: number, bpp: number, bad: () => Error): void {
  switch (filter) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) d[start + i] = d[start + i] + d[start + i - bpp];
      return;
    case 2:
      if (prev >= 0) for (let i = 0; i < n; i++) d[start + i] = d[start + i] + d[prev + i];
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? d[start + i - bpp] : 0;
        const up = prev >= 0 ? d[prev + i] : 0;
        d[start + i] = d[start + i] + ((left + up) >> 1);
      }
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? d[start + i - bpp] : 0;
        const b = prev >= 0 ? d[prev + i] : 0;
        const c = i >= bpp && prev >= 0 ? d[prev + i - bpp] : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        d[start + i] = d[start + i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      return;
    default:
      throw bad();
  }
}

type RowConverter = (d: Uint8Array, start: number, cols: number, rgba: Uint8Array, y: number, x0: number, dx: number) => void;

/** A function that expands one unfiltered row into 8-bit RGBA, per colour type and bit depth. */
function makeRowConverter(header: ImageHeader, chunks: Chunks, source: string): RowConverter {
  const { bitDepth, colorType } = header;
  const trns = chunks.trns;
  // A sample at index k of the row, at the file's bit depth.
  const sample =
    bitDepth === 8
      ? (d: Uint8Array, s: number, k: number) => d[s + k]
      : bitDepth === 16
        ? (d: Uint8Array, s: number, k: number) => (d[s + 2 * k] << 8) | d[s + 2 * k + 1]
        : (d: Uint8Array, s: number, k: number) => {
            const bit = k * bitDepth;
            return (d[s + (bit >> 3)] >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
          };
  // Any sample to 8 bits: 16-bit rounds, 1/2/4-bit scale by 255, 85, 17.
  const to8 = bitDepth === 16 ? (v: number) => ((v * 255 + 32767) / 65535) | 0 : bitDepth === 8 ? (v: number) => v : (v: number) => (v * 255) / ((1 << bitDepth) - 1);
  const key = trns && colorType === 0 ? [(trns[0] << 8) | trns[1]] : trns && colorType === 2 ? [0, 2, 4].map((i) => (trns[i] << 8) | trns[i + 1]) : null;
  switch (colorType) {
    case 0:
      return (d, s, cols, rgba) => {
        for (let i = 0; i < cols; i++) {
          const v = sample(d, s, i);
          const g = to8(v);
          rgba[i * 4] = rgba[i * 4 + 1] = rgba[i * 4 + 2] = g;
          rgba[i * 4 + 3] = key && v === key[0] ? 0 : 255;
        }
      };
    case 2:
      return (d, s, cols, rgba) => {
        for (let i = 0; i < cols; i++) {
          const r = sample(d, s, 3 * i);
          const g = sample(d, s, 3 * i + 1);
          const b = sample(d, s, 3 * i + 2);
          rgba[i * 4] = to8(r);
          rgba[i * 4 + 1] = to8(g);
          rgba[i * 4 + 2] = to8(b);
          rgba[i * 4 + 3] = key && r === key[0] && g === key[1] && b === key[2] ? 0 : 255;
        }
      };
    case 3: {
      const palette = chunks.palette!;
      const entries = palette.length / 3;
      return (d, s, cols, rgba, y, x0, dx) => {
        for (let i = 0; i < cols; i++) {
          const k = sample(d, s, i);
          if (k >= entries) {
            throw corrupt(source, `pixel (${x0 + i * dx}, ${y}) uses palette index ${k}, but the PLTE chunk has ${entries} entries`);
          }
          rgba[i * 4] = palette[3 * k];
          rgba[i * 4 + 1] = palette[3 * k + 1];
          rgba[i * 4 + 2] = palette[3 * k + 2];
          rgba[i * 4 + 3] = trns && k < trns.length ? trns[k] : 255;
        }
      };
    }
    case 4:
      return (d, s, cols, rgba) => {
        for (let i = 0; i < cols; i++) {
          const g = to8(sample(d, s, 2 * i));
          rgba[i * 4] = rgba[i * 4 + 1] = rgba[i * 4 + 2] = g;
          rgba[i * 4 + 3] = to8(sample(d, s, 2 * i + 1));
        }
      };
    default:
      return (d, s, cols, rgba) => {
        for (let i = 0; i < 4 * cols; i++) rgba[i] = to8(sample(d, s, i));
      };
  }
}

function corrupt(source: string, what: string): ImageInputError {
  return new ImageInputError('corrupt', `${source}: corrupt PNG: ${what}; the file is damaged or truncated`, source);
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

function chunkName(b: Uint8Array): string {
  return Array.from(b, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('');
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
