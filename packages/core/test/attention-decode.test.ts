/**
 * The one-token (decode step) paths of attention: `attendHeads` with one query row per KV head computes its dot
 * products as broadcast products and sums instead of batched matMuls, `Attention` splits and merges heads by
 * reshape and rotates queries and keys in one pass. Each is held to a float64 reference written from the
 * definition (softmax(q k^T / sqrt(Dh) + bias) v), to the full forward over the whole sequence, and to finite
 * differences for its gradients.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync, gradCheck, Rng } from '../src/testing';
import { Attention, MASK_VALUE, attendHeads } from '../src/nn/attention';
import { RotaryEmbedding, sequentialPositions } from '../src/nn/rope';
import { KVCache } from '../src/generation/kv-cache';

function randn(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
}

/** softmax(q k^T / sqrt(Dh) + bias) v in float64: q [B, H, 1, Dh], keys/values [B, Hkv, S, Dh], bias(b, h, j). */
function naiveOneQuery(q: tf.Tensor, keys: tf.Tensor, values: tf.Tensor, bias?: (b: number, h: number, j: number) => number): number[] {
  const [B, H, , Dh] = q.shape as number[];
  const [, Hkv, S] = keys.shape as number[];
  const G = H! / Hkv!;
  const qv = q.dataSync();
  const kv = keys.dataSync();
  const vv = values.dataSync();
  const out: number[] = [];
  for (let b = 0; b < B!; b++) {
    for (let h = 0; h < H!; h++) {
      const kvh = Math.floor(h / G);
      const base = (b * Hkv! + kvh) * S!;
      const scores = Array.from({ length: S! }, (_, j) => {
        let s = 0;
        for (let d = 0; d < Dh!; d++) s += qv[(b * H! + h) * Dh! + d]! * kv[(base + j) * Dh! + d]!;
        return s / Math.sqrt(Dh!) + (bias ? Math.max(bias(b, h, j), MASK_VALUE) : 0);
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const z = e.reduce((a, c) => a + c, 0);
      for (let d = 0; d < Dh!; d++) out.push(e.reduce((acc, p, j) => acc + (p / z) * vv[(base + j) * Dh! + d]!, 0));
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('one query row per KV head matches the float64 definition (MHA, GQA, a padding bias)', () => {
    for (const [heads, kvHeads] of [
      [4, 4],
      [4, 2],
    ] as const) {
      const q = randn([2, heads, 1, 8], 1);
      const keys = randn([2, kvHeads, 5, 8], 2);
      const values = randn([2, kvHeads, 5, 8], 3);
      // Row 1 has two padded keys; -Infinity is clamped to MASK_VALUE as for any bias.
      const biasOf = (b: number, _h: number, j: number) => (b === 1 && j < 2 ? (j === 0 ? -Infinity : MASK_VALUE) : 0);
      const bias = tf.tensor4d([0, 0, 0, 0, 0, -Infinity, MASK_VALUE, 0, 0, 0], [2, 1, 1, 5]);
      const plain = expectNoLeaksSync(() => attendHeads(q, keys, values));
      const masked = expectNoLeaksSync(() => attendHeads(q, keys, values, { bias }));
      expect(plain.shape).toEqual([2, heads, 1, 8]);
      expect(maxAbsDiff(plain.dataSync(), naiveOneQuery(q, keys, values))).toBeLessThan(1e-5);
      expect(maxAbsDiff(masked.dataSync(), naiveOneQuery(q, keys, values, biasOf))).toBeLessThan(1e-5);
      tf.dispose([q, keys, values, bias, plain, masked]);
    }
  });

  it('gradients through the one-row path match finite differences (queries, keys, values)', () => {
    const probe = randn([1, 3, 1, 4], 7);
    const report = gradCheck(
      (q, keys, values) => tf.sum(tf.mul(attendHeads(q!, keys!, values!), probe)) as tf.Scalar,
      [randn([1, 3, 1, 4], 4), randn([1, 3, 6, 4], 5), randn([1, 3, 6, 4], 6)],
    );
    expect(report.checked).toBeGreaterThan(40);
    probe.dispose();
  });

  it('decoding one token at a time equals the full forward (MHA, RoPE tables [B, T, R] and [T, R], QK-norm, padding)', () => {
    const attn = new Attention({ dim: 24, numHeads: 4, headDim: 6, causal: true, qkNorm: 'rms' });
    const rope = new RotaryEmbedding({ headDim: 6, theta: 100 });
    for (const batch of [1, 2]) {
      const T = 5;
      const x = randn([batch, T, 24], 10 + batch);
      // Row 1 (batch 2) starts with a padded token: a bias masks it for every query, positions count real tokens.
      const padded = batch === 2;
      const keyBias = (length: number) =>
        tf.tensor4d(Array.from({ length: batch * length }, (_, i) => (padded && i === length ? MASK_VALUE : 0)), [batch, 1, 1, length]);
      const positionsOf = (from: number, count: number) =>
        tf.tensor2d(Array.from({ length: batch * count }, (_, i) => {
          const [b, t] = [Math.floor(i / count), from + (i % count)];
          return padded && b === 1 ? Math.max(t - 1, 0) : t;
        }), [batch, count], 'int32');
      const full = tf.tidy(() => {
        const causal = tf.tensor2d(Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? MASK_VALUE : 0)), [T, T]);
        const bias = tf.add(tf.reshape(causal, [1, 1, T, T]), keyBias(T));
        return attn.forward(x, { rotary: rope.forward(positionsOf(0, T)), bias });
      });
      const cache = new KVCache({ numLayers: 1, numKvHeads: 4, headDim: 6, batch });
      const steps: tf.Tensor[] = [];
      for (let t = 0; t < T; t++) {
        steps.push(
          tf.tidy(() => {
            const tables = rope.forward(positionsOf(t, 1));
            // Batch 1: the [T, R] tables the decoder passes; otherwise [B, T, R].
            const rotary = batch === 1 ? { cos: tf.reshape(tables.cos, [1, 6]), sin: tf.reshape(tables.sin, [1, 6]) } : tables;
            return attn.forward(tf.slice(x, [0, t, 0], [-1, 1, -1]), { rotary, cache, layer: 0, bias: keyBias(t + 1) });
          }),
        );
      }
      const stitched = tf.concat(steps, 1);
      // Row 1's padded first token attends to nothing real; compare the real positions only.
      const realRows = padded ? tf.slice(stitched, [0, 1, 0], [-1, -1, -1]) : stitched;
      const fullRows = padded ? tf.slice(full, [0, 1, 0], [-1, -1, -1]) : full;
      expect(maxAbsDiff(realRows.dataSync(), fullRows.dataSync())).toBeLessThan(1e-5);
      cache.dispose();
      tf.dispose([x, full, stitched, realRows, fullRows, ...steps]);
    }
    attn.dispose();
  });

  it('a one-token cross-attention query over a cached context matches the definition', () => {
    const attn = new Attention({ dim: 8, numHeads: 2, kvInputDim: 6 });
    const x = randn([1, 1, 8], 20);
    const context = randn([1, 7, 6], 21);
    const cache = new KVCache({ numLayers: 1, numKvHeads: 2, headDim: 4, batch: 1 });
    const first = tf.tidy(() => attn.forward(x, { context, cache, layer: 0 }));
    const again = tf.tidy(() => attn.forward(x, { context, cache, layer: 0 })); // reads the static entry
    const expected = tf.tidy(() => {
      const q = tf.transpose(tf.reshape(attn.q_proj.forward(x), [1, 1, 2, 4]), [0, 2, 1, 3]);
      const k = tf.transpose(tf.reshape(attn.k_proj.forward(context), [1, 7, 2, 4]), [0, 2, 1, 3]);
      const v = tf.transpose(tf.reshape(attn.v_proj.forward(context), [1, 7, 2, 4]), [0, 2, 1, 3]);
      const mixed = tf.tensor4d(naiveOneQuery(q, k, v), [1, 2, 1, 4]);
      return attn.o_proj.forward(tf.reshape(mixed, [1, 1, 8]));
    });
    expect(maxAbsDiff(first.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    expect(Array.from(again.dataSync())).toEqual(Array.from(first.dataSync()));
    cache.dispose();
    tf.dispose([x, context, first, again, expected]);
    attn.dispose();
  });

  it('one-token decode steps leave only the cache behind', () => {
    const attn = new Attention({ dim: 8, numHeads: 2, causal: true });
    const rope = new RotaryEmbedding({ headDim: 4 });
    const x = randn([1, 3, 8], 30);
    const before = tf.memory().numTensors;
    const cache = new KVCache({ numLayers: 1, numKvHeads: 2, headDim: 4, batch: 1 });
    for (let t = 0; t < 3; t++) {
      tf.tidy(() => {
        attn.forward(tf.slice(x, [0, t, 0], [-1, 1, -1]), { rotary: rope.forward(sequentialPositions(1, 1, t)), cache, layer: 0 });
      });
      expect(tf.memory().numTensors).toBe(before + 2);
    }
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    attn.dispose();
  });
});
