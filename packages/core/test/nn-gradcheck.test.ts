import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear } from '../src/nn/linear';
import { LayerNorm, RMSNorm } from '../src/nn/norm';
import { Embedding } from '../src/nn/embedding';
import { MLP, GatedMLP } from '../src/nn/mlp';
import { Conv2d, type Conv2dOptions } from '../src/nn/conv';
import { gelu, geluTanh, silu, quickGelu } from '../src/nn/activations';
import type { Module } from '../src/nn/module';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { gradCheck, gradCheckVariables } from '../src/testing/grad-check';
import { expectNoLeaks } from '../src/testing/leaks';

/**
 * A scalar loss that weights every output by a fixed, irregular factor; a plain sum would make some gradients
 * vanish identically (LayerNorm's input gradient of sum(y) is zero), hiding errors.
 */
function weightedSum(y: tf.Tensor): tf.Scalar {
  return tf.tidy(
    () => tf.sum(tf.mul(y, tf.sin(tf.add(tf.mul(tf.reshape(tf.range(0, y.size), y.shape), 1.7), 0.3)))) as tf.Scalar,
  );
}

/** Checks the gradient w.r.t. the input and every parameter of a layer, and that the check leaks nothing. */
async function checkLayer(module: Module, forward: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): Promise<void> {
  await expectNoLeaks(() => {
    const inputReport = gradCheck((input) => weightedSum(forward(input)), [x]);
    expect(inputReport.checked).toBeGreaterThan(0);
    const paramReport = gradCheckVariables(() => weightedSum(forward(x)), module.trainableVariables());
    expect(paramReport.checked).toBeGreaterThanOrEqual(module.trainableVariables().length);
  }, 'gradient check');
  x.dispose();
  module.dispose();
}

const randn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('Linear (with and without bias, rank-3 input)', async () => {
    const withBias = new Linear(4, 3);
    await checkLayer(withBias, (x) => withBias.forward(x), randn([2, 3, 4], 1));
    const noBias = new Linear(5, 2, { bias: false });
    await checkLayer(noBias, (x) => noBias.forward(x), randn([3, 5], 2));
  });

  it('LayerNorm', async () => {
    const norm = new LayerNorm(6);
    // Non-trivial affine parameters, so their gradients are not the plain normalised input.
    tf.tidy(() => {
      norm.weight!.assign(tf.add(1, randn([6], 3)));
      norm.bias!.assign(randn([6], 4));
    });
    await checkLayer(norm, (x) => norm.forward(x), randn([3, 6], 5));
  });

  it('RMSNorm', async () => {
    const norm = new RMSNorm(6);
    tf.tidy(() => norm.weight!.assign(tf.add(1, randn([6], 6))));
    await checkLayer(norm, (x) => norm.forward(x), randn([2, 2, 6], 7));
  });

  it('Embedding (table, incl. repeated ids) and its tied head', async () => {
    const emb = new Embedding(5, 3, { std: 1 });
    const ids = tf.tensor2d(
      [
        [1, 4, 1],
        [0, 4, 4],
      ],
      [2, 3],
      'int32',
    );
    await expectNoLeaks(() => {
      gradCheckVariables(() => weightedSum(emb.forward(ids)), [emb.weight]);
      const h = randn([2, 3], 8);
      gradCheck((hidden) => weightedSum(emb.attend(hidden)), [h]);
      gradCheckVariables(() => weightedSum(emb.attend(h)), [emb.weight]);
      h.dispose();
      emb.releaseHeadCache(); // the copy attend keeps for calls without a tape (nn-embedding-head.test.ts)
    }, 'gradient check');
    ids.dispose();
    emb.dispose();
  });

  it('MLP (exact GELU)', async () => {
    const mlp = new MLP(4, 6);
    await checkLayer(mlp, (x) => mlp.forward(x), randn([3, 4], 9));
  });

  it('GatedMLP (SwiGLU)', async () => {
    const mlp = new GatedMLP(4, 6);
    await checkLayer(mlp, (x) => mlp.forward(x), randn([2, 2, 4], 10));
  });

  it.each<[string, Conv2dOptions]>([
    ['same', { padding: 'same' }],
    ['stride 2, explicit padding 1', { stride: 2, padding: 1 }],
    ['dilation 2, valid', { dilation: 2 }],
  ])('Conv2d, %s', async (_, options) => {
    const conv = new Conv2d(2, 3, 3, options);
    await checkLayer(conv, (x) => conv.forward(x), randn([1, 6, 6, 2], 11));
  });

  it.each([
    ['gelu', gelu],
    ['gelu_tanh', geluTanh],
    ['silu', silu],
    ['quick_gelu', quickGelu],
  ] as const)('activation %s', (_, act) => {
    const x = randn([20], 12);
    gradCheck((input) => weightedSum(act(tf.mul(input, 2))), [x]);
    x.dispose();
  });

  it('rejects a deliberately wrong gradient', () => {
    // d/dx x^2 is 2x; the custom gradient claims x.
    const badSquare = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return { value: tf.square(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, saved[0]!) };
    });
    const goodSquare = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return { value: tf.square(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0]!, 2)) };
    });
    const x = randn([8], 13);
    expect(() => gradCheck((input) => weightedSum(badSquare(input) as tf.Tensor), [x])).toThrow(
      /gradient check failed at \d+\/8 coordinates/,
    );
    expect(() => gradCheck((input) => weightedSum(goodSquare(input) as tf.Tensor), [x])).not.toThrow();
    x.dispose();
  });

  it('rejects a layer whose gradient is subtly off (a 5% error in one parameter)', () => {
    const linear = new Linear(3, 2);
    const x = randn([4, 3], 14);
    // The forward uses the weight, but the gradient reaching it is scaled by 1.05.
    const skewed = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: tf.clone(args[0] as tf.Tensor),
      gradFunc: (dy: tf.Tensor) => tf.mul(dy, 1.05),
    }));
    const f = () => weightedSum(tf.add(tf.matMul(x, skewed(linear.weight) as tf.Tensor2D), linear.bias!));
    expect(() => gradCheckVariables(f, [linear.weight])).toThrow(/gradient check failed/);
    expect(() => gradCheckVariables(f, [linear.bias!])).not.toThrow();
    x.dispose();
    linear.dispose();
  });
});
