import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync, gradCheckVariables } from '../src/testing';
import { Attention, MASK_VALUE, type AttentionOptions } from '../src/nn/attention';
import { RotaryEmbedding, sequentialPositions } from '../src/nn/rope';
import { KVCache } from '../src/generation/kv-cache';

type Arr3 = number[][][];

/** Deterministic values in [-1, 1) (independent of tfjs randomness). */
function randomArray(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

function random3(b: number, t: number, d: number, seed: number): Arr3 {
  const flat = randomArray(b * t * d, seed);
  return Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, j) => flat.slice((i * t + j) * d, (i * t + j + 1) * d)));
}

/** Plain-JS attention, float64, written from the definitions (no tfjs). */
interface NaiveOptions {
  context?: Arr3;
  bias?: (b: number, h: number, i: number, j: number) => number;
  positions?: number[][];
  theta?: number;
  causal?: boolean;
}

function naiveAttention(attn: Attention, x: Arr3, opts: NaiveOptions = {}): Arr3 {
  const H = attn.numHeads;
  const Hkv = attn.numKvHeads;
  const Dh = attn.headDim;
  const G = H / Hkv;
  const read2 = (v: tf.Tensor) => v.arraySync() as number[][];
  const read1 = (v: tf.Tensor | null, n: number) => (v ? (v.arraySync() as number[]) : new Array<number>(n).fill(0));
  const linear = (lin: { weight: tf.Tensor; bias: tf.Tensor | null; outFeatures: number }) => {
    const W = read2(lin.weight);
    const b = read1(lin.bias, lin.outFeatures);
    return (v: number[]) => b.map((bias, o) => v.reduce((s, vi, i) => s + vi * W[i]![o]!, bias));
  };
  const normOf = (norm: Attention['q_norm']) => {
    if (!norm) return (v: number[]) => v;
    const w = read1(norm.weight, Dh);
    const isLayer = 'bias' in norm;
    const b = isLayer ? read1((norm as { bias: tf.Tensor | null }).bias, Dh) : new Array<number>(Dh).fill(0);
    return (v: number[]) => {
      const mean = isLayer ? v.reduce((s, a) => s + a, 0) / Dh : 0;
      const centred = v.map((a) => a - mean);
      const ms = centred.reduce((s, a) => s + a * a, 0) / Dh;
      const r = 1 / Math.sqrt(ms + norm.eps);
      return centred.map((a, i) => a * r * w[i]! + b[i]!);
    };
  };
  const rotate = (v: number[], p: number) => {
    const half = Dh / 2;
    const out = v.slice();
    for (let j = 0; j < half; j++) {
      const a = p * Math.pow(opts.theta ?? 10000, (-2 * j) / Dh);
      out[j] = v[j]! * Math.cos(a) - v[j + half]! * Math.sin(a);
      out[j + half] = v[j + half]! * Math.cos(a) + v[j]! * Math.sin(a);
    }
    return out;
  };
  const qLin = linear(attn.q_proj);
  const kLin = linear(attn.k_proj);
  const vLin = linear(attn.v_proj);
  const oLin = linear(attn.o_proj);
  const qNorm = normOf(attn.q_norm);
  const kNorm = normOf(attn.k_norm);
  const heads = (v: number[], n: number) => Array.from({ length: n }, (_, h) => v.slice(h * Dh, (h + 1) * Dh));

  return x.map((rows, b) => {
    const source = opts.context ? opts.context[b]! : rows;
    const keys = source.map((s, j) =>
      heads(kLin(s), Hkv).map((k) => (opts.positions && !opts.context ? rotate(kNorm(k), opts.positions[b]![j]!) : kNorm(k))),
    );
    const values = source.map((s) => heads(vLin(s), Hkv));
    return rows.map((row, i) => {
      const q = heads(qLin(row), H).map((v) => (opts.positions && !opts.context ? rotate(qNorm(v), opts.positions[b]![i]!) : qNorm(v)));
      const merged: number[] = [];
      for (let h = 0; h < H; h++) {
        const kvHead = Math.floor(h / G);
        const scores = keys.map((k, j) => {
          let s = q[h]!.reduce((acc, qd, d) => acc + qd * k[kvHead]![d]!, 0) / Math.sqrt(Dh);
          if (opts.bias) s += opts.bias(b, h, i, j);
          else if (opts.causal && j > i) s = -Infinity;
          return s;
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < Dh; d++) merged.push(e.reduce((acc, p, j) => acc + (p / z) * values[j]![kvHead]![d]!, 0));
      }
      return oLin(merged);
    });
  });
}

function maxAbsDiff(a: tf.Tensor, expected: Arr3): number {
  const got = a.arraySync() as Arr3;
  let m = 0;
  got.forEach((r, b) => r.forEach((v, i) => v.forEach((g, d) => (m = Math.max(m, Math.abs(g - expected[b]![i]![d]!))))));
  return m;
}

function rotaryFor(headDim: number, positions: number[][], theta = 10000) {
  return tf.tidy(() => new RotaryEmbedding({ headDim, theta }).forward(tf.tensor2d(positions, undefined, 'int32')));
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  const cases: { name: string; options: AttentionOptions; rope: boolean }[] = [
    { name: 'MHA, causal', options: { dim: 16, numHeads: 4, causal: true }, rope: false },
    { name: 'GQA, causal, RoPE', options: { dim: 24, numHeads: 6, numKvHeads: 2, headDim: 8, causal: true }, rope: true },
    { name: 'GQA, non-causal, qkv/out bias', options: { dim: 16, numHeads: 4, numKvHeads: 1, qkvBias: true, outBias: true }, rope: true },
    { name: 'QK-norm rms, GQA, causal, RoPE', options: { dim: 16, numHeads: 4, numKvHeads: 2, qkNorm: 'rms', causal: true }, rope: true },
    { name: 'QK-norm layer, MHA', options: { dim: 16, numHeads: 2, qkNorm: 'layer', causal: true }, rope: false },
  ];

  for (const { name, options, rope } of cases) {
    it(`forward matches naive attention: ${name}`, () => {
      const attn = new Attention(options);
      // Non-trivial norm weights so the test sees them.
      for (const [pname, v] of attn.namedParameters()) {
        if (/_norm\./.test(pname)) v.assign(tf.tensor(randomArray(v.size, pname.length).map((r) => 1 + 0.5 * r), v.shape));
      }
      const [B, T] = [2, 5];
      const x = random3(B, T, options.dim, 42);
      const positions = [
        [0, 1, 2, 3, 4],
        [3, 4, 5, 6, 7],
      ];
      const tables = rope ? rotaryFor(attn.headDim, positions) : undefined;
      const xt = tf.tensor3d(x);
      const out = expectNoLeaksSync(() => attn.forward(xt, { rotary: tables }), 'forward');
      expect(out.shape).toEqual([B, T, options.dim]);
      const expected = naiveAttention(attn, x, { positions: rope ? positions : undefined, causal: options.causal });
      expect(maxAbsDiff(out, expected)).toBeLessThan(1e-4);
      tf.dispose([xt, out, tables?.cos, tables?.sin].filter(Boolean) as tf.Tensor[]);
      attn.dispose();
    });
  }

  it('custom additive bias (padding) replaces the causal mask and broadcasts over heads', () => {
    const attn = new Attention({ dim: 16, numHeads: 4, numKvHeads: 2, causal: true });
    const [B, T] = [2, 4];
    const x = random3(B, T, 16, 9);
    // Row 0: full bidirectional; row 1: key 3 is padding, causal elsewhere.
    const biasFn = (b: number, _h: number, i: number, j: number) => (b === 1 && (j === 3 || j > i) ? MASK_VALUE : 0);
    const biasData = Array.from({ length: B }, (_, b) => [Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => biasFn(b, 0, i, j)))]);
    const bias = tf.tensor4d(biasData); // [B, 1, T, T]
    const xt = tf.tensor3d(x);
    const out = attn.forward(xt, { bias });
    expect(maxAbsDiff(out, naiveAttention(attn, x, { bias: biasFn }))).toBeLessThan(1e-4);
    const badBias = tf.zeros([B, 1, T, T + 1]);
    expect(() => attn.forward(xt, { bias: badBias })).toThrow(/does not broadcast to \[B, H, T, S\]/);
    tf.dispose([bias, badBias, xt, out]);
    attn.dispose();
  });

  it('fully masked rows give finite output (finite and -Infinity masks)', () => {
    const attn = new Attention({ dim: 8, numHeads: 2 });
    const xt = tf.tensor3d(random3(1, 3, 8, 5));
    for (const maskValue of [MASK_VALUE, -Infinity]) {
      const bias = tf.tensor4d([[[[maskValue, maskValue, maskValue], [0, maskValue, 0], [0, 0, 0]]]]);
      const out = attn.forward(xt, { bias });
      expect(Array.from(out.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([bias, out]);
    }
    xt.dispose();
    attn.dispose();
  });

  it('cross-attention over a context of another width (no causal mask, static cache entries)', () => {
    const attn = new Attention({ dim: 16, numHeads: 4, numKvHeads: 2, kvInputDim: 10, causal: true, qkNorm: 'rms' });
    const x = random3(2, 3, 16, 21);
    const context = random3(2, 7, 10, 22);
    const xt = tf.tensor3d(x);
    const ct = tf.tensor3d(context);
    const expected = naiveAttention(attn, x, { context });
    const out = attn.forward(xt, { context: ct });
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-4);
    const wrongWidth = tf.zeros([2, 7, 16]);
    expect(() => attn.forward(xt, { context: wrongWidth })).toThrow(/expected context \[2, S, 10\]/);
    wrongWidth.dispose();

    // With a cache, the context's keys/values are computed once and reused.
    const cache = new KVCache({ numLayers: 2, numKvHeads: 2, headDim: 4, batch: 2 });
    const before = tf.memory().numTensors;
    const first = attn.forward(xt, { context: ct, cache, layer: 1 });
    expect(tf.memory().numTensors).toBe(before + 3); // the output plus the stored keys and values
    expect(cache.getStatic(1)!.keys.shape).toEqual([2, 2, 7, 4]);
    const storedKeys = cache.getStatic(1)!.keys;
    const other = tf.zeros([2, 7, 10]); // a different context is ignored while the static entry is stored
    const second = attn.forward(xt, { context: other, cache, layer: 1 });
    expect(cache.getStatic(1)!.keys).toBe(storedKeys);
    expect(maxAbsDiff(first, expected)).toBeLessThan(1e-4);
    expect(maxAbsDiff(second, expected)).toBeLessThan(1e-4);
    cache.clearStatic();
    const third = attn.forward(xt, { context: other, cache, layer: 1 });
    expect(maxAbsDiff(third, expected)).toBeGreaterThan(1e-3);
    cache.dispose();
    tf.dispose([first, second, third, other]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([xt, ct, out]);
    attn.dispose();
  });

  it('incremental decoding through the KV cache equals the full forward (GQA, RoPE, QK-norm)', () => {
    const attn = new Attention({ dim: 24, numHeads: 6, numKvHeads: 3, headDim: 8, causal: true, qkNorm: 'rms' });
    const rope = new RotaryEmbedding({ headDim: 8, theta: 100 });
    const [B, T, prefill] = [2, 7, 3];
    const xt = tf.tensor3d(random3(B, T, 24, 77));
    const start = tf.memory().numTensors;

    const full = tf.tidy(() => {
      const pos = sequentialPositions(B, T);
      return attn.forward(xt, { rotary: rope.forward(pos) });
    });

    const cache = new KVCache({ numLayers: 1, numKvHeads: 3, headDim: 8, batch: B });
    const pieces: tf.Tensor[] = [];
    let offset = 0;
    for (const len of [prefill, 1, 1, 2]) {
      pieces.push(
        tf.tidy(() => {
          const chunk = tf.slice(xt, [0, offset, 0], [-1, len, -1]);
          const rotary = rope.forward(sequentialPositions(B, len, cache.length));
          return attn.forward(chunk, { rotary, cache, layer: 0 });
        }),
      );
      offset += len;
      expect(cache.length).toBe(offset);
    }
    expect(offset).toBe(T);
    const stitched = tf.concat(pieces, 1);
    const got = stitched.arraySync() as Arr3;
    expect(maxAbsDiff(full, got)).toBeLessThan(1e-5);
    cache.dispose();
    tf.dispose([full, stitched, ...pieces]);
    // The cache held tensors across the tidy calls and freed them on dispose.
    expect(tf.memory().numTensors).toBe(start);
    xt.dispose();
    attn.dispose();
  });

  it('rejects a cache from another model, a missing layer index and a disposed cache', () => {
    const attn = new Attention({ dim: 16, numHeads: 4, numKvHeads: 2 });
    const xt = tf.zeros([1, 2, 16]);
    const wrongHeads = new KVCache({ numLayers: 2, numKvHeads: 4, headDim: 4, batch: 1 });
    expect(() => attn.forward(xt, { cache: wrongHeads, layer: 0 })).toThrow(/a cache from another model.*numKvHeads 2 vs 4/);
    const wrongBatch = new KVCache({ numLayers: 2, numKvHeads: 2, headDim: 4, batch: 3 });
    expect(() => attn.forward(xt, { cache: wrongBatch, layer: 0 })).toThrow(/a cache from another model.*batch 1 vs 3/);
    const right = new KVCache({ numLayers: 2, numKvHeads: 2, headDim: 4, batch: 1 });
    expect(() => attn.forward(xt, { cache: right, layer: 2 })).toThrow(/layer index 2 outside \[0, 2\)/);
    expect(() => attn.forward(xt, { cache: right })).toThrow(/needs the layer index/);
    expect(() => right.assertCompatible({ numLayers: 3, numKvHeads: 2, headDim: 4, batch: 1 })).toThrow(/a cache from another model.*numLayers 3 vs 2/);
    expect(() => right.append(0, tf.zeros([1, 2, 1, 8]), tf.zeros([1, 2, 1, 8]))).toThrow(/expected keys and values \[1, 2, T, 4\]/);
    right.dispose();
    expect(() => attn.forward(xt, { cache: right, layer: 0 })).toThrow(/used after dispose/);
    wrongHeads.dispose();
    wrongBatch.dispose();
    xt.dispose();
    attn.dispose();
  });

  it('KVCache append returns the full keys/values and frees the old ones', () => {
    const cache = new KVCache({ numLayers: 1, numKvHeads: 1, headDim: 2, batch: 1 });
    const before = tf.memory().numTensors;
    const a = tf.tensor4d([[[[1, 2]]]]);
    tf.tidy(() => cache.append(0, a, a));
    a.dispose();
    const b = tf.tensor4d([[[[3, 4], [5, 6]]]]);
    const full = tf.tidy(() => cache.append(0, b, tf.neg(b)));
    b.dispose();
    expect(full.keys.arraySync()).toEqual([[[[1, 2], [3, 4], [5, 6]]]]);
    expect(full.values.arraySync()).toEqual([[[[1, 2], [-3, -4], [-5, -6]]]]);
    expect(cache.layerLength(0)).toBe(3);
    expect(tf.memory().numTensors).toBe(before + 2);
    cache.reset();
    expect(cache.length).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    cache.dispose();
  });

  it('gradients of attention with RoPE match finite differences (input and projection weights)', () => {
    const attn = new Attention({ dim: 8, numHeads: 2, numKvHeads: 1, causal: true, qkNorm: 'rms' });
    const x = tf.variable(tf.tensor3d(random3(1, 4, 8, 3)), true);
    const probe = tf.tensor3d(random3(1, 4, 8, 4));
    const tables = rotaryFor(attn.headDim, [[2, 3, 4, 5]], 50);
    const f = () => tf.sum(tf.mul(attn.forward(x, { rotary: tables }), probe)) as tf.Scalar;
    const variables = [x, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight, attn.q_norm!.weight!];
    const report = gradCheckVariables(f, variables, { maxCoords: 12 });
    expect(report.checked).toBeGreaterThan(50);
    tf.dispose([x, probe, tables.cos, tables.sin]);
    attn.dispose();
  });

  it('leaves no tensors behind in forward and in cached decoding', () => {
    const attn = new Attention({ dim: 16, numHeads: 4, numKvHeads: 2, causal: true });
    const rope = new RotaryEmbedding({ headDim: 4 });
    const xt = tf.tensor3d(random3(1, 3, 16, 8));
    const positions = sequentialPositions(1, 3);
    const tables = rope.forward(positions);
    expectNoLeaksSync(() => attn.forward(xt, { rotary: tables }), 'forward');
    tf.dispose([positions, tables.cos, tables.sin]);
    // Cached decoding without tf.tidy: only the caller's own tensors and the cache's may remain, and the
    // cache frees its part on dispose.
    const before = tf.memory().numTensors;
    const cache = new KVCache({ numLayers: 1, numKvHeads: 2, headDim: 4, batch: 1 });
    for (let step = 0; step < 3; step++) {
      const token = tf.slice(xt, [0, step, 0], [-1, 1, -1]);
      const stepPositions = sequentialPositions(1, 1, cache.length);
      const stepTables = rope.forward(stepPositions);
      const out = attn.forward(token, { rotary: stepTables, cache, layer: 0 });
      tf.dispose([token, stepPositions, stepTables.cos, stepTables.sin, out]);
      expect(tf.memory().numTensors).toBe(before + 2); // the cache's keys and values
    }
    expect(cache.length).toBe(3);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
    xt.dispose();
    attn.dispose();
  });

  it('rejects bad shapes and options clearly', () => {
    expect(() => new Attention({ dim: 16, numHeads: 4, numKvHeads: 3 })).toThrow(/multiple of numKvHeads/);
    expect(() => new Attention({ dim: 10, numHeads: 4 })).toThrow(/pass headDim explicitly/);
    const attn = new Attention({ dim: 8, numHeads: 2 });
    const x = tf.zeros([1, 2, 6]);
    expect(() => attn.forward(x)).toThrow(/expected x \[B, T, 8\]/);
    x.dispose();
    attn.dispose();
    const named = new Attention({ dim: 8, numHeads: 2, qkNorm: 'rms', qkvBias: true });
    expect(Object.keys(named.stateDict()).sort()).toEqual(
      ['k_norm.weight', 'k_proj.bias', 'k_proj.weight', 'o_proj.weight', 'q_norm.weight', 'q_proj.bias', 'q_proj.weight', 'v_proj.bias', 'v_proj.weight'],
    );
    named.dispose();
  });
});
