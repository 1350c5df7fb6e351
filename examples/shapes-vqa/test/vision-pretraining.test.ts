import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, manualSeed } from '@chimera/core';
import { VisionTransformer, tinyViT, visionModality, type VisionModality } from '@chimera/vision-encoder';
import { SHAPE_KINDS, ShapesDataset, fineDetailOptions, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import { PatchLabeler, labelClasses, patchAccuracy, patchLabelLoss, pretrainVisionTower, viewBatch, type ViewGroup, type ViewSource } from '../src';

beforeAll(async () => {
  await initBackend();
});

const tinyTower = (patchSize: number, imageSize = 32) =>
  new VisionTransformer(tinyViT({ imageSize, patchSize, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64, positions: 'rope2d' }));

describe('patch-label loss', () => {
  it('is the weighted mean cross-entropy, background patches at backgroundWeight', () => {
    const classes = labelClasses(SHAPE_KINDS);
    // Two patches: a shape (kind 2) with uniform logits, background with a confident right answer.
    const kindLogits = [Array(classes.kind).fill(0), [10, ...Array(classes.kind - 1).fill(0)]];
    const fake = {
      forward: () => ({
        kind: tf.tensor3d([kindLogits]),
        color: tf.zeros([1, 2, classes.color]),
        size: tf.zeros([1, 2, classes.size]),
        pair: tf.zeros([1, 2, classes.pair]),
      }),
    } as unknown as PatchLabeler;
    const labels = { kind: tf.tensor2d([[2, 0]], [1, 2], 'int32'), color: tf.tensor2d([[1, 0]], [1, 2], 'int32'), size: tf.tensor2d([[1, 0]], [1, 2], 'int32'), pair: tf.tensor2d([[3, 0]], [1, 2], 'int32') };
    const group: ViewGroup = { pixels: tf.zeros([1, 8, 8, 3]), labels, kinds: ['whole'] };
    const shapeCe = Math.log(classes.kind);
    const backgroundCe = Math.log(1 + (classes.kind - 1) * Math.exp(-10));
    const lossOf = (backgroundWeight: number, weights = { kind: 1, color: 0, size: 0, pair: 0 }) => {
      const loss = patchLabelLoss(fake, [group], weights, backgroundWeight);
      const value = loss.dataSync()[0]!;
      loss.dispose();
      return value;
    };
    expect(lossOf(1)).toBeCloseTo((shapeCe + backgroundCe) / 2, 5);
    expect(lossOf(0.1)).toBeCloseTo((shapeCe + 0.1 * backgroundCe) / 1.1, 5);
    // every set with uniform logits: ln(classes) each, the weights summing them
    expect(lossOf(1, { kind: 0, color: 1, size: 0, pair: 2 })).toBeCloseTo(Math.log(classes.color) + 2 * Math.log(classes.pair), 5);
    tf.dispose([group.pixels, ...Object.values(labels)]);
  });
});

describe('view batches', () => {
  it("'native' views of several sizes go in one group per size; 'tiles' views can leave out the thumbnail", () => {
    const dataset = new ShapesDataset(fineDetailOptions({ sizes: [{ width: 64, height: 48 }, { width: 48, height: 64 }] }));
    const native = visionModality({ mode: 'native', encoder: tinyTower(8), mergeSize: 2 });
    const groups = viewBatch({ dataset, prepare: (i) => native.prepare(i) }, 'train', [0, 1, 2, 3, 4, 5], 8);
    // native mode may rescale (here up to its minimum pixel count): groups follow the processed sizes
    const processed = [0, 1, 2, 3, 4, 5].map((i) => native.prepare(dataset.sample('train', i).image)).map((p) => `${p.height}x${p.width}`);
    expect(new Set(processed).size).toBe(2);
    expect(groups.map((g) => `${g.pixels.shape[1]}x${g.pixels.shape[2]}`).sort()).toEqual([...new Set(processed)].sort());
    expect(groups.reduce((n, g) => n + g.pixels.shape[0], 0)).toBe(6);
    for (const g of groups) expect(g.labels.kind.shape).toEqual([g.pixels.shape[0], (g.pixels.shape[1] / 8) * (g.pixels.shape[2] / 8)]);
    groups.forEach((g) => tf.dispose([g.pixels, ...Object.values(g.labels)]));

    const tiles = visionModality({ mode: 'tiles', encoder: tinyTower(8), tileSize: 32, maxTiles: 4 });
    const prepared = tiles.prepare(dataset.sample('train', 0).image);
    const [onlyTiles] = viewBatch({ dataset, prepare: (i) => tiles.prepare(i), views: ['tile'] }, 'train', [0], 8);
    expect(onlyTiles!.pixels.shape[0]).toBe(prepared.views - 1);
    expect(onlyTiles!.kinds.every((k) => k === 'tile')).toBe(true);
    tf.dispose([onlyTiles!.pixels, ...Object.values(onlyTiles!.labels)]);
    expect(() => viewBatch({ dataset, prepare: (i) => native.prepare(i), views: ['tile'] }, 'train', [0], 8)).toThrow(/none of the views .* is one of tile/);
  });
});

// A reduced problem that learns in well under a minute of CPU: three kinds at the fine-detail shape sizes on
// 64x64 images, a 2-layer 32-wide tower with 8-pixel patches (a shape spans one or two patches a side).
const SMALL: ShapesOptions = { ...fineDetailOptions({ sizes: [{ width: 64, height: 64 }] }), kinds: ['circle', 'square', 'triangle'] };

async function learn(plugin: (tower: VisionTransformer) => VisionModality, views: ViewSource['views'], steps: number) {
  manualSeed(7);
  const tower = tinyTower(8);
  const image = plugin(tower);
  const dataset = new ShapesDataset(SMALL);
  const source: ViewSource = { dataset, prepare: (picture) => image.prepare(picture), views };
  const untrained = new PatchLabeler(tower, -1, dataset.kinds);
  const before = patchAccuracy(untrained, source, 40);
  untrained.dispose();
  const tensors = tf.memory().numTensors;
  const result = await pretrainVisionTower(tower, { ...source, featureLayer: -1, steps, learningRate: 1e-2, batchSize: 8, seed: 1, validationImages: 40 });
  expect(tf.memory().numTensors).toBe(tensors); // the head, batches and optimizer state are gone; the tower stays
  tower.dispose();
  return { before, after: result.accuracy!, history: result.history };
}

describe('vision pretraining', () => {
  it("'native': the tower learns each patch's kind and colour on held-out images", async () => {
    const { before, after, history } = await learn((tower) => visionModality({ mode: 'native', encoder: tower, mergeSize: 2, layers: -1 }), ['whole'], 1200);
    console.log(`native: kind ${before.kind.toFixed(3)} -> ${after.kind.toFixed(3)}, colour ${before.color.toFixed(3)} -> ${after.color.toFixed(3)} over ${after.patches} shape patches`);
    expect(history).toHaveLength(1200);
    expect(before.kind).toBeLessThan(0.5);
    expect(after.kind).toBeGreaterThan(0.8);
    expect(after.color).toBeGreaterThan(0.9);
  });

  it("'tiles': tiles and thumbnail train together; the tiles learn the kinds", async () => {
    const { before, after } = await learn(
      (tower) => visionModality({ mode: 'tiles', encoder: tower, tileSize: 32, maxTiles: 4, layers: -1 }),
      ['tile', 'thumbnail'],
      1200,
    );
    console.log(`tiles: kind ${before.kind.toFixed(3)} -> ${JSON.stringify(after.byView)}`);
    expect(before.byView.tile!.kind).toBeLessThan(0.5);
    expect(after.byView.tile!.kind).toBeGreaterThan(0.8);
    expect(after.byView.thumbnail!.color).toBeGreaterThan(0.8); // colour shows even at half size
  });
});
