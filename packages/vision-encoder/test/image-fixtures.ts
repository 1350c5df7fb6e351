// Test fixtures for image input: a small independent PNG encoder (every colour type, bit depth, tRNS, Adam7,
// filter types 0-4) with access to its chunks and raw scanlines, and the analytic pattern the committed JPEG
// fixtures encode.
import { deflateSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const readFixture = (name: string): Uint8Array => readFileSync(join(FIXTURES, name));

/** The 16x16 pattern in test/fixtures/*.jpg (see reference/make_jpeg_fixtures.py). */
export function fixturePattern(x: number, y: number): [number, number, number] {
  return [8 * x + 4, 8 * y + 4, 128 + 4 * (x - y)];
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One PNG chunk: length, type, data, CRC over type + data. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export interface PngSpec {
  width: number;
  height: number;
  colorType: 0 | 2 | 3 | 4 | 6;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  /** Row-major samples at the native depth, `channels` per pixel (palette: one index per pixel). */
  samples: ArrayLike<number>;
  palette?: [number, number, number][];
  /** tRNS: palette alphas, a gray sample, or an [r, g, b] sample. */
  trns?: number[];
  interlace?: boolean;
  /** Split the compressed data over this many IDAT chunks (default 1). */
  idatChunks?: number;
  /** Filter type of each scanline, cycling (default [0]: none). */
  filters?: number[];
}

/** A PNG taken apart: the chunks before and after the image data, and the filtered scanlines it compresses. */
export interface PngParts {
  head: { type: string; data: Uint8Array }[];
  /** Filtered scanlines, each led by its filter-type byte, passes in Adam7 order when interlaced. */
  raw: Uint8Array;
}

const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

/** Encodes a PNG from the spec (filter type 0 on every row unless `filters` says otherwise); independent of pngjs. */
export function encodePng(spec: PngSpec): Uint8Array {
  const parts = pngParts(spec);
  return assemblePng(parts.head, deflateSync(parts.raw), spec.idatChunks ?? 1);
}

/** The chunks and raw scanlines `encodePng` would write. */
export function pngParts(spec: PngSpec): PngParts {
  const { width, height, colorType, bitDepth, samples } = spec;
  const channels = CHANNELS[colorType];
  const filters = spec.filters ?? [0];
  const bpp = Math.max(1, (channels * bitDepth) >> 3);
  let rowIndex = 0;
  const rowsOf = (xs: number[], ys: number[]): number[] => {
    const bytes: number[] = [];
    let prev: number[] | null = null;
    for (const y of ys) {
      const line: number[] = [];
      let acc = 0;
      let bits = 0;
      for (const x of xs) {
        for (let c = 0; c < channels; c++) {
          const v = samples[(y * width + x) * channels + c];
          if (bitDepth === 16) line.push(v >> 8, v & 0xff);
          else if (bitDepth === 8) line.push(v);
          else {
            acc = (acc << bitDepth) | v;
            bits += bitDepth;
            if (bits === 8) {
              line.push(acc);
              acc = 0;
              bits = 0;
            }
          }
        }
      }
      if (bits > 0) line.push(acc << (8 - bits));
      const filter = filters[rowIndex++ % filters.length];
      bytes.push(filter, ...filterRow(line, prev, filter, bpp));
      prev = line;
    }
    return bytes;
  };
  const range = (start: number, end: number, step: number) => {
    const out: number[] = [];
    for (let i = start; i < end; i += step) out.push(i);
    return out;
  };
  let raw: number[] = [];
  if (spec.interlace) {
    for (const [x0, y0, dx, dy] of ADAM7) {
      const xs = range(x0, width, dx);
      const ys = range(y0, height, dy);
      if (xs.length > 0 && ys.length > 0) raw = raw.concat(rowsOf(xs, ys));
    }
  } else {
    raw = rowsOf(range(0, width, 1), range(0, height, 1));
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([bitDepth, colorType, 0, 0, spec.interlace ? 1 : 0], 8);
  const head = [{ type: 'IHDR', data: ihdr }];
  if (spec.palette) head.push({ type: 'PLTE', data: new Uint8Array(spec.palette.flat()) });
  if (spec.trns) {
    const t = spec.trns;
    head.push({ type: 'tRNS', data: new Uint8Array(colorType === 3 ? t : t.flatMap((v) => [v >> 8, v & 0xff])) });
  }
  return { head, raw: new Uint8Array(raw) };
}

/** Filters one scanline (the PNG spec's five predictors); `prev` is the previous unfiltered line of the pass. */
function filterRow(line: number[], prev: number[] | null, filter: number, bpp: number): number[] {
  return line.map((x, i) => {
    const a = i >= bpp ? line[i - bpp] : 0;
    const b = prev ? prev[i] : 0;
    const c = prev && i >= bpp ? prev[i - bpp] : 0;
    let predicted = 0;
    if (filter === 1) predicted = a;
    else if (filter === 2) predicted = b;
    else if (filter === 3) predicted = (a + b) >> 1;
    else if (filter === 4) {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    return (x - predicted) & 0xff;
  });
}

/** Signature + `head` chunks + the compressed data over `pieces` IDAT chunks + IEND. */
export function assemblePng(head: { type: string; data: Uint8Array }[], compressed: Uint8Array, pieces = 1): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const c of head) parts.push(pngChunk(c.type, c.data));
  const step = Math.max(1, Math.ceil(compressed.length / pieces));
  for (let i = 0; i < compressed.length; i += step) parts.push(pngChunk('IDAT', compressed.subarray(i, i + step)));
  if (compressed.length === 0) parts.push(pngChunk('IDAT', compressed));
  parts.push(pngChunk('IEND', new Uint8Array(0)));
  return concatBytes(parts);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32), for fixtures that must not depend on test order. */
export function randomBytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0 || 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** Blends like the decoder should: round((c * a + bg * (255 - a)) / 255). */
export function blend(c: number, a: number, bg: number): number {
  return Math.round((c * a + bg * (255 - a)) / 255);
}
