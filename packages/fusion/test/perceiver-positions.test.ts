// The Perceiver's optional media positions (Flamingo's time embeddings): zero at init (the model starts as without
// them), order-aware once learned (attention over a set is blind to order), trained by the loss, and bounded.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { manualSeed } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { PerceiverResampler } from '../src/resamplers/perceiver';

const DIM = 16;
const options = { numLatents: 4, depth: 2, heads: 2, headDim: 8 };
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe.each(TEST_BACKENDS)('PerceiverResampler mediaPositions (%s)', (backend) => {
  let features: tf.Tensor;
  let reversed: tf.Tensor;
  beforeAll(async () => {
    await setupTestBackend(backend);
    manualSeed(3);
    features = tf.randomNormal([2, 6, DIM], 0, 1, 'float32', 7);
    reversed = tf.reverse(features, 1);
  });
  afterAll(() => tf.dispose([features, reversed]));

  it('is zero at init: the same output as the Perceiver without it, and no leaks', () => {
    const plain = new PerceiverResampler(DIM, options);
    const timed = new PerceiverResampler(DIM, { ...options, mediaPositions: 8 });
    const zeros = tf.zeros([8, DIM]);
    timed.loadStateDict({ ...plain.stateDict(), media_pos: zeros });
    zeros.dispose();
    const [a, b] = [plain.forward(features), expectNoLeaksSync(() => timed.forward(features))];
    expect(b.shape).toEqual([2, 4, DIM]);
    expect(maxDiff(a, b)).toBe(0);
    tf.dispose([a, b]);
    plain.dispose();
    timed.dispose();
  });

  it('without positions the order of the features is invisible; with learned ones it is not', () => {
    const perceiver = new PerceiverResampler(DIM, { ...options, mediaPositions: 6 });
    const [a, b] = [perceiver.forward(features), perceiver.forward(reversed)];
    expect(maxDiff(a, b)).toBeLessThan(1e-5); // zero positions: a set
    perceiver.media_pos!.assign(tf.randomNormal([6, DIM], 0, 1, 'float32', 11));
    const [c, d] = [perceiver.forward(features), perceiver.forward(reversed)];
    expect(maxDiff(c, d)).toBeGreaterThan(1e-2);
    tf.dispose([a, b, c, d]);
    perceiver.dispose();
  });

  it('gets a gradient from the loss, only for the positions in use', () => {
    const perceiver = new PerceiverResampler(DIM, { ...options, mediaPositions: 10 });
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.square(perceiver.forward(features))) as tf.Scalar, [perceiver.media_pos!]);
    const grad = grads[perceiver.media_pos!.name]!;
    const used = tf.tidy(() => tf.sum(tf.abs(tf.slice(grad, [0, 0], [6, DIM]))).dataSync()[0]!);
    const unused = tf.tidy(() => tf.sum(tf.abs(tf.slice(grad, [6, 0], [4, DIM]))).dataSync()[0]!);
    expect(used).toBeGreaterThan(0);
    expect(unused).toBe(0);
    tf.dispose([value, ...Object.values(grads)]);
    perceiver.dispose();
  });

  it('refuses items longer than its positions, and bad counts, saying what to do', () => {
    const perceiver = new PerceiverResampler(DIM, { ...options, mediaPositions: 5 });
    expect(() => perceiver.forward(features)).toThrow(/an item has 6 features but mediaPositions is 5; raise mediaPositions/);
    expect(() => new PerceiverResampler(DIM, { ...options, mediaPositions: 0 })).toThrow(/mediaPositions must be a positive integer/);
    perceiver.dispose();
  });
});
