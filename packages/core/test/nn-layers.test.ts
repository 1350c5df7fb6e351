import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { gelu, geluTanh, silu, quickGelu, relu, getActivation, ACTIVATION_NAMES } from '../src/nn/activations';
import { Embedding } from '../src/nn/embedding';
import { Dropout } from '../src/nn/dropout';
import { MLP, GatedMLP } from '../src/nn/mlp';
import { Conv2d, type Conv2dPadding } from '../src/nn/conv';
import { Module } from '../src/nn/module';
import { manualSeed, Rng } from '../src/runtime/random';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';

// ---- independent plain-JS references --------------------------------------------------------------------------

/** erf by its Maclaurin series (float64; exact to ~1e-12 for |x| < 5, where 1 - erf(5) < 2e-12). */
function erf(x: number): number {
  if (Math.abs(x) >= 5) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 120; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const refActivations: Record<string, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  silu: (x) => x * sigmoid(x),
  quick_gelu: (x) => x * sigmoid(1.702 * x),
  relu: (x) => Math.max(0, x),
};

function randomArray(n: number, rng: Rng, scale = 1): number[] {
  return Array.from({ length: n }, () => rng.normal() * scale);
}

/** Row-major [n, k] @ [k, m]. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number): number[] {
  const out = new Array<number>(n * m).fill(0);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) out[i * m + j]! += a[i * k + p]! * b[p * m + j]!;
  return out;
}

/** A Linear layer's forward from its raw weights: x [n, in] @ w [in, out] + b. */
function linearRef(x: number[], w: tf.Tensor, b: tf.Tensor | null, n: number): number[] {
  const [inF, outF] = w.shape as [number, number];
  const y = matmul(x, w.dataSync(), n, inF, outF);
  if (b) {
    const bias = b.dataSync();
    for (let i = 0; i < y.length; i++) y[i]! += bias[i % outF]!;
  }
  return y;
}

interface ConvGeometry {
  stride: [number, number];
  dilation: [number, number];
  padding: Conv2dPadding;
}

/** Direct-loop NHWC convolution with TensorFlow's 'same' rule and PyTorch's explicit padding. */
function convRef(
  x: ArrayLike<number>,
  [B, H, W, C]: number[],
  w: ArrayLike<number>,
  [kH, kW, , O]: number[],
  bias: ArrayLike<number> | null,
  { stride: [sh, sw], dilation: [dh, dw], padding }: ConvGeometry,
): { out: number[]; shape: number[] } {
  const spanH = (kH - 1) * dh + 1;
  const spanW = (kW - 1) * dw + 1;
  let OH: number, OW: number, top: number, left: number;
  if (padding === 'same') {
    OH = Math.ceil(H / sh);
    OW = Math.ceil(W / sw);
    top = Math.floor(Math.max(0, (OH - 1) * sh + spanH - H) / 2);
    left = Math.floor(Math.max(0, (OW - 1) * sw + spanW - W) / 2);
  } else {
    const [ph, pw] = padding === 'valid' ? [0, 0] : typeof padding === 'number' ? [padding, padding] : padding;
    OH = Math.floor((H + 2 * ph - spanH) / sh) + 1;
    OW = Math.floor((W + 2 * pw - spanW) / sw) + 1;
    top = ph;
    left = pw;
  }
  const out = new Array<number>(B * OH * OW * O).fill(0);
  for (let b = 0; b < B; b++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++)
        for (let o = 0; o < O; o++) {
          let acc = bias ? bias[o]! : 0;
          for (let i = 0; i < kH; i++)
            for (let j = 0; j < kW; j++) {
              const r = oh * sh + i * dh - top;
              const c = ow * sw + j * dw - left;
              if (r < 0 || r >= H || c < 0 || c >= W) continue;
              for (let ch = 0; ch < C; ch++)
                acc += x[((b * H + r) * W + c) * C + ch]! * w[((i * kW + j) * C + ch) * O + o]!;
            }
          out[((b * OH + oh) * OW + ow) * O + o] = acc;
        }
  return { out, shape: [B, OH, OW, O] };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    worst = Math.max(worst, err);
  }
  expect(worst).toBeLessThan(tol);
}

/** Gradients of a weighted sum of `forward()` w.r.t. every parameter of `module`: all present and finite. */
function expectFiniteGrads(module: Module, forward: () => tf.Tensor): void {
  const vars = module.trainableVariables();
  expect(vars.length).toBeGreaterThan(0);
  expectNoLeaksSync(() => {
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const y = forward();
          return tf.sum(tf.mul(y, tf.sin(tf.reshape(tf.range(0, y.size), y.shape)))) as tf.Scalar;
        }),
      vars,
    );
    for (const v of vars) {
      const g = grads[v.name];
      expect(g, `gradient for ${v.name}`).toBeDefined();
      expect(g!.shape).toEqual(v.shape);
      const values = g!.dataSync();
      expect(values.every(Number.isFinite)).toBe(true);
      expect(values.some((z) => z !== 0)).toBe(true);
    }
    tf.dispose([value, ...Object.values(grads)]);
  }, 'backward pass');
}

// ---- tests ------------------------------------------------------------------------------------------------------

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  describe('activations', () => {
    const rng = new Rng(11);
    const xs = [...randomArray(200, rng, 3), 0, -0.5, 0.5, 6, -6, 12, -12];

    it.each(['gelu', 'gelu_tanh', 'silu', 'quick_gelu', 'relu'])('%s matches its formula', (name) => {
      const x = tf.tensor1d(xs);
      const y = expectNoLeaksSync(() => getActivation(name)(x));
      expectClose(y.dataSync(), xs.map(refActivations[name]!), 2e-6);
      tf.dispose([x, y]);
    });

    it('exports the same functions the lookup returns, and resolves config aliases', () => {
      expect(getActivation('gelu')).toBe(gelu);
      expect(getActivation('gelu_tanh')).toBe(geluTanh);
      expect(getActivation('gelu_pytorch_tanh')).toBe(geluTanh);
      expect(getActivation('gelu_new')).toBe(geluTanh);
      expect(getActivation('silu')).toBe(silu);
      expect(getActivation('swish')).toBe(silu);
      expect(getActivation('quick_gelu')).toBe(quickGelu);
      expect(getActivation('relu')).toBe(relu);
      const custom = (t: tf.Tensor) => t;
      expect(getActivation(custom)).toBe(custom);
      expect(ACTIVATION_NAMES).toContain('gelu');
    });

    it('names the known activations when given an unknown one', () => {
      expect(() => getActivation('gelu_fast')).toThrow(
        /unknown activation 'gelu_fast'; expected one of gelu, gelu_tanh, silu/,
      );
      expect(() => getActivation('toString')).toThrow(/unknown activation 'toString'/);
    });

    it('exact and tanh GELU differ (the lookup does not conflate them)', () => {
      const x = tf.tensor1d([-2.5]);
      const [a, b] = [gelu(x), geluTanh(x)];
      expect(Math.abs(a.dataSync()[0]! - b.dataSync()[0]!)).toBeGreaterThan(1e-4);
      tf.dispose([x, a, b]);
    });
  });

  describe('Embedding', () => {
    it('looks up rows for ids of any rank', () => {
      const emb = new Embedding(7, 4);
      const table = emb.weight.dataSync();
      const idList = [3, 0, 6, 6, 1, 2];
      const ids = tf.tensor2d(idList, [2, 3], 'int32');
      const y = expectNoLeaksSync(() => emb.forward(ids));
      expect(y.shape).toEqual([2, 3, 4]);
      expect(Array.from(y.dataSync())).toEqual(idList.flatMap((id) => Array.from(table.slice(id * 4, id * 4 + 4))));
      tf.dispose([ids, y]);
      emb.dispose();
    });

    it('initialises N(0, 0.02) by default and registers `weight`', () => {
      const emb = new Embedding(500, 16);
      const values = Array.from(emb.weight.dataSync());
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
      expect(Math.abs(mean)).toBeLessThan(0.002);
      expect(std).toBeGreaterThan(0.018);
      expect(std).toBeLessThan(0.022);
      expect(Object.keys(emb.stateDict())).toEqual(['weight']);
      emb.dispose();
    });

    it('rejects out-of-range and non-integer ids clearly', () => {
      const emb = new Embedding(5, 2);
      const high = tf.tensor2d(
        [
          [0, 1],
          [5, 2],
        ],
        [2, 2],
        'int32',
      );
      const negative = tf.tensor1d([-1], 'int32');
      const floats = tf.tensor1d([1, 2]);
      expect(() => emb.forward(high)).toThrow(
        /id 5 at flat position 2 of ids \[2,2\] is outside the vocabulary \[0, 5\)/,
      );
      expect(() => emb.forward(negative)).toThrow(/id -1 .*\[0, 5\)/);
      expect(() => emb.forward(floats)).toThrow(/ids must be int32, got float32/);
      tf.dispose([high, negative, floats]);
      emb.dispose();
    });

    it('attend() is h @ weight^T', () => {
      const rng = new Rng(5);
      const emb = new Embedding(6, 4, { std: 1 });
      const hValues = randomArray(2 * 3 * 4, rng);
      const h = tf.tensor3d(hValues, [2, 3, 4]);
      emb.attend(h).dispose(); // the first call makes the module's transposed copy of the table (freed by dispose)
      const logits = expectNoLeaksSync(() => emb.attend(h));
      expect(logits.shape).toEqual([2, 3, 6]);
      const table = emb.weight.dataSync();
      const transposed = Array.from({ length: 4 * 6 }, (_, i) => table[(i % 6) * 4 + Math.floor(i / 6)]!);
      expectClose(logits.dataSync(), matmul(hValues, transposed, 6, 4, 6));
      const bad = tf.zeros([2, 5]);
      expect(() => emb.attend(bad)).toThrow(/expected last dimension 4, got input of shape \[2,5\]/);
      tf.dispose([h, logits, bad]);
      emb.dispose();
    });

    it('gives the scatter-add gradient for repeated ids', () => {
      const emb = new Embedding(4, 2);
      const ids = tf.tensor1d([2, 0, 2, 2], 'int32');
      const weights = tf.tensor2d([
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
      ]);
      const g = expectNoLeaksSync(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.mul(emb.forward(ids), weights)) as tf.Scalar,
          [emb.weight],
        );
        value.dispose();
        return grads[emb.weight.name]!;
      });
      expect(Array.from(g.dataSync())).toEqual([3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8, 0, 0]);
      tf.dispose([ids, weights, g]);
      emb.dispose();
    });

    it('resize() keeps old rows, puts new rows near the mean, repeats under a seed, and keeps the trainable flag', () => {
      const make = () => {
        manualSeed(99);
        return new Embedding(6, 3, { std: 1 });
      };
      const emb = make();
      emb.freeze();
      const old = Array.from(emb.weight.dataSync());
      const mean = [0, 1, 2].map((d) => old.filter((_, i) => i % 3 === d).reduce((s, v) => s + v, 0) / 6);
      const before = tf.memory().numTensors;
      emb.resize(9);
      expect(tf.memory().numTensors).toBe(before);
      expect(emb.numEmbeddings).toBe(9);
      expect(emb.weight.shape).toEqual([9, 3]);
      expect(emb.stateDict()['weight']).toBe(emb.weight);
      expect(emb.weight.trainable).toBe(false);
      const grown = Array.from(emb.weight.dataSync());
      expect(grown.slice(0, 18)).toEqual(old);
      const newRows = grown.slice(18);
      newRows.forEach((v, i) => expect(Math.abs(v - mean[i % 3]!)).toBeLessThan(0.1));
      expect(new Set(newRows).size).toBeGreaterThan(3); // noise makes the new rows distinct

      const again = make();
      again.resize(9);
      expect(Array.from(again.weight.dataSync())).toEqual(grown);

      again.resize(4);
      expect(Array.from(again.weight.dataSync())).toEqual(old.slice(0, 12));
      const id = tf.tensor1d([8], 'int32');
      expect(() => again.forward(id)).toThrow(/outside the vocabulary \[0, 4\)/);
      expect(() => again.resize(0)).toThrow(/positive integer/);
      id.dispose();
      emb.dispose();
      again.dispose();
    });

    it('has finite gradients', () => {
      const emb = new Embedding(5, 3);
      const ids = tf.tensor2d(
        [
          [1, 4],
          [4, 0],
        ],
        [2, 2],
        'int32',
      );
      expectFiniteGrads(emb, () => emb.forward(ids));
      ids.dispose();
      emb.dispose();
    });
  });

  describe('Dropout', () => {
    it('is the identity in eval mode and for p = 0', () => {
      const x = tf.ones([4, 4]);
      const drop = new Dropout(0.5);
      drop.eval();
      expect(drop.forward(x)).toBe(x);
      const none = new Dropout(0);
      expect(none.training).toBe(true);
      expect(none.forward(x)).toBe(x);
      x.dispose();
    });

    it('zeroes about p of the elements in train mode and scales the rest by 1/(1-p)', () => {
      const x = tf.fill([100, 100], 2);
      const drop = new Dropout(0.3);
      const y = expectNoLeaksSync(() => drop.forward(x));
      const values = Array.from(y.dataSync());
      const zeros = values.filter((v) => v === 0).length / values.length;
      expect(zeros).toBeGreaterThan(0.27);
      expect(zeros).toBeLessThan(0.33);
      values.filter((v) => v !== 0).forEach((v) => expect(v).toBeCloseTo(2 / 0.7, 5));
      tf.dispose([x, y]);
    });

    it('draws its mask from the global seed: repeatable under manualSeed, fresh on every call', () => {
      const x = tf.ones([64]);
      const drop = new Dropout(0.5);
      const mask = () => {
        const y = drop.forward(x);
        const out = Array.from(y.dataSync());
        y.dispose();
        return out;
      };
      manualSeed(2024);
      const first = mask();
      const second = mask();
      manualSeed(2024);
      expect(mask()).toEqual(first);
      expect(second).not.toEqual(first);
      x.dispose();
    });

    it('follows train()/eval() of a parent and rejects invalid p', () => {
      class Holder extends Module {
        readonly drop = this.addModule('drop', new Dropout(0.9));
      }
      const holder = new Holder();
      holder.eval();
      const x = tf.ones([10]);
      expect(holder.drop.forward(x)).toBe(x);
      holder.train();
      const y = holder.drop.forward(x);
      expect(y).not.toBe(x);
      tf.dispose([x, y]);
      expect(() => new Dropout(1)).toThrow(/p must be in \[0, 1\), got 1/);
      expect(() => new Dropout(-0.1)).toThrow(/got -0.1/);
    });
  });

  describe('MLP', () => {
    it('computes fc2(act(fc1(x))) with CLIP names', () => {
      const rng = new Rng(3);
      const mlp = new MLP(4, 8, { activation: 'quick_gelu' });
      expect(Object.keys(mlp.stateDict())).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
      const xs = randomArray(2 * 3 * 4, rng);
      const x = tf.tensor3d(xs, [2, 3, 4]);
      const y = expectNoLeaksSync(() => mlp.forward(x));
      expect(y.shape).toEqual([2, 3, 4]);
      const hidden = linearRef(xs, mlp.fc1.weight, mlp.fc1.bias, 6).map(refActivations.quick_gelu!);
      expectClose(y.dataSync(), linearRef(hidden, mlp.fc2.weight, mlp.fc2.bias, 6));
      tf.dispose([x, y]);
      mlp.dispose();
    });

    it('defaults to exact GELU; supports no bias, another output width and a custom activation', () => {
      const rng = new Rng(4);
      const xs = randomArray(3 * 4, rng);
      const x = tf.tensor2d(xs, [3, 4]);
      const plain = new MLP(4, 6);
      const y1 = plain.forward(x);
      const h1 = linearRef(xs, plain.fc1.weight, plain.fc1.bias, 3).map(refActivations.gelu!);
      expectClose(y1.dataSync(), linearRef(h1, plain.fc2.weight, plain.fc2.bias, 3));

      const narrow = new MLP(4, 6, { bias: false, outDim: 2, activation: (t) => tf.square(t) });
      expect(Object.keys(narrow.stateDict())).toEqual(['fc1.weight', 'fc2.weight']);
      const y2 = narrow.forward(x);
      expect(y2.shape).toEqual([3, 2]);
      const h2 = linearRef(xs, narrow.fc1.weight, null, 3).map((v) => v * v);
      expectClose(y2.dataSync(), linearRef(h2, narrow.fc2.weight, null, 3));
      tf.dispose([x, y1, y2]);
      plain.dispose();
      narrow.dispose();
    });

    it('rejects a wrong input width and has finite gradients', () => {
      const mlp = new MLP(4, 6);
      const bad = tf.zeros([2, 5]);
      expect(() => mlp.forward(bad)).toThrow(/expected last dimension 4, got input of shape \[2,5\]/);
      const x = tf.randomNormal([3, 4], 0, 1, 'float32', 8);
      expectFiniteGrads(mlp, () => mlp.forward(x));
      tf.dispose([bad, x]);
      mlp.dispose();
    });
  });

  describe('GatedMLP', () => {
    it('computes down(silu(gate(x)) * up(x)) with Llama names and no bias', () => {
      const rng = new Rng(6);
      const mlp = new GatedMLP(4, 6);
      expect(Object.keys(mlp.stateDict())).toEqual(['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']);
      const xs = randomArray(5 * 4, rng);
      const x = tf.tensor2d(xs, [5, 4]);
      const y = expectNoLeaksSync(() => mlp.forward(x));
      const gate = linearRef(xs, mlp.gateProj.weight, null, 5).map(refActivations.silu!);
      const up = linearRef(xs, mlp.upProj.weight, null, 5);
      const hidden = gate.map((g, i) => g * up[i]!);
      expectClose(y.dataSync(), linearRef(hidden, mlp.downProj.weight, null, 5));
      tf.dispose([x, y]);
      mlp.dispose();
    });

    it('takes another activation and biases (GeGLU with biases)', () => {
      const rng = new Rng(7);
      const mlp = new GatedMLP(3, 5, { activation: 'gelu_tanh', bias: true, outDim: 2 });
      expect(Object.keys(mlp.stateDict()).length).toBe(6);
      const xs = randomArray(2 * 3, rng);
      const x = tf.tensor2d(xs, [2, 3]);
      const y = mlp.forward(x);
      const gate = linearRef(xs, mlp.gateProj.weight, mlp.gateProj.bias, 2).map(refActivations.gelu_tanh!);
      const up = linearRef(xs, mlp.upProj.weight, mlp.upProj.bias, 2);
      expectClose(
        y.dataSync(),
        linearRef(
          gate.map((g, i) => g * up[i]!),
          mlp.downProj.weight,
          mlp.downProj.bias,
          2,
        ),
      );
      expectFiniteGrads(mlp, () => mlp.forward(x));
      tf.dispose([x, y]);
      mlp.dispose();
    });
  });

  describe('Conv2d', () => {
    const cases: { name: string; kernel: [number, number]; geometry: ConvGeometry; size: [number, number] }[] = [
      {
        name: 'valid, stride 1',
        kernel: [3, 3],
        geometry: { stride: [1, 1], dilation: [1, 1], padding: 'valid' },
        size: [6, 5],
      },
      {
        name: 'same, stride 1',
        kernel: [3, 3],
        geometry: { stride: [1, 1], dilation: [1, 1], padding: 'same' },
        size: [5, 5],
      },
      {
        name: 'same, stride 2, even kernel',
        kernel: [2, 4],
        geometry: { stride: [2, 2], dilation: [1, 1], padding: 'same' },
        size: [7, 6],
      },
      {
        name: 'explicit 1, stride 2 (floor)',
        kernel: [3, 3],
        geometry: { stride: [2, 2], dilation: [1, 1], padding: 1 },
        size: [6, 7],
      },
      {
        name: 'explicit [2, 0], stride [1, 2]',
        kernel: [3, 2],
        geometry: { stride: [1, 2], dilation: [1, 1], padding: [2, 0] },
        size: [4, 6],
      },
      {
        name: 'dilation 2, valid',
        kernel: [3, 3],
        geometry: { stride: [1, 1], dilation: [2, 2], padding: 'valid' },
        size: [7, 8],
      },
      {
        name: 'dilation [2, 3] with stride 2 and padding 2',
        kernel: [2, 3],
        geometry: { stride: [2, 2], dilation: [2, 3], padding: 2 },
        size: [7, 9],
      },
      {
        name: 'dilation 2, same',
        kernel: [3, 3],
        geometry: { stride: [1, 1], dilation: [2, 2], padding: 'same' },
        size: [6, 6],
      },
    ];

    it.each(cases)('matches a direct loop: $name', ({ kernel, geometry, size }) => {
      const rng = new Rng(21);
      const [C, O, B] = [3, 4, 2];
      const conv = new Conv2d(C, O, kernel, geometry);
      const xShape = [B, size[0], size[1], C];
      const xs = randomArray(
        xShape.reduce((a, b) => a * b),
        rng,
      );
      const x = tf.tensor4d(xs, xShape as [number, number, number, number]);
      const y = expectNoLeaksSync(() => conv.forward(x));
      const ref = convRef(xs, xShape, conv.weight.dataSync(), conv.weight.shape, conv.bias!.dataSync(), geometry);
      expect(y.shape).toEqual(ref.shape);
      expectClose(y.dataSync(), ref.out);
      tf.dispose([x, y]);
      conv.dispose();
    });

    it('has the tfjs weight layout, PyTorch fan-in init, and optional bias', () => {
      const conv = new Conv2d(2, 8, [3, 5]);
      expect(conv.weight.shape).toEqual([3, 5, 2, 8]);
      const bound = 1 / Math.sqrt(2 * 3 * 5);
      const w = Array.from(conv.weight.dataSync());
      expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.8 * bound);
      const noBias = new Conv2d(2, 8, 1, { bias: false });
      expect(Object.keys(noBias.stateDict())).toEqual(['weight']);
      conv.dispose();
      noBias.dispose();
    });

    it('rejects wrong input shapes and options with what to do', () => {
      const conv = new Conv2d(3, 4, 3);
      const wrongChannels = tf.zeros([1, 5, 5, 2]);
      const nchw = tf.zeros([1, 3, 5, 5]);
      const rank3 = tf.zeros([5, 5, 3]);
      const tiny = tf.zeros([1, 2, 5, 3]);
      expect(() => conv.forward(wrongChannels)).toThrow(
        /expected NHWC input \[batch, height, width, 3\], got \[1,5,5,2\]/,
      );
      expect(() => conv.forward(nchw)).toThrow(/looks NCHW: transpose it to NHWC/);
      expect(() => conv.forward(rank3)).toThrow(/expected NHWC input/);
      expect(() => conv.forward(tiny)).toThrow(/input 2x5 .* smaller than the kernel's span 3x3/);
      expect(() => new Conv2d(3, 4, 3, { stride: 0 })).toThrow(/stride must be positive integers/);
      expect(() => new Conv2d(3, 4, 3, { padding: -1 })).toThrow(/padding must be/);
      const wrongInit = tf.zeros([4, 3, 3, 3]);
      expect(() => new Conv2d(3, 4, 3, { weightInit: wrongInit })).toThrow(/weightInit must be \[3,3,3,4\]/);
      tf.dispose([wrongChannels, nchw, rank3, tiny, wrongInit]);
      conv.dispose();
    });

    it('has finite gradients, also with dilation and stride together', () => {
      const x = tf.randomNormal([2, 7, 7, 2], 0, 1, 'float32', 12);
      const plain = new Conv2d(2, 3, 3, { padding: 'same' });
      expectFiniteGrads(plain, () => plain.forward(x));
      const dilated = new Conv2d(2, 3, 2, { dilation: 2, stride: 2, padding: 1 });
      expectFiniteGrads(dilated, () => dilated.forward(x));
      x.dispose();
      plain.dispose();
      dilated.dispose();
    });
  });
});
