// z-loss (PaLM; Chameleon): coefficient * mean log(Z)^2 over the counted positions, by hand; as a causalLMLoss
// option it adds exactly that to the cross-entropy; its gradient pulls log(Z) towards 0; bad coefficients fail.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { causalLMLoss, zLoss } from '../src/index';

describe('z-loss', () => {
  beforeAll(() => setupTestBackend('cpu'));
  const rows = [
    [
      [1, 2, 3],
      [0.5, -1, 4],
    ],
    [
      [2, 2, 2],
      [-3, 0, 1],
    ],
  ];
  const mask = [
    [1, 0],
    [1, 1],
  ];

  it('is coefficient * the masked mean of log(Z)^2, by hand', () => {
    const logZ = rows.map((r) => r.map((l) => Math.log(l.reduce((s, v) => s + Math.exp(v), 0))));
    const expected = (1e-2 * (logZ[0]![0]! ** 2 + logZ[1]![0]! ** 2 + logZ[1]![1]! ** 2)) / 3;
    const got = expectNoLeaksSync(() => {
      const l = tf.tensor3d(rows);
      const m = tf.tensor2d(mask);
      const value = tf.tidy(() => zLoss(l, m, 1e-2).dataSync()[0]!);
      tf.dispose([l, m]);
      return value;
    }, 'zLoss');
    expect(got).toBeCloseTo(expected, 6);
  });

  it('as a causalLMLoss option adds exactly the z term; 0 is the plain loss', () => {
    tf.tidy(() => {
      const l = tf.tensor3d(rows);
      const m = tf.tensor2d(mask);
      const t = tf.tensor2d([[2, 0], [1, 2]], [2, 2], 'int32');
      const plain = causalLMLoss(l, t, m).dataSync()[0]!;
      expect(causalLMLoss(l, t, m, { zLoss: 0 }).dataSync()[0]).toBe(plain);
      const withZ = causalLMLoss(l, t, m, { zLoss: 0.1 }).dataSync()[0]!;
      expect(withZ - plain).toBeCloseTo(zLoss(l, m, 0.1).dataSync()[0]!, 5);
    });
  });

  it('its gradient lowers log(Z) (shifts every logit down)', () => {
    tf.tidy(() => {
      const l = tf.tensor3d(rows);
      const m = tf.tensor2d(mask);
      const grad = tf.grad((x: tf.Tensor) => zLoss(x, m, 1))(l);
      // d/dl log(Z)^2 = 2 log(Z) softmax(l): positive wherever log(Z) > 0 and counted, zero where masked.
      const g = grad.arraySync() as number[][][];
      expect(g[0]![0]!.every((v) => v > 0)).toBe(true);
      expect(g[0]![1]!.every((v) => v === 0)).toBe(true);
    });
  });

  it('errors for a negative or non-finite coefficient and a mismatched mask', () => {
    tf.tidy(() => {
      const l = tf.tensor3d(rows);
      const m = tf.tensor2d(mask);
      const t = tf.zeros([2, 2], 'int32');
      expect(() => zLoss(l, m, -1)).toThrow(/coefficient must be a finite number >= 0/);
      expect(() => causalLMLoss(l, t, m, { zLoss: Number.NaN })).toThrow(/zLoss must be a finite number >= 0/);
      expect(() => zLoss(l, tf.ones([2, 3]), 1)).toThrow(/mask must be \[2, 2\]/);
    });
  });
});
