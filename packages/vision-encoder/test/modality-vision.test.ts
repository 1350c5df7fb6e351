// The vision modality plugin: tokensFor against real encoder output in every mode, grids, caps, the round
// trip through core's packer (placeholder expansion, splice, M-RoPE), leaks, gradients and freezing.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { ModalityRegistry, gridSize, mediaSegment, packSequences, validateModality } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { visionModality, type VisionModalityOptions, type PreparedImage } from '../src/modality';
import { VisionTransformer } from '../src/vit/tower';
import { tinyViT } from '../src/vit/config';
import { mergePatches } from '../src/patches/merge';
import { clipProcessor } from '../src/image/processor';
import { imageToTensor } from '../src/image/normalize';
import { resizeImage } from '../src/image/resize';
import type { RgbImage } from '../src/image/types';
import { ImageInputError } from '../src/image/errors';

/** A deterministic noisy image (an LCG), so resizes and crops have something to move. */
function noiseImage(width: number, height: number, seed = 1): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = (seed * 2654435761) >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    data[i] = state >>> 24;
  }
  return { data, width, height };
}

function rowsOf(features: tf.Tensor | tf.Tensor[], i: number): tf.Tensor {
  return Array.isArray(features) ? features[i]! : tf.gather(features, i);
}

/** Plugin configurations covering every mode, merge on/off and several tile caps (tiny towers). */
function pluginConfigs(): { label: string; make: () => VisionModalityOptions }[] {
  const learned = () => new VisionTransformer(tinyViT()); // CLIP-style: CLS, learned positions, 16px / 4px patches
  const rope = () => new VisionTransformer(tinyViT({ positions: 'rope2d' }));
  const siglip = () => new VisionTransformer(tinyViT({ family: 'siglip', clsToken: false, preNorm: false, imageSize: 20 }));
  return [
    { label: 'vit', make: () => ({ mode: 'vit', encoder: learned() }) },
    { label: 'vit keep CLS, two layers', make: () => ({ mode: 'vit', encoder: learned(), select: 'full', layers: [-2, -1] }) },
    { label: 'vit merge 2x2', make: () => ({ mode: 'vit', encoder: learned(), merge: true }) },
    { label: 'vit odd grid padded merge', make: () => ({ mode: 'vit', encoder: siglip(), merge: { oddGrid: 'pad' } }) },
    { label: 'native merge', make: () => ({ mode: 'native', encoder: rope(), minPixels: 8 * 8, maxPixels: 48 * 48 }) },
    { label: 'native no merge', make: () => ({ mode: 'native', encoder: rope(), merge: false, minPixels: 64, maxPixels: 40 * 40 }) },
    {
      label: 'native pixel shuffle v1',
      make: () => ({ mode: 'native', encoder: rope(), merge: { method: 'pixel-shuffle', version: 'v1' }, maxPixels: 40 * 40 }),
    },
    { label: 'tiles max 1', make: () => ({ mode: 'tiles', encoder: learned(), maxTiles: 1 }) },
    { label: 'tiles max 4', make: () => ({ mode: 'tiles', encoder: learned(), maxTiles: 4 }) },
    { label: 'tiles max 6, pixel shuffle, thumbnail first', make: () => ({ mode: 'tiles', encoder: learned(), maxTiles: 6, thumbnail: 'first', merge: { method: 'pixel-shuffle' } }) },
    { label: 'tiles max 3, rope tower, no thumbnail', make: () => ({ mode: 'tiles', encoder: rope(), maxTiles: 3, thumbnail: 'none' }) },
    { label: 'fuyu', make: () => ({ mode: 'fuyu', patchSize: 4, dim: 8, maxPixels: 40 * 40 }) },
    { label: 'fuyu no row breaks', make: () => ({ mode: 'fuyu', patchSize: 5, dim: 6, rowBreaks: false, maxPixels: 30 * 30 }) },
  ];
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('tokensFor equals the encoder output for every mode over random sizes and aspect ratios', () => {
    for (const { label, make } of pluginConfigs()) {
      const plugin = visionModality(make());
      validateModality(plugin);
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 90 })), { minLength: 1, maxLength: 3 }),
          fc.integer({ min: 1, max: 1000 }),
          (sizes, seed) => {
            // Fuyu and native mode refuse a side shorter than one patch (tested below); 'vit' and 'tiles' resize any size.
            const least = plugin.patchEmbedding?.patchSize ?? (plugin.mode === 'native' ? plugin.encoder!.config.patchSize : 1);
            const prepared = expectNoLeaksSync(() => sizes.map(([w, h], i) => plugin.prepare(noiseImage(Math.max(w, least), Math.max(h, least), seed + i))), label);
            const encoded = expectNoLeaksSync(() => plugin.continuousIn!.encode(prepared), label);
            try {
              expect(encoded.tokensPerItem, label).toEqual(prepared.map((p) => plugin.tokensFor(p)));
              prepared.forEach((p, i) => {
                const rows = rowsOf(encoded.features, i);
                expect(rows.shape, `${label} ${sizes[i]}`).toEqual([plugin.tokensFor(p), plugin.featureDim]);
                const grid = plugin.gridFor!(p);
                expect(encoded.grids![i], label).toEqual(grid);
                if (grid) expect(gridSize(grid), label).toBe(plugin.tokensFor(p));
                if (p.mode === 'tiles') {
                  const tiles = p.tileGrid!.rows * p.tileGrid!.cols;
                  expect(p.views, label).toBe(tiles + (p.thumbnailIndex! >= 0 ? 1 : 0));
                }
              });
            } finally {
              tf.dispose(encoded.features);
            }
          },
        ),
        { seed: 42, numRuns: 10 },
      );
      plugin.module.dispose();
    }
  });

  it("'vit' mode runs the processor and the tower's chosen layers, CLS dropped", () => {
    const encoder = new VisionTransformer(tinyViT());
    const plugin = visionModality({ mode: 'vit', encoder, layers: [-2, -1] });
    const image = noiseImage(30, 20, 3);
    const prepared = plugin.prepare(image);
    expect(prepared).toMatchObject({ views: 1, height: 16, width: 16, sourceWidth: 30, sourceHeight: 20 });
    const encoded = plugin.continuousIn!.encode([prepared]);
    // Independently: CLIP processing at 16px, the tower's hidden states -2 and -1 without CLS, concatenated.
    const expected = tf.tidy(() => {
      const pixels = tf.expandDims(clipProcessor({ size: 16 }).process(image), 0) as tf.Tensor4D;
      const out = encoder.forward(pixels, { taps: [1, 2] });
      return tf.concat(out.taps.map((t) => tf.slice(t, [0, 1, 0], [1, -1, -1])), -1).reshape([16, 32]);
    });
    const actual = rowsOf(encoded.features, 0);
    expect(tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0]).toBeLessThan(1e-5);
    expect(plugin.gridFor!(prepared)).toEqual({ rows: 4, cols: 4 });
    tf.dispose([expected, encoded.features]);
    plugin.module.dispose();
  });

  it("'native' mode smart-resizes, runs the tower at that size and merges 2x2", () => {
    const encoder = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    const plugin = visionModality({ mode: 'native', encoder, layers: 'final', minPixels: 64, maxPixels: 64 * 64 });
    // 50x30 (w x h): 30 / 8 = 3.75 -> 32, 50 / 8 = 6.25 -> 48; patch grid 8x12, tokens 4x6.
    const prepared = plugin.prepare(noiseImage(50, 30, 5));
    expect(prepared).toMatchObject({ height: 32, width: 48, views: 1 });
    expect(plugin.tokensFor(prepared)).toBe(24);
    expect(plugin.gridFor!(prepared)).toEqual({ rows: 4, cols: 6 });
    const encoded = plugin.continuousIn!.encode([prepared]);
    const expected = tf.tidy(() => {
      const pixels = tf.tensor4d(prepared.pixels, [1, 32, 48, 3]);
      const hidden = encoder.forward(pixels, { select: 'default' }).hidden; // [1, 96, 16]
      return tf.reshape(mergePatches(tf.reshape(hidden, [8, 12, 16]) as tf.Tensor3D), [24, 64]);
    });
    expect(tf.max(tf.abs(tf.sub(rowsOf(encoded.features, 0), expected))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([expected, encoded.features]);
    plugin.module.dispose();
  });

  it("'tiles' mode puts the tiles row-major, then the thumbnail", () => {
    const encoder = new VisionTransformer(tinyViT());
    const plugin = visionModality({ mode: 'tiles', encoder, maxTiles: 4, normalization: 'imagenet' });
    const image = noiseImage(64, 30, 8); // aspect 2.13: a 1x2 grid (2 tiles) is closest within 4 tiles
    const prepared = plugin.prepare(image);
    expect(prepared).toMatchObject({ views: 3, tileGrid: { rows: 1, cols: 2 }, thumbnailIndex: 2 });
    expect(plugin.tokensFor(prepared)).toBe(3 * 16);
    expect(plugin.gridFor!(prepared)).toEqual({ frames: 3, rows: 4, cols: 4 });
    // The right tile is the right half of the image resized to 32x16; the thumbnail is the image at 16x16.
    const view = (v: number) => prepared.pixels.subarray(v * 16 * 16 * 3, (v + 1) * 16 * 16 * 3);
    const stretched = tf.tidy(() => imageToTensor(resizeImage(image, 32, 16), 'imagenet'));
    const rightHalf = tf.tidy(() => tf.slice(stretched, [0, 16, 0], [16, 16, 3]));
    const thumbnail = tf.tidy(() => imageToTensor(resizeImage(image, 16, 16), 'imagenet'));
    expect(Array.from(view(1))).toEqual(Array.from(rightHalf.dataSync()));
    expect(Array.from(view(2))).toEqual(Array.from(thumbnail.dataSync()));
    tf.dispose([stretched, rightHalf, thumbnail]);
    plugin.module.dispose();
  });

  it('fuyu: the row-break embedding follows every row, the padding goes bottom/right', () => {
    const plugin = visionModality({ mode: 'fuyu', patchSize: 4, dim: 6 });
    const prepared = plugin.prepare(noiseImage(10, 7, 2)); // padded to 12x8: 2 rows x 3 cols of patches
    expect(prepared).toMatchObject({ height: 8, width: 12, sourceWidth: 10, sourceHeight: 7 });
    expect(plugin.tokensFor(prepared)).toBe(2 * 4);
    expect(plugin.gridFor!(prepared)).toEqual({ rows: 2, cols: 4 });
    // Padding holds Fuyu's byte value 1 normalized with mean = std = 0.5; the image area does not.
    const pad = (1 / 255 - 0.5) / 0.5;
    expect(prepared.pixels[(7 * 12 + 0) * 3]).toBeCloseTo(pad, 6); // bottom row
    expect(prepared.pixels[(0 * 12 + 11) * 3]).toBeCloseTo(pad, 6); // right column
    const encoded = plugin.continuousIn!.encode([prepared]);
    const rows = rowsOf(encoded.features, 0).arraySync() as number[][];
    const rowBreak = Array.from(plugin.patchEmbedding!.rowBreak!.dataSync());
    rows.forEach((token, i) => {
      const isBreak = i % 4 === 3;
      const diff = Math.max(...token.map((v, d) => Math.abs(v - rowBreak[d]!)));
      if (isBreak) expect(diff, `token ${i}`).toBeLessThan(1e-6);
      else expect(diff, `token ${i}`).toBeGreaterThan(1e-4);
    });
    tf.dispose(encoded.features);
    plugin.module.dispose();
  });

  it('fuyu: an image with a side shorter than one patch is refused with what to do', () => {
    const fuyu = visionModality({ mode: 'fuyu', patchSize: 8, dim: 4 });
    expect(() => fuyu.prepare(noiseImage(20, 7))).toThrow(/the image is 20x7 \(width x height\), smaller than one 8x8 patch.*upscale or pad.*smaller patchSize/);
    expect(() => fuyu.prepare(noiseImage(5, 30))).toThrow(ImageInputError);
    expect(() => fuyu.prepare(noiseImage(5, 30))).toThrow(/5x30/);
    // Exactly one patch, and sides that are not multiples of it (padded), are fine.
    expect(fuyu.tokensFor(fuyu.prepare(noiseImage(8, 8)))).toBe(1 * 2);
    expect(fuyu.tokensFor(fuyu.prepare(noiseImage(9, 17)))).toBe(3 * 3);
    // A downscale to fit maxPixels that leaves a side under the patch is refused too.
    const capped = visionModality({ mode: 'fuyu', patchSize: 8, dim: 4, maxPixels: 400 });
    expect(() => capped.prepare(noiseImage(200, 10))).toThrow(/smaller than one 8x8 patch/);
    fuyu.module.dispose();
    capped.module.dispose();
  });

  it('caps pixels: a clear error or a resize, never an unbounded input', () => {
    const fuyu = visionModality({ mode: 'fuyu', patchSize: 4, dim: 4, maxPixels: 400, onOversize: 'error' });
    expect(() => fuyu.prepare(noiseImage(30, 20))).toThrow(/30x20 = 600 pixels, over maxPixels 400.*onOversize: 'resize'/);
    const shrinking = visionModality({ mode: 'fuyu', patchSize: 4, dim: 4, maxPixels: 400 });
    const small = shrinking.prepare(noiseImage(30, 20));
    expect(small.sourceWidth * small.sourceHeight).toBeLessThanOrEqual(400);
    const encoder = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    const native = visionModality({ mode: 'native', encoder, maxPixels: 32 * 32, onOversize: 'error' });
    expect(() => native.prepare(noiseImage(100, 60))).toThrow(/over maxPixels 1024.*onOversize: 'resize'/);
    const nativeResize = visionModality({ mode: 'native', encoder, maxPixels: 32 * 32 });
    const resized = nativeResize.prepare(noiseImage(100, 60));
    expect(resized.height * resized.width).toBeLessThanOrEqual(32 * 32);
    const capped = visionModality({ mode: 'tiles', encoder, input: { maxPixels: 1000 } });
    expect(() => capped.prepare(noiseImage(50, 50))).toThrow(/over maxPixels 1000/);
    fuyu.module.dispose();
    shrinking.module.dispose();
    encoder.dispose();
  });

  it('refuses bad configurations and foreign items with clear errors', () => {
    const encoder = new VisionTransformer(tinyViT());
    expect(() => visionModality({ mode: 'vit', encoder, select: 'full', merge: true })).toThrow(/merging needs patch tokens only/);
    expect(() => visionModality({ mode: 'native', encoder, mergeSize: 2, merge: { factor: 3 } })).toThrow(/set mergeSize/);
    expect(() => visionModality({ mode: 'fuyu' })).toThrow(/pass dim/);
    expect(() => visionModality({ mode: 'vit', encoder: {} as VisionTransformer })).toThrow(/must be a VisionTransformer/);
    expect(() => visionModality({ mode: 'vit', encoder, layers: 7 })).toThrow(/out of range/);
    const vit = visionModality({ mode: 'vit', encoder });
    const fuyu = visionModality({ mode: 'fuyu', patchSize: 4, dim: 4 });
    const item = fuyu.prepare(noiseImage(8, 8));
    expect(() => vit.tokensFor(item)).toThrow(/prepared for mode 'fuyu' but this plugin is mode 'vit'/);
    expect(() => vit.tokensFor(vit.prepare(noiseImage(8, 8)), 'discrete')).toThrow(/only has the continuousIn path/);
    expect(() => fuyu.continuousIn!.encode([item], { taps: [1] })).toThrow(/no encoder layers to tap/);
    expect(() => vit.prepare(new Uint8Array([1, 2, 3]))).toThrow(/PNG|JPEG|format/i);
    encoder.dispose();
    fuyu.module.dispose();
  });

  it('returns taps in the same layout as the features', () => {
    const encoder = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    const plugin = visionModality({ mode: 'native', encoder, minPixels: 64, maxPixels: 32 * 32 });
    const items = [plugin.prepare(noiseImage(20, 30, 1)), plugin.prepare(noiseImage(30, 30, 2))];
    const encoded = plugin.continuousIn!.encode(items, { taps: [0, -1] });
    const plain = plugin.continuousIn!.encode(items);
    for (const layer of [0, -1]) {
      const taps = encoded.taps![layer] as tf.Tensor[];
      items.forEach((item, i) => expect(taps[i]!.shape).toEqual([plugin.tokensFor(item), 64]));
    }
    // Layer -1 is the default feature layer, so its tap equals the features.
    items.forEach((_, i) => {
      const tap = (encoded.taps![-1] as tf.Tensor[])[i]!;
      expect(tf.max(tf.abs(tf.sub(tap, rowsOf(plain.features, i)))).dataSync()[0]).toBeLessThan(1e-5);
    });
    tf.dispose(encoded.features);
    tf.dispose(plain.features);
    Object.values(encoded.taps!).forEach((taps) => tf.dispose(taps));
    plugin.module.dispose();
  });

  it('round-trips through the packer: placeholders expand to tokensFor, features splice, M-RoPE uses the grid', async () => {
    const encoder = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    const image = visionModality({ mode: 'native', encoder, minPixels: 64, maxPixels: 40 * 40 });
    const registry = new ModalityRegistry([image]);
    const items: PreparedImage[] = [image.prepare(noiseImage(40, 17, 1)), image.prepare(noiseImage(9, 33, 2))];
    const IMG = 9;
    const samples = [
      { ids: [1, IMG, 2, 3], media: [mediaSegment(image, items[0]!)] },
      [{ text: [4, 5], trained: false }, mediaSegment(image, items[1]!), { text: [6] }],
    ];
    const table = tf.variable(tf.randomNormal([16, image.featureDim], 0, 1, 'float32', 4));
    await expectNoLeaks(() => {
      const encoded = image.continuousIn!.encode(items);
      const batch = packSequences(samples, { modalities: registry, placeholderIds: { image: IMG }, positions: 'mrope' }, {
        embedText: (ids) => tf.gather(table, ids),
        features: { image: encoded.features },
      });
      try {
        expect(batch.media.map((m) => m.length)).toEqual(items.map((item) => image.tokensFor(item)));
        const embeds = batch.inputsEmbeds!.arraySync() as number[][][];
        const positions = batch.positions.arraySync() as number[][][];
        batch.media.forEach((placed, i) => {
          const features = rowsOf(encoded.features, i).arraySync() as number[][];
          for (let t = 0; t < placed.length; t++) {
            const row = embeds[placed.row]![placed.start + t]!;
            expect(Math.max(...row.map((v, d) => Math.abs(v - features[t]![d]!)))).toBeLessThan(1e-6);
          }
          // M-RoPE: token t of the item sits at (row, col) of the grid, offset by the item's start id.
          const grid = image.gridFor!(items[i]!)!;
          const start = positions[0]![placed.row]![placed.start]!;
          for (let t = 0; t < placed.length; t++) {
            expect(positions[1]![placed.row]![placed.start + t]).toBe(start + Math.floor(t / grid.cols));
            expect(positions[2]![placed.row]![placed.start + t]).toBe(start + (t % grid.cols));
          }
        });
        // Features of the wrong size are refused with the count-mismatch error.
        expect(() =>
          packSequences(samples, { modalities: registry, placeholderIds: { image: IMG } }, {
            embedText: (ids) => tf.gather(table, ids),
            features: { image: [...encoded.features as tf.Tensor[]].reverse() },
          }),
        ).toThrow();
      } finally {
        batch.dispose();
        tf.dispose(encoded.features);
      }
    }, 'encode + pack');
    table.dispose();
    image.module.dispose();
  });

  it('sends gradients to every trainable parameter; image.encoder.* freezes', () => {
    for (const options of [
      { mode: 'native', encoder: new VisionTransformer(tinyViT({ positions: 'rope2d' })), layers: 'final', maxPixels: 32 * 32 },
      { mode: 'tiles', encoder: new VisionTransformer(tinyViT()), layers: 'final', maxTiles: 2, merge: true },
      { mode: 'fuyu', patchSize: 4, dim: 8 },
    ] as VisionModalityOptions[]) {
      const plugin = visionModality(options);
      const registry = new ModalityRegistry([plugin]);
      const items = [plugin.prepare(noiseImage(24, 13, 1)), plugin.prepare(noiseImage(11, 30, 2))];
      const params = registry.namedParameters();
      const { value, grads } = tf.variableGrads(() => {
        const { features } = plugin.continuousIn!.encode(items);
        return tf.addN((features as tf.Tensor[]).map((f) => tf.sum(tf.square(f)))) as tf.Scalar;
      });
      for (const [name, variable] of params) {
        const grad = grads[variable.name];
        expect(grad, `${options.mode}: ${name}`).toBeDefined();
        expect(tf.max(tf.abs(grad!)).dataSync()[0], `${options.mode}: ${name}`).toBeGreaterThan(0);
      }
      tf.dispose([value, ...Object.values(grads)]);
      const role = options.mode === 'fuyu' ? 'patch_embed' : 'encoder';
      expect(params.every(([name]) => name.startsWith(`image.${role}.`))).toBe(true);
      expect(registry.freeze(`image.${role}.*`)).toBe(params.length);
      expect(plugin.module.trainableVariables()).toHaveLength(0);
      plugin.module.dispose();
    }
  });
});
