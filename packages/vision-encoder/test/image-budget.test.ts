/**
 * The decode memory budget (maxDecodeBytes): hostile files whose small size hides a huge decode are refused from
 * their header, before any large allocation, with a message naming the budget, the need and the option; the
 * budget reaches decoding through ImageProcessor and the image modality.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { deflateSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImageSync, DEFAULT_MAX_DECODE_BYTES } from '../src/image/decode';
import { ImageInputError } from '../src/image/errors';
import { clipProcessor } from '../src/image/processor';
import { visionModality } from '../src/modality';
import { VisionTransformer } from '../src/vit/tower';
import { tinyViT } from '../src/vit/config';
import { concatBytes, encodePng, pngChunk, randomBytes, readFixture } from './image-fixtures';

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * The hostile PNG: 7071x7071 16-bit RGBA (50 MP, just under the default pixel cap) whose 389 KB of image
 * data could inflate to 400 MB. The data need not be real zlib: the budget refuses before inflating.
 */
function hostilePng(): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, 7071);
  view.setUint32(4, 7071);
  ihdr.set([16, 6, 0, 0, 0], 8);
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return concatBytes([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', new Uint8Array(388_800)), pngChunk('IEND', new Uint8Array(0))]);
}

/** The hostile JPEG: a progressive 4:2:0 frame header claiming 7071x7071, padded to a plausible 290 KB. */
function hostileJpeg(): Uint8Array {
  const jpg = new Uint8Array(readFixture('fuzz/progressive-420.jpg'));
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc2);
  jpg.set([0x1b, 0x9f, 0x1b, 0x9f], sof + 5); // height, width = 7071
  const comments = Array.from({ length: 5 }, () => concatBytes([new Uint8Array([0xff, 0xfe, 0xea, 0x60]), new Uint8Array(59_998)]));
  return concatBytes([jpg.subarray(0, 2), ...comments, jpg.subarray(2)]);
}

/** A PNG from already-filtered scanlines (fast for big images: one deflate of mostly zeros). */
function encodeRawPng(width: number, height: number, bitDepth: number, colorType: number, raw: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([bitDepth, colorType, 0, 0, 0], 8);
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return concatBytes([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw, { level: 1 })), pngChunk('IEND', new Uint8Array(0))]);
}

function refusal(fn: () => unknown): ImageInputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ImageInputError);
    return err as ImageInputError;
  }
  throw new Error('expected an ImageInputError, got a decoded image');
}

describe('decode memory budget', () => {
  it('refuses the hostile PNG from its header, saying the need, the budget and the option', () => {
    const bytes = hostilePng();
    expect(bytes.length).toBeLessThan(400_000);
    const before = process.memoryUsage().arrayBuffers;
    const err = refusal(() => decodeImageSync(bytes));
    // Nothing large was allocated: the refusal came before inflating (400 MB) or the output (150 MB).
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16e6);
    expect(err.code).toBe('too-large');
    expect(err.message).toMatch(/7071x7071 16-bit RGBA PNG needs about 550 MB \(inflated image data 400 MB \+ RGB output 150 MB/);
    expect(err.message).toContain(`over the decode memory budget maxDecodeBytes = ${DEFAULT_MAX_DECODE_BYTES} (268 MB)`);
    expect(err.message).toMatch(/raise maxDecodeBytes \(an option of decodeImage, ImageProcessor and the image modality's input\)/);
    // With a budget that allows it, decoding proceeds (and finds the junk data): the budget was the only gate.
    const allowed = refusal(() => decodeImageSync(bytes, { maxDecodeBytes: 1e9 }));
    expect(allowed.code).toBe('corrupt');
    expect(allowed.message).toMatch(/not a valid zlib stream/);
  });

  it('refuses the hostile progressive JPEG from its frame header', () => {
    const bytes = hostileJpeg();
    const before = process.memoryUsage().arrayBuffers;
    const err = refusal(() => decodeImageSync(bytes));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16e6);
    expect(err.code).toBe('too-large');
    expect(err.message).toMatch(
      /7071x7071 progressive JPEG with 3 component\(s\) needs about 375 MB \(component planes 75 MB \+ progressive coefficients 150 MB \+ RGB output 150 MB \+ row buffers 42\.5 kB\)/,
    );
    expect(err.message).toMatch(/maxDecodeBytes = 268435456/);
  });

  it('counts the oversize shrink, checks the option, and is off with Infinity', () => {
    const samples = randomBytes(40 * 30 * 3, 1);
    const png = encodePng({ width: 40, height: 30, colorType: 2, bitDepth: 8, samples });
    // 40x30 RGB: 3630 bytes inflated + 3600 output + the file; shrinking to 300 pixels adds 3 * 20 * (30 + 15).
    const shrink = refusal(() => decodeImageSync(png, { maxPixels: 300, onOversize: 'resize', maxDecodeBytes: 9000 }));
    expect(shrink.message).toMatch(/\+ shrink to maxPixels 2\.7 kB\), over the decode memory budget maxDecodeBytes = 9000 \(9\.0 kB\)/);
    expect(decodeImageSync(png, { maxDecodeBytes: 20_000 }).data).toEqual(samples);
    expect(decodeImageSync(png, { maxDecodeBytes: Infinity }).data).toEqual(samples);
    expect(refusal(() => decodeImageSync(png, { maxDecodeBytes: 0 })).message).toMatch(/maxDecodeBytes must be a positive number of bytes \(or Infinity\), got 0/);
    expect(refusal(() => decodeImageSync(png, { maxDecodeBytes: 7000 })).code).toBe('too-large');
  });

  it('reaches decoding through ImageProcessor and the image modality', () => {
    const png = encodePng({ width: 40, height: 30, colorType: 2, bitDepth: 8, samples: randomBytes(3600, 2) });
    expect(refusal(() => clipProcessor({ size: 8, maxDecodeBytes: 5000 }).prepare(png)).message).toMatch(/maxDecodeBytes = 5000/);
    expect(clipProcessor({ size: 8 }).prepare(png).width).toBe(8);
    for (const mode of ['vit', 'native', 'tiles'] as const) {
      const plugin = visionModality({ mode, encoder: new VisionTransformer(tinyViT()), input: { maxDecodeBytes: 5000 } });
      expect(refusal(() => plugin.prepare(png)).message, mode).toMatch(/maxDecodeBytes = 5000/);
    }
    const fuyu = visionModality({ mode: 'fuyu', dim: 8, patchSize: 4, input: { maxDecodeBytes: 5000 } });
    expect(refusal(() => fuyu.prepare(png)).message).toMatch(/maxDecodeBytes = 5000/);
  });

  it('keeps the peak memory of a hostile decode flat (measured in a fresh process)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'chimera-budget-'));
    const viteNode = join(dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');
    const run = (file: string, options = '{}') => {
      const out = spawnSync(process.execPath, [viteNode, join(HERE, 'decode-peak.ts'), file, options], { encoding: 'utf8', cwd: join(HERE, '..') });
      if (out.status !== 0) throw new Error(`decode-peak.ts failed: ${out.stderr}`);
      return JSON.parse(out.stdout.trim().split('\n').pop()!) as { ms: number; peakRiseMB: number; outcome: string };
    };
    writeFileSync(join(dir, 'hostile.png'), hostilePng());
    writeFileSync(join(dir, 'hostile.jpg'), hostileJpeg());
    // The control: a real 4000x4000 16-bit RGBA PNG within the budget (128 MB inflated + 48 MB output), so the
    // measurement is shown to see a decode's allocations (the rise is less than the sum: the process's peak
    // before decoding, from loading, already covers part of it).
    const control = encodeRawPng(4000, 4000, 16, 6, new Uint8Array(4000 * (1 + 4000 * 8)));
    writeFileSync(join(dir, 'control.png'), control);
    const seen = run(join(dir, 'control.png'));
    const png = run(join(dir, 'hostile.png'));
    const jpg = run(join(dir, 'hostile.jpg'));
    console.log(`control PNG: ${JSON.stringify(seen)}\nhostile PNG: ${JSON.stringify(png)}\nhostile JPEG: ${JSON.stringify(jpg)}`);
    expect(seen.outcome).toBe('decoded 4000x4000');
    expect(seen.peakRiseMB).toBeGreaterThan(100);
    expect(png.outcome).toMatch(/^too-large/);
    expect(jpg.outcome).toMatch(/^too-large/);
    // Decoded, these would need 550 MB and 375 MB; refused from the header, the process barely grows.
    expect(png.peakRiseMB).toBeLessThan(32);
    expect(jpg.peakRiseMB).toBeLessThan(32);
  });
});


