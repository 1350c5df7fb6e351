// VisionTransformer: shapes over input sizes, tap indexing, CLS selection, 2-D RoPE, gradients, errors, leaks.
import { describe, it, expect, beforeAll, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync, gradCheckVariables, Rng } from '@chimera/core/testing';
import { VisionTransformer } from '../src/vit/tower';
import { tinyViT, vitConfig, clipVitL14_336, siglipSo400m14, clipVitB16, type ViTConfig } from '../src/vit/config';
import { bicubicResizeMatrix, resizeGridBicubic } from '../src/vit/positions';

function randomPixels(batch: number, height: number, width: number, seed: number, channels = 3): tf.Tensor4D {
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: batch * height * width * channels }, () => rng.normal());
  return tf.tensor4d(data, [batch, height, width, channels]);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Gives every parameter (norms included) non-trivial values, so a skipped or swapped one shows. */
function perturb(tower: VisionTransformer, seed: number): void {
  const rng = new Rng(seed);
  for (const [, v] of tower.namedParameters()) {
    tf.tidy(() => v.assign(tf.add(v, tf.tensor(Float32Array.from({ length: v.size }, () => 0.2 * rng.normal()), v.shape))));
  }
}

/** Thrown message of a call that must fail without leaving tensors behind. */
function errorOf(fn: () => unknown): string {
  let message = '';
  expectNoLeaksSync(() => {
    try {
      fn();
    } catch (error) {
      message = (error as Error).message;
    }
  }, 'failing call');
  if (!message) throw new Error('expected the call to throw');
  return message;
}

describe('config presets', () => {
  it('carry the HF sizes and family structure', () => {
    expect(clipVitL14_336()).toMatchObject({ imageSize: 336, patchSize: 14, hiddenSize: 1024, numLayers: 24, numHeads: 16, intermediateSize: 4096, activation: 'quick_gelu', clsToken: true, preNorm: true, patchBias: false });
    expect(clipVitB16()).toMatchObject({ imageSize: 224, patchSize: 16, hiddenSize: 768, numLayers: 12, layerNormEps: 1e-5 });
    expect(siglipSo400m14()).toMatchObject({ imageSize: 384, patchSize: 14, hiddenSize: 1152, numLayers: 27, numHeads: 16, intermediateSize: 4304, activation: 'gelu_tanh', clsToken: false, preNorm: false, patchBias: true, layerNormEps: 1e-6 });
  });

  it('rejects invalid configs with what to change', () => {
    expect(() => vitConfig({ imageSize: 30, patchSize: 4, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 8 })).toThrow(/multiple of patchSize/);
    expect(() => tinyViT({ hiddenSize: 18, numHeads: 4 })).toThrow(/divisible by numHeads/);
    expect(() => tinyViT({ positions: 'rope2d', hiddenSize: 12, numHeads: 2 })).toThrow(/divisible by 4/);
    expect(() => tinyViT({ activation: 'swoosh' })).toThrow(/activation 'swoosh' is unknown/);
  });
});

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('names its parameters after HF (out_proj as o_proj) and counts them', () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 1 }));
    const names = Object.keys(tower.stateDict()).sort();
    expect(names).toEqual(
      [
        'class_embedding',
        'patch_embedding.weight',
        'position_embedding.weight',
        'pre_layrnorm.weight',
        'pre_layrnorm.bias',
        'post_layernorm.weight',
        'post_layernorm.bias',
        ...['q_proj', 'k_proj', 'v_proj', 'o_proj', 'layer_norm1', 'layer_norm2', 'mlp.fc1', 'mlp.fc2'].flatMap((m) => {
          const path = m.startsWith('mlp') || m.startsWith('layer_norm') ? `layers.0.${m}` : `layers.0.self_attn.${m}`;
          return [`${path}.weight`, `${path}.bias`];
        }),
      ].sort(),
    );
    expect(tower.stateDict()['patch_embedding.weight']!.shape).toEqual([4, 4, 3, 16]);
    expect(tower.stateDict()['position_embedding.weight']!.shape).toEqual([17, 16]);
    tower.dispose();
  });

  it('gives the documented shapes for several input sizes and aspect ratios, matching tokenCount', () => {
    for (const config of [tinyViT(), tinyViT({ clsToken: false, preNorm: false, patchBias: true }), tinyViT({ positions: 'rope2d' })]) {
      const tower = new VisionTransformer(config);
      for (const [h, w] of [
        [16, 16],
        [8, 12],
        [24, 20],
        [4, 36],
      ] as const) {
        expectNoLeaksSync(() => {
          tf.tidy(() => {
            const out = tower.forward(randomPixels(2, h, w, h * w), { taps: [0, -2] });
            const tokens = (h / 4) * (w / 4) + (config.clsToken ? 1 : 0);
            expect(out.grid).toEqual({ rows: h / 4, cols: w / 4 });
            expect(out.hidden.shape).toEqual([2, tokens, 16]);
            expect(out.taps.map((t) => t.shape)).toEqual([
              [2, tokens, 16],
              [2, tokens, 16],
            ]);
            expect(out.hasClsToken).toBe(config.clsToken);
            expect(tower.tokenCount(h, w)).toBe(tokens);
            const { features } = tower.features(randomPixels(1, h, w, 3));
            expect(features.shape[1]).toBe(tower.tokenCount(h, w, 'default'));
            expect(tower.tokenCount(h, w, 'default')).toBe((h / 4) * (w / 4));
            tf.dispose([out.hidden, ...out.taps, features]);
          });
        }, `forward ${h}x${w}`);
      }
      tower.dispose();
    }
  });

  it('hidden state 0 is conv patches + CLS + positions after pre_layrnorm (checked with tf.conv2d)', () => {
    const tower = new VisionTransformer(tinyViT());
    perturb(tower, 3);
    tf.tidy(() => {
      const pixels = randomPixels(2, 16, 16, 5);
      const [state0] = tower.forward(pixels, { taps: 0 }).taps;
      const patches = tf.reshape(tf.add(tf.conv2d(pixels, tower.patch_embedding.weight as tf.Tensor4D, 4, 'valid'), 0), [2, 16, 16]);
      const cls = tf.tile(tf.reshape(tower.class_embedding!, [1, 1, 16]), [2, 1, 1]);
      const embedded = tf.add(tf.concat([cls, patches], 1), tf.expandDims(tower.position_embedding!.weight, 0));
      const { mean, variance } = tf.moments(embedded, -1, true);
      const normed = tf.add(tf.mul(tf.div(tf.sub(embedded, mean), tf.sqrt(tf.add(variance, 1e-5))), tower.pre_layrnorm!.weight!), tower.pre_layrnorm!.bias!);
      expect(maxAbsDiff(state0!, normed)).toBeLessThan(1e-5);
    });
    tower.dispose();
  });

  it('taps follow HF hidden_states indexing: i = after layer i, negatives from the end, final = post_layernorm', () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 3 }));
    perturb(tower, 4);
    tf.tidy(() => {
      const out = tower.forward(randomPixels(2, 12, 8, 6), { taps: [0, 1, 2, 3, -1, -2, -4, 'final'] });
      const [s0, s1, s2, s3, last, penultimate, first, final] = out.taps as tf.Tensor3D[];
      expect(maxAbsDiff(s1!, tower.layers[0]!.forward(s0!))).toBe(0);
      expect(maxAbsDiff(s2!, tower.layers[1]!.forward(s1!))).toBe(0);
      expect(maxAbsDiff(s3!, tower.layers[2]!.forward(s2!))).toBe(0);
      expect(maxAbsDiff(last!, s3!)).toBe(0);
      expect(maxAbsDiff(penultimate!, s2!)).toBe(0);
      expect(maxAbsDiff(first!, s0!)).toBe(0);
      expect(maxAbsDiff(final!, tower.post_layernorm!.forward(s3!))).toBe(0);
      expect(maxAbsDiff(out.hidden, final!)).toBe(0);
      // A tower without post_layernorm returns the last layer as its final output.
    });
    const bare = new VisionTransformer(tinyViT({ postNorm: false }));
    tf.tidy(() => {
      const out = bare.forward(randomPixels(1, 8, 8, 2), { taps: -1 });
      expect(maxAbsDiff(out.hidden, out.taps[0]!)).toBe(0);
    });
    bare.dispose();
    tower.dispose();
  });

  it("concat joins taps along features in order; select 'default' drops CLS, 'full' keeps it", () => {
    const tower = new VisionTransformer(tinyViT());
    tf.tidy(() => {
      const pixels = randomPixels(2, 8, 16, 7);
      const full = tower.forward(pixels, { taps: [-2, 0] });
      const joined = tower.forward(pixels, { taps: [-2, 0], concat: true });
      expect(joined.taps).toHaveLength(1);
      expect(maxAbsDiff(joined.taps[0]!, tf.concat(full.taps, -1))).toBe(0);

      const dropped = tower.forward(pixels, { taps: [-2, 0], select: 'default' });
      expect(dropped.hasClsToken).toBe(false);
      expect(maxAbsDiff(dropped.taps[1]!, tf.slice(full.taps[1]!, [0, 1, 0], [-1, -1, -1]))).toBe(0);
      expect(maxAbsDiff(dropped.hidden, tf.slice(full.hidden, [0, 1, 0], [-1, -1, -1]))).toBe(0);

      const llava = tower.features(pixels, { layers: [-2, 0] });
      expect(llava.layers).toEqual([1, 0]);
      expect(llava.features.shape).toEqual([2, 8, 32]);
      expect(maxAbsDiff(llava.features, tf.concat(dropped.taps, -1))).toBe(0);
      const withCls = tower.features(pixels, { layers: 'final', select: 'full' });
      expect(withCls.hasClsToken).toBe(true);
      expect(maxAbsDiff(withCls.features, full.hidden)).toBe(0);
    });
    tower.dispose();

    const noCls = new VisionTransformer(tinyViT({ clsToken: false, preNorm: false }));
    tf.tidy(() => {
      const pixels = randomPixels(1, 8, 8, 8);
      const a = noCls.forward(pixels, { select: 'default' });
      const b = noCls.forward(pixels, { select: 'full' });
      expect(a.hidden.shape).toEqual([1, 4, 16]); // nothing to drop
      expect(maxAbsDiff(a.hidden, b.hidden)).toBe(0);
      expect(a.hasClsToken || b.hasClsToken).toBe(false);
    });
    noCls.dispose();
  });

  it('features() computes no layer past the deepest one requested', () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 3 }));
    const spies = tower.layers.map((layer) => vi.spyOn(layer, 'forward'));
    tf.dispose(tower.features(randomPixels(1, 8, 8, 1), { layers: [1, 0] }).features);
    expect(spies.map((s) => s.mock.calls.length)).toEqual([1, 0, 0]);
    tf.dispose(tower.features(randomPixels(1, 8, 8, 1), { layers: -2 }).features);
    expect(spies.map((s) => s.mock.calls.length)).toEqual([2, 1, 0]);
    const out = tower.forward(randomPixels(1, 8, 8, 1));
    tf.dispose(out.hidden);
    expect(spies.map((s) => s.mock.calls.length)).toEqual([3, 2, 1]);
    tower.dispose();
  });

  it('dropRemainder ignores the border under one patch, as a strided conv does (SigLIP so400m at 384)', () => {
    expect(siglipSo400m14().dropRemainder).toBe(true);
    const tower = new VisionTransformer(tinyViT({ imageSize: 10, dropRemainder: true })); // trained grid 2x2
    expect(tower.position_embedding!.weight.shape).toEqual([5, 16]);
    expect(tower.tokenCount(11, 9)).toBe(5);
    tf.tidy(() => {
      const pixels = randomPixels(1, 11, 9, 3);
      const out = tower.forward(pixels);
      expect(out.grid).toEqual({ rows: 2, cols: 2 });
      const cropped = tower.forward(tf.slice(pixels, [0, 0, 0, 0], [-1, 8, 8, -1]) as tf.Tensor4D);
      expect(maxAbsDiff(out.hidden, cropped.hidden)).toBe(0);
    });
    expect(() => tower.patchGrid(3, 8)).toThrow(/at least 4/);
    tower.dispose();
  });

  it('learned positions are interpolated for other grids; the trained grid uses them as stored', () => {
    // Rows of the resize matrix sum to 1, so a constant grid stays constant at any size.
    for (const [from, to] of [
      [4, 7],
      [6, 3],
      [5, 5],
    ]) {
      const m = bicubicResizeMatrix(from!, to!);
      for (let r = 0; r < to!; r++) {
        const sum = Array.from(m.subarray(r * from!, (r + 1) * from!)).reduce((a, b) => a + b, 0);
        expect(sum).toBeCloseTo(1, 6);
      }
    }
    tf.tidy(() => {
      const constant = tf.fill([4, 4, 3], 2.5) as tf.Tensor3D;
      expect(maxAbsDiff(resizeGridBicubic(constant, 6, 3), tf.fill([6, 3, 3], 2.5))).toBeLessThan(1e-6);
      const tower = new VisionTransformer(tinyViT());
      const trained = tower.position_embedding!.forward({ rows: 4, cols: 4 });
      expect(maxAbsDiff(trained, tf.expandDims(tower.position_embedding!.weight, 0))).toBe(0);
      const wide = tower.position_embedding!.forward({ rows: 2, cols: 7 });
      expect(wide.shape).toEqual([1, 15, 16]);
      // The CLS position is kept as is.
      expect(maxAbsDiff(tf.slice(wide, [0, 0, 0], [1, 1, -1]), tf.slice(tf.expandDims(tower.position_embedding!.weight, 0), [0, 0, 0], [1, 1, -1]))).toBe(0);
      tower.dispose();
    });
  });

  it('2-D RoPE towers have no position table, work at any size and, unlike a position-free tower, see where patches are', () => {
    const rope = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    expect(Object.keys(rope.stateDict()).some((n) => n.startsWith('position_embedding'))).toBe(false);
    perturb(rope, 9);
    // The same weights with learned positions set to zero: a bag of patches (permutation-equivariant).
    const plain = new VisionTransformer(tinyViT());
    plain.loadStateDict(rope.stateDict(), { strict: false });
    tf.tidy(() => plain.position_embedding!.weight.assign(tf.zerosLike(plain.position_embedding!.weight)));
    tf.tidy(() => {
      const pixels = randomPixels(1, 8, 12, 10); // 2x3 patches
      // Swap the first and last patch columns (patch (0,0) <-> (0,2) and (1,0) <-> (1,2)).
      const [left, middle, right] = tf.split(pixels, [4, 4, 4], 2);
      const swapped = tf.concat([right!, middle!, left!], 2) as tf.Tensor4D;
      const order = [0, 3, 2, 1, 6, 5, 4]; // CLS, then the row-major patches after the swap
      const reorder = (x: tf.Tensor3D) => tf.gather(x, order, 1);
      const plainA = plain.forward(pixels).hidden;
      const plainB = plain.forward(swapped).hidden;
      expect(maxAbsDiff(reorder(plainB), plainA)).toBeLessThan(1e-5);
      const ropeA = rope.forward(pixels).hidden;
      const ropeB = rope.forward(swapped).hidden;
      expect(maxAbsDiff(reorder(ropeB), ropeA)).toBeGreaterThan(1e-2);
      expect(maxAbsDiff(ropeA, plainA)).toBeGreaterThan(1e-2);
      expect(rope.forward(randomPixels(2, 36, 8, 4)).hidden.shape).toEqual([2, 19, 16]);
    });
    rope.dispose();
    plain.dispose();
  });

  it('gradients reach every parameter and match finite differences (tiny tower, learned and 2-D RoPE)', () => {
    const configs: ViTConfig[] = [
      tinyViT({ imageSize: 8, hiddenSize: 8, numHeads: 2, intermediateSize: 8, numLayers: 1 }),
      tinyViT({ imageSize: 8, hiddenSize: 8, numHeads: 2, intermediateSize: 8, numLayers: 1, positions: 'rope2d', clsToken: false, preNorm: false, patchBias: true, activation: 'gelu_tanh' }),
    ];
    for (const config of configs) {
      const tower = new VisionTransformer(config);
      perturb(tower, 11);
      const pixels = randomPixels(1, 8, 12, 12); // 2x3 grid: interpolated positions for the learned tower
      const weights = tf.tidy(() => tf.randomNormal([1, tower.tokenCount(8, 12), 8], 0, 1, 'float32', 5));
      const loss = () => tf.sum(tf.mul(tower.forward(pixels).hidden, weights)) as tf.Scalar;
      const variables = tower.trainableVariables();
      expect(variables.length).toBe(Object.keys(tower.stateDict()).length);
      const { value, grads } = tf.variableGrads(loss, variables);
      for (const [name, v] of tower.namedParameters()) {
        const norm = tf.tidy(() => tf.norm(grads[v.name]!).dataSync()[0]!);
        expect(norm, `gradient of ${name}`).toBeGreaterThan(0);
      }
      tf.dispose([value, ...Object.values(grads)]);
      const report = gradCheckVariables(loss, variables, { maxCoords: 3, seed: 2 });
      expect(report.checked).toBeGreaterThan(20);
      tf.dispose([pixels, weights]);
      tower.dispose();
    }
  });

  it('bad input and options give clear errors and leak nothing', () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 2 }));
    tf.tidy(() => {
      const ok = randomPixels(1, 8, 8, 1);
      const bad = (shape: number[], dtype: 'float32' | 'int32' = 'float32') => tf.zeros(shape, dtype) as tf.Tensor as tf.Tensor4D;
      const [rank3, nchw, fourChannels, notDivisible, tooSmall, ints, empty] = [
        bad([8, 8, 3]),
        bad([1, 3, 8, 8]),
        bad([1, 8, 8, 4]),
        bad([1, 8, 10, 3]),
        bad([1, 2, 8, 3]),
        bad([1, 8, 8, 3], 'int32'),
        bad([0, 8, 8, 3]),
      ];
      expect(errorOf(() => tower.forward(rank3!))).toMatch(/expected pixels \[batch, height, width, 3\].*add a batch axis/);
      expect(errorOf(() => tower.forward(nchw!))).toMatch(/looks NCHW/);
      expect(errorOf(() => tower.forward(fourChannels!))).toMatch(/got \[1,8,8,4\]/);
      expect(errorOf(() => tower.features(notDivisible!))).toMatch(/8x10 .*multiples of 4.*8x12/);
      expect(errorOf(() => tower.forward(tooSmall!))).toMatch(/multiples of 4/);
      expect(errorOf(() => tower.forward(ints!))).toMatch(/float32/);
      expect(errorOf(() => tower.forward(empty!))).toMatch(/empty/);
      expect(errorOf(() => tower.forward(ok, { taps: 3 }))).toMatch(/tap 3 is out of range.*2 layers.*0\.\.2 or -3\.\.-1/);
      expect(errorOf(() => tower.forward(ok, { taps: [0, -4] }))).toMatch(/tap -4 is out of range/);
      expect(errorOf(() => tower.forward(ok, { taps: 1.5 }))).toMatch(/out of range/);
      expect(errorOf(() => tower.features(ok, { layers: [] }))).toMatch(/at least one layer/);
      expect(errorOf(() => tower.forward(ok, { select: 'cls' as never }))).toMatch(/'default' \(drop CLS\) or 'full'/);
      expect(() => tower.patchGrid(0, 8)).toThrow(/positive multiples/);
    });
    tower.dispose();
  });
});
