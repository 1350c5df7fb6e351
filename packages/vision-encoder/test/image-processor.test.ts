// Normalisation presets, image -> tensor conversion and the ImageProcessor pipeline (shapes, values, sizes, leaks).
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { setupTestBackend, TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync } from '@chimera/core/testing';
import { NORMALIZE_PRESETS, imageToTensor, imagesToTensor, meanColor, resolveNormalization } from '../src/image/normalize';
import { ImageProcessor, clipProcessor, llavaProcessor, siglipProcessor } from '../src/image/processor';
import { ImageInputError } from '../src/image/errors';
import { solidImage } from '../src/image/pixels';
import type { RgbImage } from '../src/image/types';
import { encodePng, randomBytes } from './image-fixtures';

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

function handMade(): RgbImage {
  // 4x2: row 0 = black, red, green, blue; row 1 = white, gray 128, (10, 20, 30), (255, 0, 255).
  const data = new Uint8Array([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 128, 128, 128, 10, 20, 30, 255, 0, 255]);
  return { data, width: 4, height: 2 };
}

describe('normalisation presets', () => {
  it('holds the published statistics', () => {
    expect(NORMALIZE_PRESETS.clip).toEqual({ mean: CLIP_MEAN, std: CLIP_STD });
    expect(NORMALIZE_PRESETS.siglip).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(NORMALIZE_PRESETS.imagenet).toEqual({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  });

  it('gives LLaVA mean colours (truncated) and validates statistics', () => {
    expect(meanColor('clip')).toEqual([122, 116, 104]); // int(0.48145466 * 255) = int(122.77)...
    expect(meanColor('siglip')).toEqual([127, 127, 127]);
    expect(() => resolveNormalization('coco' as 'clip')).toThrow(/unknown normalization preset 'coco'; use one of clip, siglip, imagenet/);
    expect(() => resolveNormalization({ mean: [0, 0, 0], std: [1, 0, 1] })).toThrow(/positive stds/);
    expect(() => resolveNormalization({ mean: [0, 0], std: [1, 1, 1] } as never)).toThrow(ImageInputError);
  });
});

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('converts an image to normalised float32 [H, W, 3]', async () => {
    const img = handMade();
    for (const [name, mean, std] of [
      ['clip', CLIP_MEAN, CLIP_STD],
      ['siglip', [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
      ['imagenet', [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
    ] as const) {
      const t = expectNoLeaksSync(() => imageToTensor(img, name));
      expect(t.shape).toEqual([2, 4, 3]);
      expect(t.dtype).toBe('float32');
      const values = await t.data();
      t.dispose();
      for (let i = 0; i < values.length; i++) {
        const c = i % 3;
        expect(values[i]).toBeCloseTo((img.data[i] / 255 - mean[c]) / std[c], 5);
      }
    }
    // SigLIP maps 0 -> -1 and 255 -> 1 exactly.
    const s = imageToTensor(img, 'siglip');
    const sv = await s.data();
    s.dispose();
    expect([sv[0], sv[3]]).toEqual([-1, 1]);
    const custom = imageToTensor(solidImage(1, 1, [255, 0, 51]), { mean: [0, 0, 0], std: [1, 1, 1] }, 1 / 51);
    expect(Array.from(await custom.data())).toEqual([5, 0, 1]);
    custom.dispose();
  });

  it('processes a hand-made image: CLIP-style resize + crop on a small scale', async () => {
    // Shortest edge 2 keeps the 4x2 image (height is already 2, width floor(2 * 4 / 2) = 4); the 2x2 center
    // crop starts at x = 1: pixels red, green / gray, (10, 20, 30).
    const processor = new ImageProcessor({ preset: 'clip', resize: { shortestEdge: 2 }, crop: { width: 2, height: 2 } });
    const t = expectNoLeaksSync(() => processor.process(handMade()));
    expect(t.shape).toEqual([2, 2, 3]);
    const values = await t.data();
    t.dispose();
    const expected = [255, 0, 0, 0, 255, 0, 128, 128, 128, 10, 20, 30].map((v, i) => (v / 255 - CLIP_MEAN[i % 3]) / CLIP_STD[i % 3]);
    values.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
  });

  it('presets produce 224x224 from any input; processBatch stacks; no leaks', async () => {
    const wide: RgbImage = { data: randomBytes(64 * 40 * 3, 11), width: 64, height: 40 };
    const tall: RgbImage = { data: randomBytes(30 * 90 * 3, 12), width: 30, height: 90 };
    for (const processor of [clipProcessor(), siglipProcessor()]) {
      const batch = await expectNoLeaks(() => processor.processBatch([wide, tall, wide]));
      expect(batch.shape).toEqual([3, 224, 224, 3]);
      const single = processor.process(tall);
      const row = tf.slice(batch, [1, 0, 0, 0], [1, 224, 224, 3]);
      expect(Array.from(await row.data())).toEqual(Array.from(await single.data()));
      tf.dispose([batch, single, row]);
    }
    const llava = llavaProcessor({ size: 336 });
    const out = llava.process(wide);
    expect(out.shape).toEqual([336, 336, 3]);
    // Padding rows use the CLIP mean colour (122, 116, 104): they normalise to ~0.
    const topRow = tf.slice(out, [0, 0, 0], [1, 336, 3]);
    const top = await topRow.data();
    for (let i = 0; i < top.length; i++) expect(Math.abs(top[i])).toBeLessThan(0.02);
    tf.dispose([out, topRow]);
  });

  it('decodes bytes itself and refuses bad input without leaking', async () => {
    const samples = randomBytes(8 * 8 * 3, 13);
    const png = encodePng({ width: 8, height: 8, colorType: 2, bitDepth: 8, samples });
    const processor = new ImageProcessor({ preset: 'imagenet' });
    const t = processor.process(png);
    expect(t.shape).toEqual([8, 8, 3]);
    t.dispose();
    const before = tf.memory().numTensors;
    expect(() => processor.process(png.subarray(0, 50))).toThrow(ImageInputError);
    expect(() => processor.processBatch([png, png.subarray(0, 40)])).toThrow(/corrupt PNG/);
    expect(() => processor.process({ data: new Uint8Array(3), width: 0, height: 1 })).toThrow(/empty \(0x1\)/);
    expect(() => processor.processBatch([png, solidImage(9, 9, [0, 0, 0])])).toThrow(/image 1 is 9x9 but image 0 is 8x8.*resize or crop/);
    expect(() => processor.processBatch([])).toThrow(/non-empty array/);
    const capped = new ImageProcessor({ preset: 'clip', maxPixels: 63 });
    expect(() => capped.process(png)).toThrow(/8x8.*over the cap of 63 pixels/);
    expect(() => capped.process(solidImage(8, 8, [1, 2, 3]))).toThrow(/8x8 = 64 pixels, over maxPixels 63/);
    expect(tf.memory().numTensors).toBe(before);
    const shrinking = new ImageProcessor({ preset: 'clip', maxPixels: 16, onOversize: 'resize' });
    const small = shrinking.process(png);
    expect(small.shape).toEqual([4, 4, 3]);
    small.dispose();
  });
});

describe('processor configuration and sizes', () => {
  it('rejects bad options with clear messages', () => {
    expect(() => new ImageProcessor({ preset: 'nope' as 'clip' })).toThrow(/unknown normalization preset 'nope'/);
    expect(() => new ImageProcessor({ preset: 'clip', resize: { shortestEdge: 0 } })).toThrow(/resize\.shortestEdge must be a positive integer, got 0/);
    expect(() => new ImageProcessor({ preset: 'clip', crop: { width: 3, height: -1 } })).toThrow(/non-negative integers/);
    expect(() => new ImageProcessor({ preset: 'clip', resize: { size: 3 } as never })).toThrow(/resize must be \{ shortestEdge \} or \{ width, height \}/);
    expect(() => new ImageProcessor({ preset: 'clip', filter: 'nearest' as never })).toThrow(/filter must be/);
    expect(() => new ImageProcessor({ preset: 'clip', onOversize: 'crop' as never })).toThrow(/onOversize must be 'error' or 'resize'/);
  });

  it('outputSize agrees with prepare for random sizes and configurations', () => {
    const processors = [
      clipProcessor({ size: 32 }),
      siglipProcessor({ size: 24 }),
      llavaProcessor({ size: 20 }),
      new ImageProcessor({ preset: 'siglip', maxPixels: 900, onOversize: 'resize' }),
      new ImageProcessor({ preset: 'siglip', resize: { shortestEdge: 17 }, maxPixels: 2000, onOversize: 'resize', filter: 'bilinear' }),
      new ImageProcessor({ preset: 'clip', padToSquare: [1, 2, 3], crop: { width: 50, height: 30 } }),
    ];
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 120 }), fc.nat(processors.length - 1), (w, h, k) => {
        const processor = processors[k];
        const prepared = processor.prepare(solidImage(w, h, [5, 6, 7]));
        expect(processor.outputSize(w, h)).toEqual({ width: prepared.width, height: prepared.height });
      }),
      { numRuns: 150, seed: 42 },
    );
    expect(clipProcessor().outputSize(640, 480)).toEqual({ width: 224, height: 224 });
    expect(new ImageProcessor({ preset: 'clip', resize: { shortestEdge: 224 } }).outputSize(640, 480)).toEqual({ width: 298, height: 224 });
    expect(() => clipProcessor({ maxPixels: 100 }).outputSize(20, 20)).toThrow(/over maxPixels 100/);
  });
});
