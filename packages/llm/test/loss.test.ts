import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Trainer } from '@chimera/core';
import { Rng, TEST_BACKENDS, setupTestBackend, expectNoLeaksSync } from '@chimera/core/testing';
import { causalLMLoss, shiftedTargets } from '../src/loss';
import { CausalLM } from '../src/model/causal-lm';
import { tinyLlama } from '../src/config';

/** Cross-entropy written out in float64: mean over mask-weighted positions of logsumexp - logit[target]. */
function plainCrossEntropy(logits: number[][][], targets: number[][], mask: number[][]): number {
  let total = 0;
  let weight = 0;
  logits.forEach((row, b) =>
    row.forEach((v, t) => {
      const m = mask[b]![t]!;
      if (m === 0) return;
      const max = Math.max(...v);
      const lse = max + Math.log(v.reduce((s, x) => s + Math.exp(x - max), 0));
      total += m * (lse - v[targets[b]![t]!]!);
      weight += m;
    }),
  );
  return total / weight;
}

function randomLogits(b: number, t: number, v: number, scale: number, seed: number): number[][][] {
  const rng = new Rng(seed);
  return Array.from({ length: b }, () => Array.from({ length: t }, () => Array.from({ length: v }, () => scale * (rng.next() * 2 - 1))));
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  const targets = [
    [3, 0, 6],
    [-100, 2, 5],
  ];
  const mask = [
    [1, 1, 0],
    [0, 1, 1],
  ];

  it('equals a plain-JS cross-entropy, also for large logits (log-softmax stability)', () => {
    for (const scale of [1, 60]) {
      const logits = randomLogits(2, 3, 7, scale, 1 + scale);
      const l = tf.tensor3d(logits);
      const t = tf.tensor2d(targets, undefined, 'int32');
      const m = tf.tensor2d(mask);
      const loss = expectNoLeaksSync(() => causalLMLoss(l, t, m), 'loss');
      const expected = plainCrossEntropy(logits, targets, mask);
      expect(Math.abs(loss.dataSync()[0]! - expected) / Math.max(1, expected)).toBeLessThan(1e-5);
      expect(Number.isFinite(loss.dataSync()[0]!)).toBe(true);
      tf.dispose([l, t, m, loss]);
    }
  });

  it('masked positions are ignored: their logits and targets do not change the loss or get gradient', () => {
    const logits = randomLogits(2, 3, 7, 2, 5);
    const l = tf.tensor3d(logits);
    const t = tf.tensor2d(targets, undefined, 'int32');
    const m = tf.tensor2d(mask);
    const changed = logits.map((row, b) => row.map((v, i) => (mask[b]![i] ? v : v.map((x) => x + 10 * Math.sin(x)))));
    const l2 = tf.tensor3d(changed);
    const t2 = tf.tensor2d([[3, 0, 1], [4, 2, 5]], undefined, 'int32');
    const a = causalLMLoss(l, t, m);
    const b = causalLMLoss(l2, t2, m);
    expect(a.dataSync()[0]).toBe(b.dataSync()[0]);
    // The gradient is (softmax - onehot) * mask / count, zero on masked rows.
    const grad = tf.grad((x: tf.Tensor) => causalLMLoss(x, t, m))(l);
    const g = grad.arraySync() as number[][][];
    logits.forEach((row, bi) =>
      row.forEach((v, ti) => {
        const max = Math.max(...v);
        const z = v.reduce((s, x) => s + Math.exp(x - max), 0);
        v.forEach((x, k) => {
          const p = Math.exp(x - max) / z;
          const expected = mask[bi]![ti] ? (p - (k === targets[bi]![ti] ? 1 : 0)) / 4 : 0;
          expect(Math.abs(g[bi]![ti]![k]! - expected)).toBeLessThan(1e-6);
        });
      }),
    );
    tf.dispose([l, t, m, l2, t2, a, b, grad]);
  });

  it('clear errors for mismatched shapes, an all-zero mask and counted targets outside the vocabulary', () => {
    const l = tf.zeros([2, 3, 7]);
    const t = tf.tensor2d(targets, undefined, 'int32');
    const m = tf.tensor2d(mask);
    const wrong = tf.zeros([2, 4], 'int32');
    const zeros = tf.zeros([2, 3]);
    const floatTargets = tf.zeros([2, 3]);
    const outside = tf.tensor2d([[3, 0, 6], [0, 7, 5]], undefined, 'int32');
    const before = tf.memory().numTensors;
    expect(() => causalLMLoss(l, wrong, m)).toThrow(/targets must be \[2, 3\] to match logits \[2,3,7\], got \[2,4\]/);
    expect(() => causalLMLoss(l, t, zeros)).toThrow(/mask selects no position/);
    expect(() => causalLMLoss(l, floatTargets, m)).toThrow(/targets must be int32/);
    expect(() => causalLMLoss(l, outside, m)).toThrow(/target 7 at row 1, position 1 is outside the vocabulary \[0, 7\)/);
    expect(() => causalLMLoss(tf.zeros([2, 3]), t, m)).toThrow(/logits must be \[B, T, V\]/);
    expect(tf.memory().numTensors).toBe(before + 1); // the zeros made inline in the last call
    tf.dispose([l, t, m, wrong, zeros, floatTargets, outside]);
  });

  it('shiftedTargets: position t predicts token t + 1, and padding neither predicts nor is predicted', () => {
    const ids = tf.tensor2d([[1, 2, 3, 4], [0, 0, 5, 6]], undefined, 'int32');
    const padding = tf.tensor2d([[1, 1, 1, 1], [0, 0, 1, 1]]);
    const { targets: shifted, mask: shiftedMask } = expectNoLeaksSync(() => shiftedTargets(ids, padding), 'shift');
    expect(shifted.arraySync()).toEqual([[2, 3, 4, 0], [0, 5, 6, 0]]);
    expect(shiftedMask.arraySync()).toEqual([[1, 1, 1, 0], [0, 0, 1, 0]]);
    const plain = shiftedTargets(ids);
    expect(plain.mask.arraySync()).toEqual([[1, 1, 1, 0], [1, 1, 1, 0]]);
    expect(() => shiftedTargets(tf.zeros([2, 4]))).toThrow(/ids must be int32 \[B, T\]/);
    tf.dispose([ids, padding, shifted, shiftedMask, plain.targets, plain.mask]);
  });
});

describe('training', () => {
  beforeAll(() => setupTestBackend('wasm'));

  it('a tiny model overfits a few sequences through core\'s Trainer (loss falls by a large factor)', async () => {
    const model = new CausalLM(tinyLlama({ vocabSize: 32, numLayers: 2, hiddenSize: 32, intermediateSize: 64 }));
    const rng = new Rng(3);
    const sequences = Array.from({ length: 4 }, () => Array.from({ length: 10 }, () => rng.nextInt(32)));
    const trainer = new Trainer({
      model,
      steps: 60,
      optimizer: { learningRate: 1e-2, weightDecay: 0 },
      progress: false,
      batchAt: () => {
        const ids = tf.tensor2d(sequences, undefined, 'int32');
        return { ids, ...shiftedTargets(ids) };
      },
      loss: (m, batch) => causalLMLoss(m.forward({ inputIds: batch.ids }).logits, batch.targets, batch.mask),
    });
    const before = tf.memory().numTensors;
    const { history } = await trainer.fit();
    expect(tf.memory().numTensors).toBe(before); // no training step leaked
    trainer.dispose();
    const first = history[0]!.loss!;
    const last = history[history.length - 1]!.loss!;
    expect(first).toBeGreaterThan(2.5); // about ln(32) = 3.47 at the start
    expect(last).toBeLessThan(first / 10);
    model.dispose();
  });
});
