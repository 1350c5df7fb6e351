import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync } from '../src/testing';
import { Attention, gatedPrefixAttention, type AttentionAdapter } from '../src/nn/attention';
import { RotaryEmbedding } from '../src/nn/rope';
import { KVCache } from '../src/generation/kv-cache';

/** Deterministic values in [-1, 1) (independent of tfjs randomness). */
function randomArray(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

/**
 * The adapter term written from the LLaMA-Adapter definition in float64: for each query head, softmax over the
 * P prefix keys of (rotated q . k) / sqrt(Dh), times the values, times the head's gate; then through o_proj's
 * weight (no bias: the bias is already in the plain output). Returns [B][T][dim].
 */
function naiveAdapterTerm(
  attn: Attention,
  x: number[][][],
  positions: number[][],
  keys: number[][][][], // [B][Hkv][P][Dh]
  values: number[][][][],
  gate: number[], // [H]
): number[][][] {
  const H = attn.numHeads;
  const Dh = attn.headDim;
  const G = H / attn.numKvHeads;
  const Wq = attn.q_proj.weight.arraySync() as number[][];
  const Wo = attn.o_proj.weight.arraySync() as number[][];
  const rotate = (v: number[], p: number) => {
    const half = Dh / 2;
    const out = v.slice();
    for (let j = 0; j < half; j++) {
      const a = p * Math.pow(10000, (-2 * j) / Dh);
      out[j] = v[j]! * Math.cos(a) - v[j + half]! * Math.sin(a);
      out[j + half] = v[j + half]! * Math.cos(a) + v[j]! * Math.sin(a);
    }
    return out;
  };
  return x.map((rows, b) =>
    rows.map((row, t) => {
      const qFull = Wq[0]!.map((_, o) => row.reduce((s, xi, i) => s + xi * Wq[i]![o]!, 0));
      const merged: number[] = [];
      for (let h = 0; h < H; h++) {
        const q = rotate(qFull.slice(h * Dh, (h + 1) * Dh), positions[b]![t]!);
        const kv = Math.floor(h / G);
        const scores = keys[b]![kv]!.map((k) => q.reduce((s, qd, d) => s + qd * k[d]!, 0) / Math.sqrt(Dh));
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < Dh; d++) merged.push(gate[h]! * e.reduce((s, p, j) => s + (p / z) * values[b]![kv]![j]![d]!, 0));
      }
      return Wo[0]!.map((_, o) => merged.reduce((s, m, i) => s + m * Wo[i]![o]!, 0));
    }),
  );
}

function reshape4(flat: number[], [a, b, c, d]: number[]): number[][][][] {
  return Array.from({ length: a! }, (_, i) =>
    Array.from({ length: b! }, (_, j) =>
      Array.from({ length: c! }, (_, k) => flat.slice(((i * b! + j) * c! + k) * d!, ((i * b! + j) * c! + k + 1) * d!)),
    ),
  );
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  const [B, T, P] = [2, 4, 3];
  const options = { dim: 16, numHeads: 4, numKvHeads: 2, causal: true } as const; // headDim 4, GQA groups of 2
  const positions = [
    [0, 1, 2, 3],
    [5, 6, 7, 8],
  ];
  const rotary = (pos: number[][]) => tf.tidy(() => new RotaryEmbedding({ headDim: 4 }).forward(tf.tensor2d(pos, undefined, 'int32')));

  it('adds gate * softmax(q k^T) v of the prefix before o_proj (against a float64 reference)', () => {
    const attn = new Attention(options);
    const xFlat = randomArray(B * T * 16, 3);
    const x = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => xFlat.slice((b * T + t) * 16, (b * T + t + 1) * 16)));
    const keysFlat = randomArray(B * 2 * P * 4, 11).map((v) => 2 * v);
    const valuesFlat = randomArray(B * 2 * P * 4, 12);
    const gate = [0.5, -1, 0.25, 2];
    const adapter: AttentionAdapter = {
      keys: tf.tensor4d(keysFlat, [B, 2, P, 4]),
      values: tf.tensor4d(valuesFlat, [B, 2, P, 4]),
      gate: tf.tensor1d(gate),
    };
    const xt = tf.tensor3d(x);
    const tables = rotary(positions);
    const plain = attn.forward(xt, { rotary: tables });
    const withAdapter = expectNoLeaksSync(() => attn.forward(xt, { rotary: tables, adapter }), 'adapter forward');
    const term = naiveAdapterTerm(attn, x, positions, reshape4(keysFlat, [B, 2, P, 4]), reshape4(valuesFlat, [B, 2, P, 4]), gate);
    const got = withAdapter.arraySync() as number[][][];
    const base = plain.arraySync() as number[][][];
    let maxDiff = 0;
    got.forEach((r, b) => r.forEach((v, t) => v.forEach((g, d) => (maxDiff = Math.max(maxDiff, Math.abs(g - base[b]![t]![d]! - term[b]![t]![d]!))))));
    expect(maxDiff).toBeLessThan(1e-4);
    // The term is not negligible, so the comparison above would catch a missing or wrong adapter.
    expect(Math.max(...term.flat(2).map(Math.abs))).toBeGreaterThan(0.05);
    tf.dispose([adapter.keys, adapter.values, adapter.gate, xt, tables.cos, tables.sin, plain, withAdapter]);
    attn.dispose();
  });

  it('a zero gate leaves the output bitwise unchanged; batch-1 prefixes broadcast over the batch', () => {
    const attn = new Attention(options);
    const xt = tf.tensor3d(randomArray(B * T * 16, 5), [B, T, 16]);
    const tables = rotary(positions);
    const keys1 = tf.tensor4d(randomArray(2 * P * 4, 6), [1, 2, P, 4]);
    const values1 = tf.tensor4d(randomArray(2 * P * 4, 7), [1, 2, P, 4]);
    const zero = tf.zeros([4]);
    const plain = attn.forward(xt, { rotary: tables });
    const gated0 = attn.forward(xt, { rotary: tables, adapter: { keys: keys1, values: values1, gate: zero } });
    const a = plain.dataSync();
    const b = gated0.dataSync();
    expect(a.every((v, i) => v === b[i])).toBe(true);

    const gate = tf.scalar(0.7);
    const broadcast = attn.forward(xt, { rotary: tables, adapter: { keys: keys1, values: values1, gate } });
    const keysTiled = tf.tile(keys1, [B, 1, 1, 1]);
    const valuesTiled = tf.tile(values1, [B, 1, 1, 1]);
    const tiled = attn.forward(xt, { rotary: tables, adapter: { keys: keysTiled, values: valuesTiled, gate } });
    expect(tf.max(tf.abs(tf.sub(broadcast, tiled))).dataSync()[0]).toBeLessThan(1e-6);
    expect(tf.max(tf.abs(tf.sub(broadcast, plain))).dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([xt, tables.cos, tables.sin, keys1, values1, zero, plain, gated0, gate, broadcast, keysTiled, valuesTiled, tiled]);
    attn.dispose();
  });

  it('gradients reach the gate (even at zero) and, once it is open, the prefix keys and values', () => {
    const attn = new Attention(options);
    const xt = tf.tensor3d(randomArray(B * T * 16, 8), [B, T, 16]);
    const tables = rotary(positions);
    const keys = tf.variable(tf.tensor4d(randomArray(2 * P * 4, 9), [1, 2, P, 4]));
    const values = tf.variable(tf.tensor4d(randomArray(2 * P * 4, 10), [1, 2, P, 4]));
    const gate = tf.variable(tf.zeros([4]));
    const gradsAt = () =>
      tf.variableGrads(() => tf.sum(tf.square(attn.forward(xt, { rotary: tables, adapter: { keys, values, gate } }))) as tf.Scalar, [
        gate,
        keys,
        values,
      ]);
    const closed = gradsAt();
    const norm = (t: tf.Tensor | undefined) => (t ? tf.norm(t).dataSync()[0]! : 0);
    expect(norm(closed.grads[gate.name])).toBeGreaterThan(1e-4);
    expect(norm(closed.grads[values.name])).toBe(0); // a closed gate passes nothing to the prefix
    gate.assign(tf.tensor1d([0.3, -0.2, 0.5, 0.1]));
    const open = gradsAt();
    expect(norm(open.grads[keys.name])).toBeGreaterThan(1e-5);
    expect(norm(open.grads[values.name])).toBeGreaterThan(1e-4);
    tf.dispose([closed.value, open.value, ...Object.values(closed.grads), ...Object.values(open.grads)]);
    tf.dispose([xt, tables.cos, tables.sin, keys, values, gate]);
    attn.dispose();
  });

  it('with a KV cache, token-by-token decoding with an adapter equals the full forward', () => {
    const attn = new Attention(options);
    const xt = tf.tensor3d(randomArray(B * T * 16, 13), [B, T, 16]);
    const adapter = {
      keys: tf.tensor4d(randomArray(B * 2 * P * 4, 14), [B, 2, P, 4]),
      values: tf.tensor4d(randomArray(B * 2 * P * 4, 15), [B, 2, P, 4]),
      gate: tf.tensor1d([0.4, 0.3, -0.6, 1]),
    };
    const tables = rotary(positions);
    const full = attn.forward(xt, { rotary: tables, adapter });
    const cache = new KVCache({ numLayers: 1, numKvHeads: 2, headDim: 4, batch: B });
    const steps: tf.Tensor[] = [];
    for (let t = 0; t < T; t++) {
      const step = tf.slice(xt, [0, t, 0], [B, 1, 16]);
      const stepTables = rotary(positions.map((row) => [row[t]!]));
      steps.push(attn.forward(step, { rotary: stepTables, adapter, cache, layer: 0 }));
      tf.dispose([step, stepTables.cos, stepTables.sin]);
    }
    const stepped = tf.concat(steps, 1);
    expect(tf.max(tf.abs(tf.sub(full, stepped))).dataSync()[0]).toBeLessThan(1e-5);
    cache.dispose();
    tf.dispose([xt, full, stepped, ...steps, adapter.keys, adapter.values, adapter.gate, tables.cos, tables.sin]);
    attn.dispose();
  });

  it('rejects prefixes of the wrong shape and gates of the wrong size, without leaking', () => {
    const attn = new Attention(options);
    const xt = tf.zeros([B, T, 16]);
    const good = tf.zeros([1, 2, P, 4]);
    const wrongHeads = tf.zeros([1, 3, P, 4]);
    const wrongBatch = tf.zeros([3, 2, P, 4]);
    const gate = tf.zeros([4]);
    const badGate = tf.zeros([3]);
    const before = tf.memory().numTensors;
    expect(() => attn.forward(xt, { adapter: { keys: wrongHeads, values: wrongHeads, gate } })).toThrow(/expected keys and values/);
    expect(() => attn.forward(xt, { adapter: { keys: wrongBatch, values: good, gate } })).toThrow(/\[2 or 1, Hkv, P, 4\]/);
    expect(() => attn.forward(xt, { adapter: { keys: good, values: good, gate: badGate } })).toThrow(/gate must have shape/);
    expect(() => gatedPrefixAttention(xt, { keys: good, values: good, gate })).toThrow(/\[B, H, T, Dh\]/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([xt, good, wrongHeads, wrongBatch, gate, badGate]);
    attn.dispose();
  });
});
