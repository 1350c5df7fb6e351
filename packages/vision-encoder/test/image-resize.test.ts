// Resizing, cropping and padding: PIL / torch references, invariants, and hand-checked geometry.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTorchScript, torchAvailable } from '@chimera/core/testing';
import { resizeImage, type ResizeFilter } from '../src/image/resize';
import { centerCrop, cropImage, padToSquare } from '../src/image/crop-pad';
import { fitWithinPixels, shortestEdgeSize } from '../src/image/sizing';
import { ImageInputError } from '../src/image/errors';
import { solidImage } from '../src/image/pixels';
import type { RgbImage } from '../src/image/types';
import { randomBytes } from './image-fixtures';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'reference', 'resize_reference.py');

function image(width: number, height: number, f: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = f(x, y, c);
  return { data, width, height };
}

function maxAbsDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface Case {
  id: string;
  input: RgbImage;
  outWidth: number;
  outHeight: number;
  filter: ResizeFilter;
  /** Smooth inputs never clip between passes, so torch (float, one rounding) agrees within 1 level. */
  smooth: boolean;
}

function referenceCases(): Case[] {
  const noise = (w: number, h: number, seed: number): RgbImage => ({ data: randomBytes(w * h * 3, seed), width: w, height: h });
  const smooth = (w: number, h: number): RgbImage =>
    image(w, h, (x, y, c) => Math.round(127.5 + 60 * Math.sin((x + 2 * c) / 4.3) + 50 * Math.cos((y - c) / 3.1)));
  const sizes: [number, number, number, number][] = [
    [37, 23, 16, 10], // downscale, non-integer factors
    [40, 30, 224, 168], // upscale
    [64, 48, 20, 48], // one axis only
    [31, 17, 50, 9], // up in x, down in y
    [300, 200, 224, 149], // CLIP-like shortest-edge shrink
    [9, 9, 3, 3], // integer factor 3
  ];
  const cases: Case[] = [];
  sizes.forEach(([w, h, ow, oh], i) => {
    for (const filter of ['bilinear', 'bicubic'] as const) {
      cases.push({ id: `noise-${i}-${filter}`, input: noise(w, h, 100 + i), outWidth: ow, outHeight: oh, filter, smooth: false });
      cases.push({ id: `smooth-${i}-${filter}`, input: smooth(w, h), outWidth: ow, outHeight: oh, filter, smooth: true });
    }
  });
  return cases;
}

describe.skipIf(!torchAvailable())('resize vs PIL and torch references', () => {
  const cases = referenceCases();
  let results: Map<string, { torch: Uint8Array; pil: Uint8Array | null }>;

  it('runs the reference script', () => {
    const dir = mkdtempSync(join(tmpdir(), 'chimera-resize-'));
    const input = join(dir, 'cases.json');
    const output = join(dir, 'out.json');
    writeFileSync(
      input,
      JSON.stringify(
        cases.map((c) => ({
          id: c.id,
          width: c.input.width,
          height: c.input.height,
          outWidth: c.outWidth,
          outHeight: c.outHeight,
          filter: c.filter,
          data: Buffer.from(c.input.data).toString('base64'),
        })),
      ),
    );
    runTorchScript(SCRIPT, [input, output]);
    const parsed = JSON.parse(readFileSync(output, 'utf8')) as { id: string; torch: string; pil: string | null }[];
    results = new Map(
      parsed.map((r) => [
        r.id,
        { torch: new Uint8Array(Buffer.from(r.torch, 'base64')), pil: r.pil ? new Uint8Array(Buffer.from(r.pil, 'base64')) : null },
      ]),
    );
    expect(results.size).toBe(cases.length);
  });

  it('matches PIL Image.resize exactly (same fixed-point arithmetic)', (ctx) => {
    if ([...results.values()].some((r) => r.pil === null)) ctx.skip();
    for (const c of cases) {
      const ours = resizeImage(c.input, c.outWidth, c.outHeight, c.filter);
      expect(maxAbsDiff(ours.data, results.get(c.id)!.pil!), c.id).toBe(0);
    }
  });

  it('matches torch interpolate(antialias=True) within 1 level on smooth images', () => {
    for (const c of cases.filter((k) => k.smooth)) {
      const ours = resizeImage(c.input, c.outWidth, c.outHeight, c.filter);
      expect(maxAbsDiff(ours.data, results.get(c.id)!.torch), c.id).toBeLessThanOrEqual(1);
    }
  });
});

describe('resize invariants', () => {
  it('is an exact copy at the same size, and a new buffer', () => {
    const img: RgbImage = { data: randomBytes(5 * 4 * 3, 9), width: 5, height: 4 };
    for (const filter of ['bilinear', 'bicubic'] as const) {
      const out = resizeImage(img, 5, 4, filter);
      expect(out.data).toEqual(img.data);
      expect(out.data).not.toBe(img.data);
    }
  });

  it('keeps constant images constant at any size', () => {
    const img = solidImage(13, 7, [200, 3, 97]);
    for (const [w, h] of [[1, 1], [5, 3], [26, 14], [100, 2], [13, 30]]) {
      for (const filter of ['bilinear', 'bicubic'] as const) {
        const out = resizeImage(img, w, h, filter);
        for (let i = 0; i < out.data.length; i += 3) expect([out.data[i], out.data[i + 1], out.data[i + 2]]).toEqual([200, 3, 97]);
      }
    }
  });

  it('averages a 1-pixel checkerboard to gray when shrinking (antialiasing)', () => {
    const board = image(64, 64, (x, y) => ((x + y) % 2 === 0 ? 255 : 0));
    for (const filter of ['bilinear', 'bicubic'] as const) {
      const out = resizeImage(board, 16, 16, filter);
      for (const v of out.data) expect(Math.abs(v - 127.5)).toBeLessThanOrEqual(2);
    }
    // Halving with bilinear: the widened triangle weights 4 inputs 1/8, 3/8, 3/8, 1/8, so inside the image every
    // output is (a + b) / 2 = 127.5 -> 128. At the border the missing tap is renormalised away: (a + 0.75 b) / 1.75.
    const halved = resizeImage(board, 32, 32, 'bilinear');
    for (let y = 1; y < 31; y++) for (let x = 1; x < 31; x++) expect(halved.data[(y * 32 + x) * 3]).toBe(128);
    expect(Math.abs(halved.data[0] - 127.5)).toBeLessThanOrEqual(3);
  });

  it('interpolates a linear ramp linearly inside the image (bilinear upscale 2x)', () => {
    const ramp = image(8, 1, (x) => x * 30);
    const out = resizeImage(ramp, 16, 1, 'bilinear');
    // Output pixel i samples input position (i + 0.5) / 2 - 0.5; inside the image that is linear in i.
    for (let i = 1; i < 15; i++) expect(out.data[i * 3]).toBe(Math.round(((i + 0.5) / 2 - 0.5) * 30));
    expect(out.data[0]).toBe(0); // clamped at the border: only input 0 (and weight-renormalised)
  });

  it('rejects bad sizes and filters clearly', () => {
    const img = solidImage(4, 4, [0, 0, 0]);
    expect(() => resizeImage(img, 0, 4)).toThrow(ImageInputError);
    expect(() => resizeImage(img, 0, 4)).toThrow(/empty \(0x4\)/);
    expect(() => resizeImage(img, 2.5, 4)).toThrow(/non-negative integers, got 2\.5x4/);
    expect(() => resizeImage(img, 4, 4, 'lanczos' as ResizeFilter)).toThrow(/filter must be 'bilinear' or 'bicubic', got 'lanczos'/);
    expect(() => resizeImage({ data: new Uint8Array(5), width: 4, height: 4 }, 2, 2)).toThrow(/needs 48 bytes \(3 per pixel\), got 5/);
    expect(() => resizeImage(img, 50000, 50000)).toThrow(/more than 2 GB/);
  });
});

describe('sizing', () => {
  it('computes the shortest-edge size like HF (long side truncated)', () => {
    expect(shortestEdgeSize(640, 480, 224)).toEqual({ width: 298, height: 224 }); // 224 * 640 / 480 = 298.67
    expect(shortestEdgeSize(480, 640, 224)).toEqual({ width: 224, height: 298 });
    expect(shortestEdgeSize(100, 100, 224)).toEqual({ width: 224, height: 224 });
    expect(shortestEdgeSize(1000, 3, 224)).toEqual({ width: 74666, height: 224 });
  });

  it('fits within a pixel budget, keeping the aspect ratio', () => {
    expect(fitWithinPixels(40, 30, 1200)).toEqual({ width: 40, height: 30 });
    expect(fitWithinPixels(40, 30, 1000)).toEqual({ width: 36, height: 27 });
    const extreme = fitWithinPixels(1, 1_000_000, 100);
    expect(extreme).toEqual({ width: 1, height: 100 });
    for (let i = 0; i < 200; i++) {
      const w = 1 + ((i * 7919) % 5000);
      const h = 1 + ((i * 104729) % 3000);
      const cap = 1 + ((i * 31337) % 200000);
      const fit = fitWithinPixels(w, h, cap);
      expect(fit.width * fit.height).toBeLessThanOrEqual(Math.max(cap, w * h <= cap ? w * h : cap));
      expect(fit.width).toBeGreaterThanOrEqual(1);
      if (w * h > cap && fit.width > 1 && fit.height > 1) {
        expect(Math.abs(fit.width / fit.height - w / h) / (w / h)).toBeLessThan(0.5);
      }
    }
  });
});

describe('crop and pad', () => {
  const img = image(5, 3, (x, y, c) => 10 * y + x + 100 * c);

  it('center-crops with floored offsets (HF)', () => {
    const out = centerCrop(img, 2, 1);
    // left = floor((5 - 2) / 2) = 1, top = floor((3 - 1) / 2) = 1.
    expect(Array.from(out.data)).toEqual([11, 111, 211, 12, 112, 212]);
  });

  it('pads when the crop is larger, with the fill colour', () => {
    const out = centerCrop(img, 7, 4, [1, 2, 3]);
    // left = floor(-2 / 2) = -1, top = floor(-1 / 2) = -1: one fill column on the left, one fill row on top.
    expect(Array.from(out.data.subarray(0, 3))).toEqual([1, 2, 3]);
    const at = (x: number, y: number) => Array.from(out.data.subarray((y * 7 + x) * 3, (y * 7 + x) * 3 + 3));
    expect(at(1, 1)).toEqual([0, 100, 200]);
    expect(at(5, 3)).toEqual([24, 124, 224]);
    expect(at(6, 3)).toEqual([1, 2, 3]);
    expect(at(3, 0)).toEqual([1, 2, 3]);
  });

  it('pads to a square like LLaVA expand2square', () => {
    const wide = padToSquare(img, [9, 9, 9]);
    expect([wide.width, wide.height]).toEqual([5, 5]);
    // (5 - 3) / 2 = 1 fill row above, one below.
    const row = (y: number) => Array.from(wide.data.subarray(y * 15, y * 15 + 3));
    expect(row(0)).toEqual([9, 9, 9]);
    expect(row(1)).toEqual([0, 100, 200]);
    expect(row(4)).toEqual([9, 9, 9]);
    const tall = padToSquare(image(2, 5, () => 50), [0, 0, 0]);
    // (5 - 2) / 2 floored = 1 column left, 2 right.
    const px = (x: number) => tall.data[(2 * 5 + x) * 3];
    expect([px(0), px(1), px(2), px(3), px(4)]).toEqual([0, 50, 50, 0, 0]);
    expect(padToSquare(solidImage(3, 3, [1, 1, 1])).data).toEqual(solidImage(3, 3, [1, 1, 1]).data);
  });

  it('crops arbitrary windows and checks arguments', () => {
    expect(Array.from(cropImage(img, 4, 2, 1, 1).data)).toEqual([24, 124, 224]);
    expect(() => cropImage(img, 0.5, 0, 1, 1)).toThrow(/left and top must be integers/);
    expect(() => cropImage(img, 0, 0, 1, 1, [300, 0, 0])).toThrow(/integers 0\.\.255, got \[300,0,0\]/);
  });
});
