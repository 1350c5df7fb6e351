import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { expectNoLeaksSync } from '@chimera/core/testing';
import { VectorQuantizer, entropyLoss } from '../src/index';

beforeAll(async () => {
  await initBackend();
});

/** A 3-code, 2-wide codebook with a table set by hand. */
function handCodebook(update: 'loss' | 'ema' = 'loss', l2Norm = false): VectorQuantizer {
  const vq = new VectorQuantizer({ codebookSize: 3, codebookDim: 2, l2Norm, update, beta: 0.25, decay: 0.5, epsilon: 1e-5 });
  vq.embedding.weight.assign(tf.tensor2d([[1, 0], [0, 1], [-1, -1]]));
  return vq;
}

describe('VectorQuantizer', () => {
  it('picks the nearest code and computes the codebook and commitment losses by hand', () => {
    const vq = handCodebook();
    const z = tf.tensor3d([[[0.9, 0.2], [0.1, 0.7], [-2, -1]]]); // [1, 3, 2]
    const out = vq.forward(z);
    expect(Array.from(out.codes.dataSync())).toEqual([0, 1, 2]);
    // Squared errors: (0.1^2 + 0.2^2) + (0.1^2 + 0.3^2) + (1^2 + 0^2) = 0.05 + 0.1 + 1 = 1.15 over 6 values.
    expect(out.losses.codebook.dataSync()[0]).toBeCloseTo(1.15 / 6, 6);
    expect(out.losses.commitment.dataSync()[0]).toBeCloseTo((0.25 * 1.15) / 6, 6);
    expect(Array.from(out.quantized.dataSync())).toEqual([1, 0, 0, 1, -1, -1]);
    tf.dispose([z, out.quantized, out.codes, out.latents, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
    vq.dispose();
  });

  it('passes the gradient straight through to the latents (identity), and to the codes by the codebook loss', () => {
    const vq = handCodebook();
    const z = tf.variable(tf.tensor2d([[0.9, 0.2], [0.1, 0.7]]));
    const w = tf.tensor2d([[1, 2], [3, 4]]);
    const grads = tf.variableGrads(() => {
      const out = vq.forward(z);
      return tf.sum(tf.mul(out.quantized, w)) as tf.Scalar;
    }, [z]);
    expect(Array.from(grads.grads[z.name]!.dataSync())).toEqual([1, 2, 3, 4]);
    const codeGrads = tf.variableGrads(() => vq.forward(z).losses.codebook, [vq.embedding.weight]);
    // d/de mean((e - z)^2) over 4 values = 2 (e - z) / 4 for the chosen codes; code 2 was not chosen.
    const g = codeGrads.grads[vq.embedding.weight.name]!.arraySync() as number[][];
    expect(g[0]![0]).toBeCloseTo((2 * (1 - 0.9)) / 4, 6);
    expect(g[1]![1]).toBeCloseTo((2 * (1 - 0.7)) / 4, 6);
    expect(g[2]).toEqual([0, 0]);
    tf.dispose([z, w, grads.value, codeGrads.value, ...Object.values(grads.grads), ...Object.values(codeGrads.grads)]);
    vq.dispose();
  });

  it("moves codes by EMA exactly as the formula says, and keeps them out of the optimizer's reach", () => {
    const vq = handCodebook('ema');
    expect(vq.embedding.weight.trainable).toBe(false);
    const latents = tf.tensor2d([[0.8, 0.2], [0.6, 0.0], [0.0, 2.0]]);
    const codes = tf.tensor1d([0, 0, 1], 'int32');
    vq.emaUpdate(latents, codes);
    // decay 0.5: size = 0.5 * 1 + 0.5 * [2, 1, 0] = [1.5, 1, 0.5]; sum = 0.5 * table + 0.5 * [[1.4, 0.2], [0, 2], [0, 0]].
    const size = [1.5, 1, 0.5];
    const total = 3;
    const smoothed = size.map((s) => ((s + 1e-5) / (total + 3e-5)) * total);
    const sums = [[0.5 + 0.7, 0.1], [0, 0.5 + 1], [-0.5, -0.5]];
    const table = vq.embedding.weight.arraySync() as number[][];
    sums.forEach((row, i) => row.forEach((v, j) => expect(table[i]![j]).toBeCloseTo(v / smoothed[i]!, 5)));
    tf.dispose([latents, codes]);
    vq.dispose();
  });

  it('restarts only codes unused for longer than deadAfter, from the given latents', () => {
    const vq = handCodebook();
    const z = tf.tensor2d([[0.9, 0.1], [1.1, -0.1]]); // both pick code 0
    for (let i = 0; i < 3; i++) {
      const out = vq.forward(z, { record: true });
      tf.dispose([out.quantized, out.codes, out.latents, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
    }
    expect(vq.usage(10)).toBeCloseTo(1 / 3, 6);
    expect(vq.perplexity()).toBeCloseTo(1, 6);
    const before = vq.embedding.weight.arraySync() as number[][];
    const moved = vq.restartDeadCodes(z, 2);
    expect(moved).toBe(2);
    const after = vq.embedding.weight.arraySync() as number[][];
    expect(after[0]).toEqual(before[0]);
    for (const i of [1, 2]) {
      const nearest = Math.min(...[[0.9, 0.1], [1.1, -0.1]].map(([a, b]) => Math.hypot(after[i]![0]! - a!, after[i]![1]! - b!)));
      expect(nearest).toBeLessThan(0.01);
    }
    expect(vq.restartDeadCodes(z, 2)).toBe(0); // restarted codes get a grace period
    expect(vq.usage(10)).toBeCloseTo(1 / 3, 6); // but count as used only once chosen
    const exact = tf.tensor2d([[1, 0]]); // code 0 itself: the restarted codes (near z) stay unchosen
    for (let i = 0; i < 3; i++) {
      const out = vq.forward(exact, { record: true });
      tf.dispose([out.quantized, out.codes, out.latents, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
    }
    expect(vq.usage(10)).toBeCloseTo(1 / 3, 6);
    expect(vq.restartDeadCodes(z, 2)).toBe(2); // the grace period is over: dead again
    exact.dispose();
    z.dispose();
    vq.dispose();
  });

  it("matches LlamaGen's entropy loss on a hand example: confident and diverse is lower", () => {
    const diverse = tf.tensor2d([[10, 0], [0, 10]]);
    const collapsed = tf.tensor2d([[10, 0], [10, 0]]);
    const a = entropyLoss(diverse, 1).dataSync()[0]!;
    const b = entropyLoss(collapsed, 1).dataSync()[0]!;
    expect(a).toBeLessThan(b);
    expect(a).toBeCloseTo(-Math.log(2), 2);
    tf.dispose([diverse, collapsed]);
  });

  it('l2-normalises latents and codes when asked, and leaks nothing', () => {
    const vq = handCodebook('loss', true);
    const z = tf.tensor2d([[3, 0.1], [0, -5]]);
    const out = expectNoLeaksSync(() => vq.forward(z));
    const q = out.quantized.arraySync() as number[][];
    expect(Math.hypot(q[0]![0]!, q[0]![1]!)).toBeCloseTo(1, 5);
    expect(Array.from(out.codes.dataSync())).toEqual([0, 2]);
    tf.dispose([z, out.quantized, out.codes, out.latents, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
    vq.dispose();
  });

  it('refuses latents of the wrong width and codes outside the codebook', () => {
    const vq = handCodebook();
    const z = tf.zeros([2, 3]);
    expect(() => vq.forward(z)).toThrow(/latents must be \[\.\.\., 2\] \(the codebook width\), got \[2,3\]/);
    const ids = tf.tensor1d([0, 3], 'int32');
    expect(() => vq.lookup(ids)).toThrow(/code 3 at flat position 1 .* outside the codebook \[0, 3\)/);
    tf.dispose([z, ids]);
    vq.dispose();
  });
});
