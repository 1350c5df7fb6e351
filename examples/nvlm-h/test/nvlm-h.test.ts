import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { expectNoLeaks } from '@chimera/core/testing';
import { ShapesDataset, fineDetailOptions } from '@chimera-examples/shapes-dataset';
import { questionSample } from '@chimera-examples/shapes-vqa';
import { unknownFlagProblems } from '@chimera-examples/kit';
import { restore, snapshot } from '../src/arm';
import { checkTrainableCheckpoint } from '../src/checkpoint';
import { runNvlm, type NvlmOptions, type NvlmResult } from '../src/experiment';
import { encodeImages, type ImageFeatures } from '../src/frozen-views';
import { DEFAULT_SIZE, buildArm, buildViT, tilesPlugin, type NvlmSize } from '../src/model';
import { buildPool, drawBatch } from '../src/pool';
import { TILE_TAGS } from '../src/vocabulary';

// Small parts at the full task's geometry (32 px tiles, up to 16 of them, a 32 px thumbnail).
const SIZE: NvlmSize = {
  ...DEFAULT_SIZE,
  vision: { ...DEFAULT_SIZE.vision, patchSize: 8, hiddenSize: 16, numHeads: 2, intermediateSize: 32, merge: 1, pool: 1 },
  llm: { hiddenSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 64 },
  xattnLayers: [1],
};
const dataset = new ShapesDataset(fineDetailOptions({ seed: 0 }));

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('frozen features', () => {
  let features: ImageFeatures[];
  const images = [0, 1, 2, 3].map((i) => dataset.sample('test', i).image);
  const tower = buildViT(SIZE.vision, 5);
  afterAll(() => tower.dispose());

  beforeAll(() => {
    features = encodeImages(tilesPlugin(tower, SIZE.vision), images, { batchSize: 3 });
  });

  it('keeps every view of the tiles mode, the thumbnail last', () => {
    for (const [k, f] of features.entries()) {
      const { width, height } = images[k]!;
      // Square images (96 or 128) become 4 x 4 tiles (a 96 px image has over half the pixels of that grid); 128x96
      // 4 x 3, as its aspect ratio.
      const grid = width === height ? { rows: 4, cols: 4 } : width > height ? { rows: 3, cols: 4 } : { rows: 4, cols: 3 };
      expect(f.tileGrid).toEqual(grid);
      const tiles = grid.rows * grid.cols;
      expect(f.views).toBe(tiles + 1);
      expect(f.thumbnailIndex).toBe(tiles);
      expect(f.tokensPerView).toBe(16); // 32 px / patch 8 = 4 x 4
      expect(f.features.length).toBe((tiles + 1) * 16 * SIZE.vision.hiddenSize);
    }
  });

  it('gives each arm exactly what its own ViT computes: every view (hybrid) or the thumbnail (thumbnail-only)', () => {
    for (const name of ['hybrid', 'thumbnail'] as const) {
      const arm = buildArm(name, SIZE, 9);
      try {
        restore(arm.image.encoder, snapshot(tower));
        arm.model.trainOnly('fusion');
        const direct = tilesPlugin(arm.image.encoder, SIZE.vision);
        const fresh = direct.continuousIn!.encode(images.map((image) => direct.prepare(image))).features as tf.Tensor2D[];
        const remembered = arm.image.continuousIn!.encode(features).features as tf.Tensor2D[];
        features.forEach((f, k) => {
          const all = fresh[k]!.arraySync();
          const expected = name === 'hybrid' ? all : all.slice(f.thumbnailIndex * 16, (f.thumbnailIndex + 1) * 16);
          expect(remembered[k]!.arraySync()).toEqual(expected);
        });
        expect(arm.image.tokensFor(features[0]!)).toBe(name === 'hybrid' ? features[0]!.views * 16 : 16);
        tf.dispose([...fresh, ...remembered]);
      } finally {
        arm.model.dispose();
      }
    }
  });

  it('averages 2 x 2 windows of each view with pool 2', () => {
    const [pooled] = encodeImages(tilesPlugin(tower, SIZE.vision), images.slice(0, 1), { pool: 2 });
    const full = features[0]!;
    const D = full.featureDim;
    expect(pooled!.grid).toEqual({ rows: 2, cols: 2 });
    expect(pooled!.tokensPerView).toBe(4);
    for (const [view, r, c, d] of [[0, 0, 0, 0], [full.thumbnailIndex, 1, 1, D - 1], [3, 1, 0, 5]] as const) {
      const at = (row: number, col: number) => full.features[((view * 16 + row * 4 + col) * D) + d]!;
      const expected = (at(2 * r, 2 * c) + at(2 * r, 2 * c + 1) + at(2 * r + 1, 2 * c) + at(2 * r + 1, 2 * c + 1)) / 4;
      expect(pooled!.features[(view * 4 + r * 2 + c) * D + d]).toBeCloseTo(expected, 5);
    }
  });

  it('refuses a trainable ViT and features from other ViT weights', () => {
    const arm = buildArm('hybrid', SIZE, 9); // its own random ViT: not the tower the features came from
    try {
      arm.model.trainOnly('fusion');
      expect(() => arm.image.continuousIn!.encode(features)).toThrow(/encoded by a ViT with other weights/);
      restore(arm.image.encoder, snapshot(tower));
      arm.model.trainOnly('all');
      expect(() => arm.image.continuousIn!.encode(features)).toThrow(/ViT parameters are trainable.*freeze image.encoder/);
      expect(() => arm.image.prepare(dataset.sample('test', 0).image as never)).toThrow(/expected ImageFeatures from encodeImages/);
    } finally {
      arm.model.dispose();
    }
  });
});

describe('the hybrid arm', () => {
  it('refuses an image with more tiles than its budget, naming the sample', () => {
    const tower = buildViT(SIZE.vision, 5);
    const [item] = encodeImages(tilesPlugin(tower, SIZE.vision), [dataset.sample('test', 0).image]);
    tower.dispose();
    const small = buildArm('hybrid', { ...SIZE, vision: { ...SIZE.vision, maxTiles: 9 } }, 9);
    try {
      expect(item!.views - 1).toBeGreaterThan(9);
      expect(() => small.model.loss([questionSample({ question: 'what color is the square?', answer: 'red' }, item!, true)])).toThrow(
        new RegExp(`sample 0, part 1: .* has ${item!.views - 1} tiles, over nvlmHybrid's tile budget of 9`),
      );
    } finally {
      small.model.dispose();
    }
  });

  it('is thumbnail-only early fusion at init: the tiles change nothing until the gates open', async () => {
    const tower = buildViT(SIZE.vision, 5);
    const images = [0, 1].map((i) => dataset.sample('test', i).image);
    const features = encodeImages(tilesPlugin(tower, SIZE.vision), images);
    // The same items with every tile's features replaced by noise (the thumbnail kept).
    const noisy = features.map((f) => {
      const values = f.features.slice();
      const thumbnailStart = f.thumbnailIndex * f.tokensPerView * f.featureDim;
      for (let i = 0; i < values.length; i++) if (i < thumbnailStart || i >= thumbnailStart + f.tokensPerView * f.featureDim) values[i] = Math.sin(i) * 3;
      return { ...f, features: values };
    });
    const arm = buildArm('hybrid', SIZE, 9);
    try {
      restore(arm.image.encoder, snapshot(tower));
      arm.model.trainOnly('fusion');
      const samples = (items: ImageFeatures[]) => items.map((item) => questionSample({ question: 'what shape is the red one?', answer: 'star' }, item, true));
      const a = tf.tidy(() => arm.model.loss(samples(features)).dataSync()[0]);
      const b = tf.tidy(() => arm.model.loss(samples(noisy)).dataSync()[0]);
      expect(b).toBe(a);
      // Opening one gate makes the tiles matter.
      const gate = arm.model.namedParameters().find(([name]) => /inserted\..*attn_gate$/.test(name))![1];
      gate.assign(tf.fill(gate.shape, 0.5));
      const c = tf.tidy(() => arm.model.loss(samples(features)).dataSync()[0]);
      const d = tf.tidy(() => arm.model.loss(samples(noisy)).dataSync()[0]);
      expect(c).not.toBe(d);
    } finally {
      arm.model.dispose();
      tower.dispose();
    }
  });

  it('trains exactly the projector and the cross-attention blocks in stage 1', async () => {
    const arm = buildArm('hybrid', SIZE, 9);
    try {
      const summary = arm.model.trainOnly('fusion');
      const names = arm.model.namedParameters().filter(([, v]) => v.trainable).map(([name]) => name);
      expect(names.length).toBeGreaterThan(0);
      expect(names.every((n) => n.startsWith('image.projector.') || n.startsWith('llm.model.inserted.'))).toBe(true);
      expect(summary.trainableParameters).toBe(arm.model.countParameters({ trainableOnly: true }));
    } finally {
      arm.model.dispose();
    }
  });
});

describe('training pool', () => {
  it('draws each step as a pure function of (seed, step), questions of the pool image', () => {
    const pool = buildPool(new ShapesDataset(fineDetailOptions({ seed: 0, shapesPerImage: { min: 2, max: 3 } })), 1, 20, ['shape', 'color']);
    expect(pool).toHaveLength(20);
    expect(pool.every((p) => p.shapeCount >= 2)).toBe(true);
    const a = drawBatch(pool, 1, 5, 16);
    expect(drawBatch(pool, 1, 5, 16)).toEqual(a);
    expect(drawBatch(pool, 1, 6, 16)).not.toEqual(a);
    expect(drawBatch(pool, 2, 5, 16)).not.toEqual(a);
    for (const draw of a) {
      const questions = Object.values(pool[draw.image]!.questions).flat();
      expect(questions).toContainEqual(draw.question);
      expect(['shape', 'color']).toContain(draw.question.type);
    }
    expect(new Set(TILE_TAGS).size).toBe(16);
  });

  it('draws a type more often by its weight', () => {
    const pool = buildPool(new ShapesDataset(fineDetailOptions({ seed: 0, shapesPerImage: { min: 2, max: 3 } })), 1, 50, ['shape', 'color']);
    const share = (weights: Record<string, number>) => {
      const draws = Array.from({ length: 40 }, (_, step) => drawBatch(pool, 1, step, 32, weights)).flat();
      return draws.filter((d) => d.question.type === 'shape').length / draws.length;
    };
    const even = share({});
    const twice = share({ shape: 2 });
    expect(Math.abs(even - 0.5)).toBeLessThan(0.1); // images without one of the types shift it a little
    expect(twice).toBeGreaterThan(even + 0.08);
    expect(share({ shape: 0 })).toBeLessThan(0.2); // only images without a colour question
  });
});

// A reduced run of the whole recipe on a smaller geometry with the same ratios: 64 px images cut into 4 x 4 tiles of
// 16 px, a 16 px thumbnail (a quarter of the side: 8-12 px shapes become 2-3 px), one shape of three kinds and three
// colours per image, shape questions. The thumbnail cannot show the kind; the tiles can.
// NOT YET CALIBRATED: on the shared machine (load 7-10) it did not finish within its budget, so its bars were never
// measured; it runs only with NVLM_H_REDUCED=1 until its size and bars are settled (README, "Test").
const reducedRun = process.env.NVLM_H_REDUCED ? describe : describe.skip;
const REDUCED_SIZE: NvlmSize = {
  vision: { tileSize: 16, patchSize: 4, hiddenSize: 32, numLayers: 2, numHeads: 2, intermediateSize: 64, maxTiles: 16, merge: 1, pool: 2 },
  llm: { hiddenSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 64 },
  projector: 'mlp2x_gelu',
  xattnLayers: [1],
  tileTags: true,
};
const REDUCED_DATA = { kinds: ['circle', 'square', 'cross'], colors: ['red', 'green', 'blue'], shapeSize: { min: 8, max: 12 }, minGap: 2 } as const;

reducedRun('a reduced run', () => {
  let dir: string;
  let result: NvlmResult;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nvlm-h-'));
    const options: NvlmOptions = {
      size: REDUCED_SIZE,
      data: { ...REDUCED_DATA, imageSizes: [{ width: 64, height: 64 }], shapesPerImage: 1, seed: 0 },
      visionData: { ...REDUCED_DATA, imageSizes: [{ width: 16, height: 16 }], shapesPerImage: 1, seed: 0 },
      poolSize: 300,
      types: ['shape'],
      phases: {
        vision: { steps: 200, learningRate: 1e-2 },
        visionTask: { steps: 20, learningRate: 3e-3 },
        text: { steps: 30, learningRate: 1e-2 },
        stage1: { steps: 30, learningRate: 1e-2 },
        stage2: { steps: 160, learningRate: 5e-3 },
      },
      batchSize: 32,
      seed: 1,
      heldOutPerType: 80,
      log: process.env.NVLM_TEST_LOG ? (line) => console.log(line) : undefined,
      visionTowerPath: join(dir, 'tower.safetensors'),
      checkpointPath: join(dir, 'hybrid.safetensors'),
    };
    result = await runNvlm(options);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the kind from the tiles: the hybrid far above thumbnail-only fusion and the text-only baseline', () => {
    const hybrid = result.arms.hybrid!.final.byType.shape!.accuracy;
    const thumbnail = result.arms.thumbnail!.final.byType.shape!.accuracy;
    const baseline = result.baseline.byType.shape!.accuracy;
    console.log(`reduced run, shape questions: hybrid ${hybrid}, thumbnail-only ${thumbnail}, text-only ${baseline}`);
    expect(hybrid).toBeGreaterThanOrEqual(0.8);
    expect(hybrid - thumbnail).toBeGreaterThanOrEqual(0.2);
    expect(baseline).toBeLessThanOrEqual(0.5);
  });

  it('reloads the trainable-only checkpoint onto fresh frozen parts with the same answers, and leaves no tensors', async () => {
    const before = tf.memory().numTensors;
    const check = await checkTrainableCheckpoint(result, result.arms.hybrid!, REDUCED_SIZE, 1);
    expect(check.same).toBe(check.compared);
    expect(check.savedTensors).toBeLessThan(check.totalTensors);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the training script', () => {
  it('rejects an unknown flag with its usage and exit code 2', async () => {
    expect(await unknownFlagProblems(new URL('../dist/train.js', import.meta.url))).toEqual([]);
  });
});
