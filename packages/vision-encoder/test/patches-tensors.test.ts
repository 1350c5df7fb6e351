// Tensor ops of the patch utilities: Fuyu patches and row breaks, tile cutting, 2x2 merge and pixel shuffle,
// checked against index loops and the published Fuyu / InternVL / Qwen2-VL code (PyTorch reference).
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, expectNoLeaks, setupTestBackend, torchAvailable } from '@chimera/core/testing';
import { extractPatches, padToPatchMultiple, rawPatchGrid, RawPatchEmbedding } from '../src/patches/raw-patches';
import { cutTiles } from '../src/patches/tiling';
import { mergePatches, mergedGridShape, pixelShuffle, pixelShuffleGridShape } from '../src/patches/merge';
import { runPatchesReference, type PatchesReferenceResult } from './patches-reference';

const FUYU_CASES = [
  { shape: [6, 9, 3], patch: 3 },
  { shape: [10, 4, 3], patch: 2 },
].map(({ shape, patch }) => ({ ...ramp(shape), shape, patch }));
const SHUFFLE_CASES = [
  { shape: [2, 4, 6, 3], scale: 0.5, version: 'v2' as const },
  { shape: [1, 4, 6, 3], scale: 0.5, version: 'v1' as const },
  { shape: [1, 6, 6, 2], scale: 1 / 3, version: 'v2' as const },
].map((c) => ({ ...c, ...ramp(c.shape) }));
const MERGE_CASES = [
  { shape: [4, 6, 3], merge: 2 },
  { shape: [6, 4, 5], merge: 2 },
].map((c) => ({ ...c, ...ramp(c.shape) }));

let reference: PatchesReferenceResult | undefined;
/** One PyTorch run for the whole file (starting Python with torch takes seconds). */
function torchReference(): PatchesReferenceResult {
  reference ??= runPatchesReference({
    fuyu_patchify: FUYU_CASES.map(({ data, shape, patch }) => ({ data, shape, patch })),
    pixel_shuffle: SHUFFLE_CASES.map(({ data, shape, scale, version }) => ({ data, shape, scale, version })),
    qwen_merge: MERGE_CASES.map(({ data, shape, merge }) => ({ data, shape, merge })),
  });
  return reference;
}

/** Distinct values so any misplaced element shows: value = index / 1000. */
function ramp(shape: number[]): { data: number[]; tensor: () => tf.Tensor } {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = Array.from({ length: size }, (_, i) => i / 1000);
  return { data, tensor: () => tf.tensor(data, shape) };
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThan(tol);
}

/** Independent k x k merge by index loops: token (i, j) = concat over (dy, dx) of x[k*i+dy][k*j+dx]. */
function loopMerge(x: number[], rows: number, cols: number, dim: number, k: number): number[] {
  const out: number[] = [];
  const mr = Math.ceil(rows / k);
  const mc = Math.ceil(cols / k);
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < mc; j++) {
      for (let dy = 0; dy < k; dy++) {
        for (let dx = 0; dx < k; dx++) {
          const r = k * i + dy;
          const c = k * j + dx;
          for (let d = 0; d < dim; d++) out.push(r < rows && c < cols ? x[(r * cols + c) * dim + d]! : 0);
        }
      }
    }
  }
  return out;
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  describe('raw patches (Fuyu)', () => {
    it('flattens each patch row-major, channels last, patches row-major', async () => {
      const [h, w, c, p] = [4, 6, 3, 2];
      const { data, tensor } = ramp([h, w, c]);
      const image = tensor() as tf.Tensor3D;
      const patches = await expectNoLeaks(() => extractPatches(image, p));
      expect(patches.shape).toEqual([(h / p) * (w / p), p * p * c]);
      const expected: number[] = [];
      for (let pr = 0; pr < h / p; pr++)
        for (let pc = 0; pc < w / p; pc++)
          for (let py = 0; py < p; py++)
            for (let px = 0; px < p; px++)
              for (let ch = 0; ch < c; ch++) expected.push(data[((pr * p + py) * w + pc * p + px) * c + ch]!);
      close(patches.dataSync(), expected);
      tf.dispose([image, patches]);
    });

    it.skipIf(!torchAvailable())("matches Fuyu's patchify_image (PyTorch)", () => {
      const ref = torchReference();
      FUYU_CASES.forEach((item, i) => {
        const patches = tf.tidy(() => extractPatches(item.tensor() as tf.Tensor3D, item.patch));
        close(patches.dataSync(), ref.fuyu_patchify[i]!);
        patches.dispose();
      });
    });

    it('pads at the bottom and right only, and refuses unpadded input', () => {
      expect(rawPatchGrid(31, 60, 30)).toEqual({ rows: 2, cols: 2 });
      const image = tf.ones([3, 5, 3]) as tf.Tensor3D;
      const padded = padToPatchMultiple(image, 4, -1);
      expect(padded.shape).toEqual([4, 8, 3]);
      const values = padded.arraySync() as number[][][];
      expect(values[0]![0]).toEqual([1, 1, 1]);
      expect(values[2]![4]).toEqual([1, 1, 1]);
      expect(values[3]![0]).toEqual([-1, -1, -1]); // bottom row padded
      expect(values[0]![5]).toEqual([-1, -1, -1]); // right columns padded
      expect(() => extractPatches(image, 4)).toThrow(/5x3 image .* not a multiple of the 4-pixel patch; pad it first/);
      tf.dispose([image, padded]);
    });

    it('puts the row-break embedding exactly after each row of patches', async () => {
      const embed = new RawPatchEmbedding({ patchSize: 2, dim: 5 });
      const [rows, cols] = [3, 4];
      const { tensor } = ramp([rows * 2, cols * 2, 3]);
      const pixels = tensor() as tf.Tensor3D;
      const out = await expectNoLeaks(() => embed.forward(pixels));
      expect(out.patchGrid).toEqual({ rows, cols });
      expect(out.features.shape).toEqual([rows * (cols + 1), 5]);
      expect(embed.tokenCount({ rows, cols })).toBe(rows * (cols + 1));
      const features = out.features.arraySync() as number[][];
      const rowBreak = Array.from(embed.rowBreak!.dataSync());
      // Independent: patch vectors through the projection by plain arithmetic.
      const patches = tf.tidy(() => extractPatches(pixels, 2)).arraySync() as number[][];
      const weight = embed.proj.weight.arraySync() as number[][];
      const bias = Array.from(embed.proj.bias!.dataSync());
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c <= cols; c++) {
          const token = features[r * (cols + 1) + c]!;
          if (c === cols) {
            close(token, rowBreak);
          } else {
            const patch = patches[r * cols + c]!;
            const expected = bias.map((b, d) => patch.reduce((sum, v, k) => sum + v * weight[k]![d]!, b));
            close(token, expected, 1e-4);
            expect(Math.abs(token[0]! - rowBreak[0]!)).toBeGreaterThan(1e-6);
          }
        }
      }
      tf.dispose([pixels, out.features]);
      embed.dispose();
    });

    it('sends gradients to the projection and the row break; no row break when disabled', () => {
      const embed = new RawPatchEmbedding({ patchSize: 2, dim: 4 });
      const pixels = tf.randomNormal([4, 6, 3], 0, 1, 'float32', 3) as tf.Tensor3D;
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(embed.forward(pixels).features)) as tf.Scalar);
      const names = embed.namedParameters().map(([n]) => n);
      expect(names).toEqual(['row_break', 'proj.weight', 'proj.bias']);
      for (const [, v] of embed.namedParameters()) {
        const g = grads[v.name];
        expect(g, v.name).toBeDefined();
        expect(tf.max(tf.abs(g!)).dataSync()[0]).toBeGreaterThan(0);
      }
      // d(sum of squares)/d(row_break) = 2 * rows * row_break: each of the 2 rows repeats it once.
      close(grads[embed.rowBreak!.name]!.dataSync(), Array.from(embed.rowBreak!.dataSync()).map((v) => 4 * v), 1e-5);
      tf.dispose(Object.values(grads));
      const plain = new RawPatchEmbedding({ patchSize: 2, dim: 4, rowBreaks: false });
      const out = plain.forward(pixels);
      expect(out.features.shape).toEqual([6, 4]);
      expect(plain.rowBreak).toBeNull();
      tf.dispose([pixels, out.features]);
      embed.dispose();
      plain.dispose();
    });
  });

  describe('tiles', () => {
    it('cuts tiles row-major', async () => {
      const grid = { rows: 2, cols: 3 };
      const t = 2;
      const { data, tensor } = ramp([grid.rows * t, grid.cols * t, 3]);
      const image = tensor() as tf.Tensor3D;
      const tiles = await expectNoLeaks(() => cutTiles(image, grid, t));
      expect(tiles.shape).toEqual([6, t, t, 3]);
      const expected: number[] = [];
      const width = grid.cols * t;
      for (let tr = 0; tr < grid.rows; tr++)
        for (let tc = 0; tc < grid.cols; tc++)
          for (let y = 0; y < t; y++)
            for (let x = 0; x < t; x++)
              for (let ch = 0; ch < 3; ch++) expected.push(data[((tr * t + y) * width + tc * t + x) * 3 + ch]!);
      close(tiles.dataSync(), expected);
      expect(() => cutTiles(image, { rows: 2, cols: 2 }, t)).toThrow(/needs a 4x4 image .* got 6x4; resize it first/);
      tf.dispose([image, tiles]);
    });
  });

  describe('merging', () => {
    it('concat-merges 2x2 windows (and 3x3) in (dy, dx) order, batched or not', async () => {
      for (const [rows, cols, dim, k] of [
        [4, 6, 3, 2],
        [6, 3, 2, 3],
      ] as const) {
        const { data, tensor } = ramp([rows, cols, dim]);
        const x = tensor() as tf.Tensor3D;
        const merged = await expectNoLeaks(() => mergePatches(x, { factor: k }));
        expect(merged.shape).toEqual([rows / k, cols / k, k * k * dim]);
        close(merged.dataSync(), loopMerge(data, rows, cols, dim, k));
        const batch = tf.stack([x, tf.neg(x)]) as tf.Tensor4D;
        const mergedBatch = mergePatches(batch, { factor: k });
        expect(mergedBatch.shape).toEqual([2, rows / k, cols / k, k * k * dim]);
        const expected = loopMerge(data, rows, cols, dim, k);
        close(mergedBatch.dataSync(), [...expected, ...expected.map((v) => -v)]);
        tf.dispose([x, merged, batch, mergedBatch]);
      }
    });

    it('refuses odd grids by default and zero-pads them on request', () => {
      const { data, tensor } = ramp([3, 5, 2]);
      const x = tensor() as tf.Tensor3D;
      expect(() => mergePatches(x)).toThrow(/3x5 patch grid is not divisible by the 2x2 merge window.*oddGrid: 'pad'/);
      expect(() => mergedGridShape({ rows: 3, cols: 5 })).toThrow(/not divisible/);
      expect(mergedGridShape({ rows: 3, cols: 5 }, { oddGrid: 'pad' })).toEqual({ rows: 2, cols: 3 });
      const merged = mergePatches(x, { oddGrid: 'pad' });
      expect(merged.shape).toEqual([2, 3, 8]);
      close(merged.dataSync(), loopMerge(data, 3, 5, 2, 2));
      tf.dispose([x, merged]);
    });

    it('pixel shuffle v2 equals the concat merge; v1 transposes the grid', () => {
      const { tensor } = ramp([4, 6, 3]);
      const x = tensor() as tf.Tensor3D;
      const merged = mergePatches(x);
      const v2 = pixelShuffle(x, { scale: 0.5 });
      const v1 = pixelShuffle(x, { scale: 0.5, version: 'v1' });
      expect(v2.shape).toEqual([2, 3, 12]);
      expect(v1.shape).toEqual([3, 2, 12]);
      expect(pixelShuffleGridShape({ rows: 4, cols: 6 }, { version: 'v1' })).toEqual({ rows: 3, cols: 2 });
      close(v2.dataSync(), merged.dataSync());
      const transposed = tf.transpose(merged, [1, 0, 2]);
      close(v1.dataSync(), transposed.dataSync());
      expect(() => pixelShuffle(x, { scale: 0.3 })).toThrow(/scale must be 1\/k/);
      tf.dispose([x, merged, v1, v2, transposed]);
    });

    it.skipIf(!torchAvailable())("matches InternVL's pixel_shuffle and Qwen2-VL's merger order (PyTorch)", () => {
      const ref = torchReference();
      SHUFFLE_CASES.forEach((c, i) => {
        const out = tf.tidy(() => pixelShuffle(c.tensor() as tf.Tensor4D, { scale: c.scale, version: c.version }));
        close(out.dataSync(), ref.pixel_shuffle[i]!);
        out.dispose();
      });
      MERGE_CASES.forEach((c, i) => {
        const out = tf.tidy(() => mergePatches(c.tensor() as tf.Tensor3D, { factor: c.merge }));
        close(out.dataSync(), ref.qwen_merge[i]!);
        out.dispose();
      });
    });

    it('passes gradients through the merge unchanged (a permutation)', () => {
      const x = tf.randomNormal([4, 4, 3], 0, 1, 'float32', 9) as tf.Tensor3D;
      const weights = tf.randomNormal([2, 2, 12], 0, 1, 'float32', 10);
      const grad = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(mergePatches(input as tf.Tensor3D), weights)))(x);
      // Each input element receives the weight of the merged slot it moved to.
      const w = weights.arraySync() as number[][][];
      const g = grad.arraySync() as number[][][];
      for (let r = 0; r < 4; r++)
        for (let c = 0; c < 4; c++)
          for (let d = 0; d < 3; d++) {
            const slot = ((r % 2) * 2 + (c % 2)) * 3 + d;
            expect(g[r]![c]![d]).toBeCloseTo(w[Math.floor(r / 2)]![Math.floor(c / 2)]![slot]!, 5);
          }
      tf.dispose([x, weights, grad]);
    });
  });
});
