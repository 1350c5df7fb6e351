// Decoding PNG and JPEG into RgbImage: round trips over colour types and bit depths, alpha, and bad input.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { decodeImage, decodeImageSync } from '../src/image/decode';
import { ImageInputError } from '../src/image/errors';
import { detectImageFormat, readImageHeader } from '../src/image/header';
import { imageFromPixels } from '../src/image/pixels';
import { assemblePng, blend, crc32, encodePng, fixturePattern, pngChunk, pngParts, randomBytes, readFixture, type PngSpec } from './image-fixtures';

/** Expects `fn` to throw an ImageInputError with `code` whose message matches `pattern`. */
function expectImageError(fn: () => unknown, code: string, pattern: RegExp): ImageInputError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected an ImageInputError').toBeInstanceOf(ImageInputError);
  const err = caught as ImageInputError;
  expect(err.code).toBe(code);
  expect(err.message).toMatch(pattern);
  return err;
}

function pngjsEncode(width: number, height: number, rgba: Uint8Array | Uint16Array, colorType: 0 | 2 | 4 | 6, bitDepth: 8 | 16) {
  const png = new PNG({ width, height, bitDepth, colorType, inputColorType: 6, inputHasAlpha: true });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength) as unknown as Buffer;
  return new Uint8Array(PNG.sync.write(png, { bitDepth, colorType, inputColorType: 6, inputHasAlpha: true }));
}

describe('format detection and headers', () => {
  it('sniffs magic bytes and reads sizes without decoding', () => {
    const png = encodePng({ width: 7, height: 3, colorType: 2, bitDepth: 8, samples: new Uint8Array(63) });
    expect(detectImageFormat(png)).toBe('png');
    expect(readImageHeader(png)).toMatchObject({ format: 'png', width: 7, height: 3, bitDepth: 8, channels: 3 });
    const jpg = readFixture('progressive.jpg');
    expect(detectImageFormat(jpg)).toBe('jpeg');
    expect(readImageHeader(jpg)).toMatchObject({ format: 'jpeg', width: 16, height: 16, interlaced: true, channels: 3 });
    expect(readImageHeader(readFixture('gray.jpg'))).toMatchObject({ channels: 1, interlaced: false });
    expect(detectImageFormat(new TextEncoder().encode('GIF89a...'))).toBeNull();
  });
});

describe('PNG round trips', () => {
  it('decodes RGB and RGBA 8-bit written by pngjs (alpha on white by default)', () => {
    const w = 13;
    const h = 9;
    const rgba = randomBytes(w * h * 4, 1);
    for (let p = 0; p < w * h; p++) if (p % 3 === 0) rgba[p * 4 + 3] = 255;
    const rgbOnly = rgba.slice();
    for (let p = 0; p < w * h; p++) rgbOnly[p * 4 + 3] = 255;

    const rgbImage = decodeImageSync(pngjsEncode(w, h, rgbOnly, 2, 8));
    expect(rgbImage.width).toBe(w);
    expect(rgbImage.height).toBe(h);
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) expect(rgbImage.data[p * 3 + c]).toBe(rgba[p * 4 + c]);
    }

    const bytes = pngjsEncode(w, h, rgba, 6, 8);
    const onWhite = decodeImageSync(bytes);
    const onRed = decodeImageSync(bytes, { background: [255, 0, 0] });
    const dropped = decodeImageSync(bytes, { background: 'ignore' });
    for (let p = 0; p < w * h; p++) {
      const a = rgba[p * 4 + 3];
      for (let c = 0; c < 3; c++) {
        const v = rgba[p * 4 + c];
        expect(onWhite.data[p * 3 + c]).toBe(blend(v, a, 255));
        expect(onRed.data[p * 3 + c]).toBe(blend(v, a, c === 0 ? 255 : 0));
        expect(dropped.data[p * 3 + c]).toBe(v);
      }
    }
  });

  it('decodes 16-bit RGB, RGBA, gray and gray+alpha written by pngjs', () => {
    const w = 6;
    const h = 5;
    const rgba16 = new Uint16Array(w * h * 4);
    const rnd = randomBytes(w * h * 8, 2);
    for (let i = 0; i < rgba16.length; i++) rgba16[i] = rnd[2 * i] * 256 + rnd[2 * i + 1];
    for (let p = 0; p < w * h; p++) rgba16[p * 4 + 3] = 65535;
    // pngjs reads 16-bit input as native-endian Uint16 values; it writes them big-endian.
    const to8 = (v: number) => Math.round((v * 255) / 65535);
    const rgb = decodeImageSync(pngjsEncode(w, h, rgba16, 2, 16));
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) expect(rgb.data[i * 3 + c]).toBe(to8(rgba16[i * 4 + c]));

    // Gray: pngjs writes the luminance of RGB input; feed equal channels so gray = that value.
    const gray16 = rgba16.slice();
    for (let p = 0; p < w * h; p++) gray16[p * 4 + 1] = gray16[p * 4 + 2] = gray16[p * 4];
    for (let p = 0; p < w * h; p++) gray16[p * 4 + 3] = p % 2 === 0 ? 65535 : 0;
    const gray = decodeImageSync(pngjsEncode(w, h, gray16, 0, 16));
    const grayAlpha = decodeImageSync(pngjsEncode(w, h, gray16, 4, 16), { background: [0, 0, 0] });
    for (let p = 0; p < w * h; p++) {
      const v = to8(gray16[p * 4]);
      // Plain gray has no alpha: pngjs's encoder flattens transparent input pixels onto white.
      const flat = p % 2 === 0 ? v : 255;
      expect([gray.data[p * 3], gray.data[p * 3 + 1], gray.data[p * 3 + 2]]).toEqual([flat, flat, flat]);
      const expected = p % 2 === 0 ? v : 0;
      expect(grayAlpha.data[p * 3]).toBe(expected);
    }
  });

  it('decodes every colour type and bit depth from an independent encoder, plain and interlaced', () => {
    const w = 11;
    const h = 10;
    for (const interlace of [false, true]) {
      for (const bitDepth of [1, 2, 4, 8, 16] as const) {
        const max = 2 ** bitDepth - 1;
        const samples = Array.from({ length: w * h }, (_, i) => (i * 7 + 3) % (max + 1));
        const img = decodeImageSync(encodePng({ width: w, height: h, colorType: 0, bitDepth, samples, interlace }));
        samples.forEach((s, p) => {
          const v = Math.round((s * 255) / max);
          expect(img.data.subarray(p * 3, p * 3 + 3), `gray ${bitDepth}-bit interlace=${interlace} pixel ${p}`).toEqual(
            new Uint8Array([v, v, v]),
          );
        });
      }
      for (const bitDepth of [1, 2, 4, 8] as const) {
        const size = 2 ** bitDepth;
        const palette = Array.from({ length: size }, (_, i) => [(i * 37) % 256, (i * 91) % 256, (255 - i * 13) & 255] as [
          number,
          number,
          number,
        ]);
        const trns = palette.map((_, i) => (i % 3 === 0 ? 255 : (i * 50) % 256));
        const samples = Array.from({ length: w * h }, (_, i) => (i * 5 + 1) % size);
        const img = decodeImageSync(
          encodePng({ width: w, height: h, colorType: 3, bitDepth, samples, palette, trns, interlace }),
          { background: [10, 20, 30] },
        );
        samples.forEach((s, p) => {
          const expected = palette[s].map((v, c) => blend(v, trns[s], [10, 20, 30][c]));
          expect(Array.from(img.data.subarray(p * 3, p * 3 + 3)), `palette ${bitDepth}-bit pixel ${p}`).toEqual(expected);
        });
      }
      // RGB 16-bit with a colour key: the keyed colour becomes transparent (on white).
      const samples = Array.from({ length: w * h * 3 }, (_, i) => (i * 4099) % 65536);
      const key = [samples[0], samples[1], samples[2]];
      const img = decodeImageSync(encodePng({ width: w, height: h, colorType: 2, bitDepth: 16, samples, trns: key, interlace }));
      expect(Array.from(img.data.subarray(0, 3))).toEqual([255, 255, 255]);
      for (let i = 3; i < w * h * 3; i++) expect(img.data[i]).toBe(Math.round((samples[i] * 255) / 65535));
      // Gray+alpha 8-bit and RGBA 16-bit.
      const ga = Array.from({ length: w * h * 2 }, (_, i) => (i * 29) % 256);
      const gaImg = decodeImageSync(encodePng({ width: w, height: h, colorType: 4, bitDepth: 8, samples: ga, interlace }));
      for (let p = 0; p < w * h; p++) expect(gaImg.data[p * 3 + 1]).toBe(blend(ga[p * 2], ga[p * 2 + 1], 255));
    }
  });

  it('decodes image data split over several IDAT chunks, from bytes, Buffers and paths', async () => {
    const samples = randomBytes(20 * 8 * 3, 3);
    const bytes = encodePng({ width: 20, height: 8, colorType: 2, bitDepth: 8, samples, idatChunks: 4 });
    expect(decodeImageSync(bytes).data).toEqual(samples);
    expect(decodeImageSync(Buffer.from(bytes)).data).toEqual(samples);
    // A view into a larger buffer (byteOffset > 0).
    const padded = new Uint8Array(bytes.length + 10);
    padded.set(bytes, 5);
    expect(decodeImageSync(padded.subarray(5, 5 + bytes.length)).data).toEqual(samples);
    const dir = mkdtempSync(join(tmpdir(), 'chimera-image-'));
    const path = join(dir, 'x.png');
    writeFileSync(path, bytes);
    expect((await decodeImage(path)).data).toEqual(samples);
    expect(decodeImageSync(path).data).toEqual(samples);
  });
});

describe('JPEG', () => {
  it('round-trips a smooth image through jpeg-js at quality 100 within a small tolerance', async () => {
    const w = 40;
    const h = 24;
    const rgba = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = (y * w + x) * 4;
        rgba.set([x * 6, y * 10, 128 + Math.round(60 * Math.sin(x / 5)), 255], p);
      }
    }
    const bytes = new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 100).data);
    const img = await decodeImage(bytes);
    expect([img.width, img.height]).toEqual([w, h]);
    let maxDiff = 0;
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) maxDiff = Math.max(maxDiff, Math.abs(img.data[p * 3 + c] - rgba[p * 4 + c]));
    }
    expect(maxDiff).toBeLessThanOrEqual(4);
  });

  it.each([
    ['gray.jpg', 4],
    ['progressive.jpg', 6],
    ['subsampled-420.jpg', 14],
    ['cmyk.jpg', 8],
  ])('decodes libjpeg fixture %s near the analytic pattern', (name, tolerance) => {
    const img = decodeImageSync(readFixture(name));
    expect([img.width, img.height]).toEqual([16, 16]);
    let maxDiff = 0;
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const [r, g, b] = fixturePattern(x, y);
        const expected = name === 'gray.jpg' ? Array(3).fill(0.299 * r + 0.587 * g + 0.114 * b) : [r, g, b];
        for (let c = 0; c < 3; c++) maxDiff = Math.max(maxDiff, Math.abs(img.data[(y * 16 + x) * 3 + c] - expected[c]));
      }
    }
    expect(maxDiff).toBeLessThanOrEqual(tolerance);
    if (name === 'gray.jpg') {
      for (let p = 0; p < 256; p++) expect(img.data[p * 3]).toBe(img.data[p * 3 + 2]);
    }
  });
});

describe('raw pixels', () => {
  it('expands gray, copies RGB and composites RGBA', () => {
    expect(Array.from(imageFromPixels([0, 128, 255], 3, 1, 1).data)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255]);
    const rgb = imageFromPixels(new Uint8Array([1, 2, 3, 4, 5, 6]), 1, 2, 3);
    expect(Array.from(rgb.data)).toEqual([1, 2, 3, 4, 5, 6]);
    // Half-transparent black on white: round(255 * 127 / 255) = 127; opaque and clear pixels are exact.
    const rgba = imageFromPixels([0, 0, 0, 128, 9, 8, 7, 255, 9, 8, 7, 0], 3, 1, 4);
    expect(Array.from(rgba.data)).toEqual([127, 127, 127, 9, 8, 7, 255, 255, 255]);
    expect(Array.from(imageFromPixels([0, 0, 0, 128], 1, 1, 4, { background: [0, 0, 200] }).data)).toEqual([0, 0, 100]);
  });

  it('refuses wrong channel counts, sizes, lengths and values', () => {
    expectImageError(() => imageFromPixels([1, 2], 1, 1, 2 as 1), 'bad-pixels', /channels must be 1 \(gray\), 3 \(RGB\) or 4 \(RGBA\), got 2/);
    expectImageError(() => imageFromPixels([1, 2, 3], 2, 1, 3), 'bad-pixels', /2x1 image with 3 channel\(s\) needs 6 values, got 3/);
    expectImageError(() => imageFromPixels([], 0, 4, 3), 'empty', /empty \(0x4\)/);
    expectImageError(() => imageFromPixels([1, 2, 3], 1.5, 2, 3), 'bad-pixels', /non-negative integers, got 1\.5x2/);
    expectImageError(() => imageFromPixels([0.5, 0.2, 0.1], 1, 1, 3), 'bad-pixels', /integers 0\.\.255, got 0\.5 at index 0.*multiply by 255/);
    expectImageError(() => imageFromPixels([0, 300, 0], 1, 1, 3), 'bad-pixels', /got 300 at index 1/);
    expectImageError(() => imageFromPixels([0, NaN, 0], 1, 1, 3), 'bad-pixels', /got NaN at index 1/);
  });
});

describe('bad files', () => {
  const good = encodePng({ width: 8, height: 8, colorType: 2, bitDepth: 8, samples: randomBytes(192, 4) });

  it('names unknown formats and empty input', () => {
    expectImageError(() => decodeImageSync(new TextEncoder().encode('GIF89a0000000000')), 'unknown-format', /<16 bytes>: not a PNG or JPEG \(starts with 47 49 46 38/);
    expectImageError(() => decodeImageSync(new Uint8Array(0)), 'empty', /no data/);
    expectImageError(() => decodeImageSync([1, 2, 3] as unknown as Uint8Array), 'bad-pixels', /expected PNG\/JPEG bytes.*got Array/);
  });

  it('reports missing files with the path', async () => {
    const err = await decodeImage('/nonexistent/cat.png').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageInputError);
    expect((err as ImageInputError).code).toBe('io');
    expect((err as ImageInputError).message).toMatch(/cannot read image file '\/nonexistent\/cat\.png'/);
    expectImageError(() => decodeImageSync('/nonexistent/cat.png'), 'io', /cat\.png/);
  });

  it('names the file in decode errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'chimera-image-'));
    const path = join(dir, 'broken.png');
    writeFileSync(path, good.subarray(0, 60));
    const err = expectImageError(() => decodeImageSync(path), 'corrupt', /broken\.png: corrupt PNG/);
    expect(err.source).toBe(path);
  });

  it('refuses zero-size PNG and JPEG headers', () => {
    const zero = good.slice();
    zero.set([0, 0, 0, 0], 16); // width = 0
    expectImageError(() => decodeImageSync(zero), 'empty', /PNG is empty \(0x8\)/);
    const jpg = readFixture('gray.jpg').slice();
    const sof = findMarker(jpg, 0xc0);
    jpg.set([0, 0], sof + 3); // height = 0
    expectImageError(() => decodeImageSync(jpg), 'empty', /JPEG frame is 16x0/);
  });

  it('refuses truncated and bit-flipped files', () => {
    for (const cut of [good.length - 1, good.length - 13, 40, 33, 20, 8]) {
      expectImageError(() => decodeImageSync(good.subarray(0, cut)), 'corrupt', /corrupt PNG/);
    }
    const flipped = good.slice();
    flipped[50] ^= 0x40; // inside IDAT: the CRC no longer matches
    expectImageError(() => decodeImageSync(flipped), 'corrupt', /corrupt PNG: the 'IDAT' chunk at byte 33 fails its CRC check \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/);
    const jpg = readFixture('progressive.jpg');
    for (const cut of [jpg.length - 1, jpg.length - 2, Math.floor(jpg.length / 2), 150, 10, 3]) {
      expectImageError(() => decodeImageSync(jpg.subarray(0, cut)), 'corrupt', /corrupt JPEG/);
    }
  });

  it('refuses a PNG whose IDAT (with valid CRC) was dropped', () => {
    const bytes = encodePng({ width: 30, height: 30, colorType: 2, bitDepth: 8, samples: randomBytes(2700, 5), idatChunks: 3 });
    const chunks = splitChunks(bytes);
    const idats = chunks.filter((c) => c.type === 'IDAT');
    const without = concat([bytes.subarray(0, 8), ...chunks.filter((c) => c !== idats[1]).map((c) => c.bytes)]);
    expectImageError(() => decodeImageSync(without), 'corrupt', /corrupt PNG/);
  });

  it('bounds the inflated size: a zlib bomb in IDAT is refused at the size the header implies', () => {
    for (const interlace of [false, true]) {
      const bytes = encodePng({ width: 9, height: 9, colorType: 0, bitDepth: 8, samples: new Uint8Array(81), interlace });
      const chunks = splitChunks(bytes);
      const bomb = pngChunk('IDAT', deflateSync(new Uint8Array(1_000_000)));
      const swapped = concat([bytes.subarray(0, 8), ...chunks.map((c) => (c.type === 'IDAT' ? bomb : c.bytes))]);
      const expected = interlace ? 100 : 90; // filtered scanlines with their filter bytes
      expectImageError(() => decodeImageSync(swapped), 'corrupt', new RegExp(`image data inflates to more than the ${expected} bytes the header implies`));
    }
  });

  it('refuses unsupported JPEG codings; reads CMYK without the Adobe marker as libjpeg and PIL do', () => {
    const jpg = readFixture('gray.jpg').slice();
    jpg[findMarker(jpg, 0xc0) - 1] = 0xc9; // SOF0 -> SOF9 (arithmetic)
    expectImageError(() => decodeImageSync(jpg), 'unsupported', /arithmetic-coded.*SOF9.*re-encode/);
    const twelve = readFixture('gray.jpg').slice();
    twelve[findMarker(twelve, 0xc0) + 2] = 12;
    expectImageError(() => decodeImageSync(twelve), 'unsupported', /12-bit samples/);
    const cmyk = readFixture('cmyk.jpg');
    const app14 = findMarker(cmyk, 0xee);
    const length = (cmyk[app14] << 8) | cmyk[app14 + 1];
    const stripped = concat([cmyk.subarray(0, app14 - 2), cmyk.subarray(app14 + length)]);
    // Without the marker libjpeg assumes plain CMYK and PIL reads it as Adobe (inverted) CMYK: the same pixels as
    // the file's Adobe marker with transform 0 says.
    expect(decodeImageSync(stripped).data).toEqual(decodeImageSync(cmyk).data);
    // A 2-component frame (gray.jpg's frame header with a second component added): PIL refuses these too.
    const gray = readFixture('gray.jpg');
    const sof = findMarker(gray, 0xc0);
    const frame = gray.slice(sof - 2, sof + 11);
    frame.set([0, 14], 2);
    frame[9] = 2;
    const twoComponents = concat([gray.subarray(0, sof - 2), frame, new Uint8Array([2, 0x11, 0]), gray.subarray(sof + 9)]);
    expectImageError(() => decodeImageSync(twoComponents), 'unsupported', /2 components; only gray \(1\), YCbCr\/RGB \(3\) and CMYK\/YCCK \(4\)/);
  });
});

describe('PNG: image data that does not match its header is refused, the same way every time', () => {
  const spec: PngSpec = { width: 16, height: 12, colorType: 2, bitDepth: 8, samples: randomBytes(16 * 12 * 3, 7), filters: [0, 1, 2, 3, 4] };
  const parts = pngParts(spec); // 12 rows of 1 + 48 bytes
  const build = (raw: Uint8Array, damage: (z: Uint8Array) => Uint8Array = (z) => z) =>
    assemblePng(parts.head, damage(new Uint8Array(deflateSync(raw))));

  it('decodes every filter type exactly', () => {
    expect(parts.raw.length).toBe(588);
    expect(decodeImageSync(build(parts.raw)).data).toEqual(new Uint8Array(spec.samples as Uint8Array));
  });

  it('refuses short image data instead of filling rows from memory (another image\'s, or different each call)', () => {
    const short = build(parts.raw.subarray(0, 441)); // 9 of the 12 rows, in a valid zlib stream
    const other = encodePng({ ...spec, samples: randomBytes(576, 8) });
    const messages = new Set<string>();
    for (let i = 0; i < 5; i++) {
      decodeImageSync(other); // a previous decode's rows must not leak into the next
      const err = expectImageError(() => decodeImageSync(short), 'corrupt', /the image data inflates to 441 bytes, but the 16x12 image the header declares needs 588/);
      messages.add(err.message);
    }
    expect(messages.size).toBe(1);
  });

  it('refuses a truncated zlib stream, a bad Adler-32 checksum, invalid deflate codes and excess data', () => {
    expectImageError(() => decodeImageSync(build(parts.raw, (z) => z.subarray(0, z.length - 2))), 'corrupt', /compressed image data is cut short/);
    expectImageError(() => decodeImageSync(build(parts.raw, (z) => z.subarray(0, z.length >> 1))), 'corrupt', /compressed image data is cut short/);
    expectImageError(
      () => decodeImageSync(build(parts.raw, (z) => Object.assign(z.slice(), { [z.length - 1]: z[z.length - 1] ^ 1 }))),
      'corrupt',
      /fails its Adler-32 checksum/,
    );
    // The first deflate block header: BFINAL = 1, BTYPE = 3, a block type that does not exist.
    expectImageError(() => decodeImageSync(build(parts.raw, (z) => Object.assign(z.slice(), { 2: 0x07 }))), 'corrupt', /not a valid zlib stream \(zlib: invalid block type\)/);
    const extra = concat([parts.raw, new Uint8Array(49)]);
    expectImageError(() => decodeImageSync(build(extra)), 'corrupt', /inflates to more than the 588 bytes the header implies/);
  });

  it('refuses filter types above 4 and palette indices beyond the palette', () => {
    const raw = parts.raw.slice();
    raw[3 * 49] = 5; // row 3's filter byte
    expectImageError(() => decodeImageSync(build(raw)), 'corrupt', /row 3 has filter type 5; only 0-4 exist/);
    const palette: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
    const indexed = encodePng({ width: 4, height: 2, colorType: 3, bitDepth: 2, samples: [0, 1, 2, 3, 0, 1, 2, 2], palette });
    expectImageError(() => decodeImageSync(indexed), 'corrupt', /pixel \(3, 0\) uses palette index 3, but the PLTE chunk has 3 entries/);
  });

  it('checks chunk order and presence; skips unknown ancillary chunks, refuses unknown critical ones', () => {
    const bytes = encodePng({ ...spec, idatChunks: 2 });
    const chunks = splitChunks(bytes);
    const at = (type: string) => chunks.findIndex((c) => c.type === type);
    const rebuild = (list: Uint8Array[]) => concat([bytes.subarray(0, 8), ...list]);
    const idats = chunks.filter((c) => c.type === 'IDAT').map((c) => c.bytes);
    const others = chunks.filter((c) => c.type !== 'IDAT' && c.type !== 'IEND').map((c) => c.bytes);
    const iend = chunks[at('IEND')].bytes;
    const text = pngChunk('tEXt', new TextEncoder().encode('Comment\0hello'));
    expect(decodeImageSync(rebuild([...others, text, ...idats, text, iend])).data).toEqual(decodeImageSync(bytes).data);
    expectImageError(() => decodeImageSync(rebuild([...others, idats[0], text, idats[1], iend])), 'corrupt', /IDAT chunks must be consecutive/);
    expectImageError(() => decodeImageSync(rebuild([...others, ...idats])), 'corrupt', /ends at byte \d+ before the IEND chunk \(it is truncated\)/);
    expectImageError(() => decodeImageSync(rebuild([...others, pngChunk('ZZZZ', new Uint8Array(1)), ...idats, iend])), 'unsupported', /unknown critical chunk 'ZZZZ'/);
  });

  it('reads tRNS as PIL does where that is unambiguous, and refuses it where decoders differ', () => {
    const palette: [number, number, number][] = [[200, 0, 0], [0, 200, 0]];
    const base = { width: 2, height: 1, colorType: 3, bitDepth: 8, samples: [0, 1], palette } as const;
    // Alphas beyond the palette are never used (PIL reads the same).
    const long = decodeImageSync(encodePng({ ...base, trns: [0, 255, 7, 7] }));
    expect(Array.from(long.data)).toEqual([255, 255, 255, 0, 200, 0]);
    const parts2 = pngParts({ ...base, trns: [0] });
    const [ihdr, plte, trns] = parts2.head;
    const z = new Uint8Array(deflateSync(parts2.raw));
    expectImageError(() => decodeImageSync(assemblePng([ihdr, trns, plte], z)), 'corrupt', /the tRNS chunk at byte 33 comes before PLTE/);
    const late = concat([assemblePng([ihdr, plte], z).subarray(0, -12), pngChunk('tRNS', new Uint8Array([0])), pngChunk('IEND', new Uint8Array(0))]);
    expectImageError(() => decodeImageSync(late), 'corrupt', /the tRNS chunk at byte \d+ comes after the image data/);
    const gray = pngParts({ width: 1, height: 1, colorType: 0, bitDepth: 8, samples: [9], trns: [9] });
    const shortKey = { type: 'tRNS', data: new Uint8Array([9]) };
    expectImageError(() => decodeImageSync(assemblePng([gray.head[0], shortKey], new Uint8Array(deflateSync(gray.raw)))), 'corrupt', /holds 1 bytes; a colour key of this colour type needs 2/);
  });
});

describe('JPEG: damage libjpeg would conceal is refused', () => {
  const baseline = () => new Uint8Array(readFixture('fuzz/baseline-444.jpg'));
  const scanStart = (jpg: Uint8Array) => {
    const sos = findMarker(jpg, 0xda);
    return sos + ((jpg[sos] << 8) | jpg[sos + 1]);
  };

  it('refuses a scan whose data stops at a marker before its last block (libjpeg pads it with zero bits)', () => {
    const jpg = baseline();
    const start = scanStart(jpg);
    const cut = concat([jpg.subarray(0, start + 20), jpg.subarray(start + 80)]);
    expectImageError(() => decodeImageSync(cut), 'corrupt', /the data of scan 1 ends at marker 0xffd9 \(byte \d+\) before its last block; bytes are missing/);
  });

  it('refuses bits that are no Huffman code (libjpeg substitutes a zero)', () => {
    const jpg = baseline();
    const start = scanStart(jpg);
    jpg.set([0xff, 0x00, 0xff, 0x00, 0xff, 0x00], start); // 24 one-bits: no code is all ones
    expectImageError(() => decodeImageSync(jpg), 'corrupt', /scan 1 holds a bit sequence at byte \d+ that is no code of its Huffman table/);
  });

  it('refuses a missing restart marker (libjpeg resynchronises, dropping or inventing blocks)', () => {
    const jpg = new Uint8Array(readFixture('fuzz/restart-420.jpg'));
    const rst = findMarker(jpg, 0xd0) - 2;
    expect(decodeImageSync(jpg).width).toBe(40);
    expectImageError(() => decodeImageSync(concat([jpg.subarray(0, rst), jpg.subarray(rst + 2)])), 'corrupt', /scan 1 expects restart marker RST0 at byte \d+ but finds 0xffd1/);
  });

  it('refuses a progressive file whose scans never complete every coefficient (libjpeg would smooth the gap)', () => {
    const jpg = new Uint8Array(readFixture('fuzz/progressive-420.jpg'));
    let last = 0;
    for (let i = 2; i < jpg.length - 1; i++) if (jpg[i] === 0xff && jpg[i + 1] === 0xda) last = i;
    const dropped = concat([jpg.subarray(0, last), new Uint8Array([0xff, 0xd9])]);
    expectImageError(() => decodeImageSync(dropped), 'corrupt', /the progressive scans stop before coefficient \d+ of component \d is complete \((never coded|\d bit\(s\) short)\); scans are missing/);
  });

  it('refuses truncated files, saying when every row had already been decoded', () => {
    const jpg = baseline();
    expectImageError(() => decodeImageSync(jpg.subarray(0, jpg.length - 2)), 'corrupt', /before the end-of-image marker \(after the image data: every row had been decoded\); the file is truncated/);
    expectImageError(() => decodeImageSync(jpg.subarray(0, scanStart(jpg) + 100)), 'corrupt', /scan 1 needs more data, but the file ends at byte \d+ before the end-of-image marker; the file is truncated/);
  });

  it('refuses coefficients no 8-bit encoder produces (|coefficient x quantiser| > 2048)', () => {
    const jpg = baseline();
    const dqt = findMarker(jpg, 0xdb);
    jpg.fill(255, dqt + 3, dqt + 3 + 64); // every step of the first quantisation table: 255
    expectImageError(() => decodeImageSync(jpg), 'corrupt', /coefficient \d+ of block \(\d+, \d+\) of component id \d+ is -?\d+ after dequantisation; an 8-bit JPEG's lie within \+-2048/);
  });
});

describe('pixel cap', () => {
  it('refuses a huge header before allocating anything', () => {
    const huge = encodePng({ width: 4, height: 4, colorType: 6, bitDepth: 8, samples: new Uint8Array(64) }).slice();
    const view = new DataView(huge.buffer);
    view.setUint32(16, 100_000);
    view.setUint32(20, 100_000);
    view.setUint32(29, crc32(huge.subarray(12, 29)));
    const before = process.memoryUsage().arrayBuffers;
    expectImageError(() => decodeImageSync(huge), 'too-large', /100000x100000 = 10000\.0 MP, over the cap of 50000000.*onOversize: 'resize'/);
    expectImageError(() => decodeImageSync(huge, { onOversize: 'resize' }), 'too-large', /raise maxDecodePixels/);
    // Within the cap, the header still claims more than the bytes can hold: refused as corrupt, fast.
    view.setUint32(16, 5000);
    view.setUint32(20, 5000);
    view.setUint32(29, crc32(huge.subarray(12, 29)));
    expectImageError(() => decodeImageSync(huge), 'corrupt', /cannot hold the 5000x5000 image/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(50e6);

    const jpg = readFixture('progressive.jpg').slice();
    const sof = findMarker(jpg, 0xc2);
    jpg.set([0xff, 0xff, 0xff, 0xff], sof + 3);
    expectImageError(() => decodeImageSync(jpg), 'too-large', /JPEG is 65535x65535/);
    expectImageError(() => decodeImageSync(jpg, { maxPixels: 10_000_000_000 }), 'corrupt', /cannot hold the 65535x65535/);
  });

  it('checks maxPixels, and shrinks to fit with onOversize: resize', () => {
    const samples = randomBytes(40 * 30 * 3, 6);
    const bytes = encodePng({ width: 40, height: 30, colorType: 2, bitDepth: 8, samples });
    expectImageError(() => decodeImageSync(bytes, { maxPixels: 1000 }), 'too-large', /40x30.*over the cap of 1000 pixels/);
    const shrunk = decodeImageSync(bytes, { maxPixels: 1000, onOversize: 'resize' });
    // sqrt(1000 / 1200) = 0.9129: floor(36.5) = 36, floor(27.4) = 27, 972 <= 1000.
    expect([shrunk.width, shrunk.height]).toEqual([36, 27]);
    expect(decodeImageSync(bytes, { maxPixels: 1200 }).data).toEqual(samples);
    expectImageError(() => decodeImageSync(bytes, { maxPixels: 0 }), 'bad-pixels', /maxPixels must be a positive integer, got 0/);
    const jpg = readFixture('gray.jpg');
    expectImageError(() => decodeImageSync(jpg, { maxPixels: 255 }), 'too-large', /16x16/);
    expect(decodeImageSync(jpg, { maxPixels: 64, onOversize: 'resize' })).toMatchObject({ width: 8, height: 8 });
  });
});

function findMarker(bytes: Uint8Array, marker: number): number {
  for (let i = 2; i < bytes.length - 1; i++) if (bytes[i] === 0xff && bytes[i + 1] === marker) return i + 2;
  throw new Error(`marker ff${marker.toString(16)} not found`);
}

function splitChunks(bytes: Uint8Array): { type: string; bytes: Uint8Array }[] {
  const out: { type: string; bytes: Uint8Array }[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 8; offset < bytes.length; ) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    out.push({ type, bytes: bytes.subarray(offset, offset + 12 + length) });
    offset += 12 + length;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
