/**
 * Conv1d, ConvTranspose2d, GroupNorm, Upsample and average pooling against PyTorch (forward and the gradients
 * with respect to the input and every parameter, through reference/conv_layers_reference.py), finite-difference
 * gradient checks, the PyTorch layout helpers and remap layouts, errors, and leaks; on cpu and wasm.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_BACKENDS, setupTestBackend, torchAvailable, runTorchScript, gradCheckVariables } from '../src/testing';
import { expectNoLeaksSync } from '../src/testing/leaks';
import { Conv1d } from '../src/nn/conv1d';
import { ConvTranspose2d } from '../src/nn/conv-transpose';
import { GroupNorm } from '../src/nn/group-norm';
import { Upsample, interpolate, nearestIndices } from '../src/nn/upsample';
import { AvgPool1d, AvgPool2d } from '../src/nn/pooling';
import type { Module } from '../src/nn/module';
import {
  conv1dFromTorch,
  conv1dToTorch,
  convTranspose2dFromTorch,
  convTranspose2dToTorch,
  importStateDict,
  exportStateDict,
  layoutPermutation,
  type RemapTable,
} from '../src/weights/remap';

interface Stored {
  shape: number[];
  data: number[];
}

interface CaseResult {
  name: string;
  x: Stored;
  params: Record<string, Stored>;
  out: Stored;
  dy: Stored;
  grads: Record<string, Stored>;
}

type Pair = [number, number];

// The cases, in PyTorch's terms (the reference script builds the nn module from the same record).
type Case =
  | {
      layer: 'conv1d';
      name: string;
      in: number;
      out: number;
      k: number;
      stride?: number;
      padding?: number | 'same' | 'valid' | Pair;
      dilation?: number;
      groups?: number;
      bias?: boolean;
      B: number;
      T: number;
    }
  | {
      layer: 'convTranspose2d';
      name: string;
      in: number;
      out: number;
      k: Pair;
      stride?: Pair;
      padding?: Pair;
      outputPadding?: Pair;
      dilation?: Pair;
      bias?: boolean;
      B: number;
      H: number;
      W: number;
    }
  | { layer: 'groupNorm'; name: string; groups: number; channels: number; eps?: number; affine?: boolean; shape: number[]; offset?: number; scale?: number }
  | {
      layer: 'upsample';
      name: string;
      mode: 'nearest' | 'bilinear';
      scaleFactor?: number | Pair;
      size?: Pair;
      alignCorners?: boolean;
      B: number;
      C: number;
      H: number;
      W: number;
    }
  | {
      layer: 'avgPool2d';
      name: string;
      k: Pair;
      stride?: Pair;
      padding?: Pair;
      ceilMode?: boolean;
      countIncludePad?: boolean;
      divisorOverride?: number;
      B: number;
      C: number;
      H: number;
      W: number;
    }
  | { layer: 'avgPool1d'; name: string; k: number; stride?: number; padding?: number; ceilMode?: boolean; countIncludePad?: boolean; B: number; C: number; T: number };

const CASES: Case[] = [
  // Whisper's front end, narrower: conv1 (k3, pad 1) and conv2 (k3, stride 2, pad 1) on an odd length.
  { layer: 'conv1d', name: 'whisper conv1 (k3 pad1)', in: 8, out: 12, k: 3, padding: 1, B: 2, T: 23 },
  { layer: 'conv1d', name: 'whisper conv2 (k3 s2 pad1)', in: 12, out: 12, k: 3, stride: 2, padding: 1, B: 2, T: 23 },
  { layer: 'conv1d', name: 'stride 3 dilation 2 pad 2 no bias', in: 5, out: 7, k: 3, stride: 3, padding: 2, dilation: 2, bias: false, B: 2, T: 29 },
  { layer: 'conv1d', name: 'groups 3 stride 2', in: 6, out: 9, k: 4, stride: 2, padding: 1, groups: 3, B: 2, T: 17 },
  { layer: 'conv1d', name: 'depthwise k5', in: 5, out: 5, k: 5, padding: 2, groups: 5, B: 2, T: 19 },
  { layer: 'conv1d', name: 'depthwise multiplier 2 dilation 3', in: 4, out: 8, k: 3, dilation: 3, groups: 4, B: 1, T: 21 },
  { layer: 'conv1d', name: "padding 'same' even kernel dilation 2", in: 3, out: 4, k: 4, dilation: 2, padding: 'same', B: 2, T: 15 },
  { layer: 'conv1d', name: "padding 'same' even kernel (pads 1 left, 2 right)", in: 3, out: 5, k: 4, padding: 'same', B: 2, T: 10 },
  { layer: 'conv1d', name: 'causal padding [2, 0]', in: 4, out: 6, k: 3, padding: [2, 0], B: 2, T: 11 },
  { layer: 'conv1d', name: 'pointwise k1', in: 6, out: 3, k: 1, B: 3, T: 7 },
  { layer: 'conv1d', name: "'valid' stride 2 odd tail", in: 3, out: 5, k: 4, stride: 2, padding: 'valid', B: 2, T: 14 },
  // The VQ-VAE decoder's up-sampling convolution (k4 s2 p1), odd sizes.
  { layer: 'convTranspose2d', name: 'k4 s2 p1', in: 6, out: 5, k: [4, 4], stride: [2, 2], padding: [1, 1], B: 2, H: 5, W: 7 },
  { layer: 'convTranspose2d', name: 'k3 s2 p1 output padding 1', in: 4, out: 6, k: [3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [1, 1], B: 2, H: 4, W: 3 },
  {
    layer: 'convTranspose2d',
    name: 'rectangular k, strides, paddings, output padding, dilation',
    in: 3,
    out: 4,
    k: [3, 5],
    stride: [3, 2],
    padding: [0, 2],
    outputPadding: [2, 1],
    dilation: [1, 2],
    B: 2,
    H: 3,
    W: 4,
  },
  { layer: 'convTranspose2d', name: 'padding past the kernel (crop by slice)', in: 3, out: 2, k: [2, 2], stride: [2, 2], padding: [2, 2], outputPadding: [1, 0], B: 1, H: 5, W: 4 },
  { layer: 'convTranspose2d', name: 'output padding past the full output', in: 2, out: 3, k: [3, 3], stride: [3, 3], padding: [0, 0], outputPadding: [2, 1], B: 2, H: 3, W: 2 },
  { layer: 'convTranspose2d', name: 'dilation 3 lets output padding reach 2', in: 2, out: 2, k: [2, 2], dilation: [3, 3], outputPadding: [2, 1], B: 1, H: 4, W: 3 },
  { layer: 'convTranspose2d', name: 'k1 s1 no bias', in: 5, out: 3, k: [1, 1], bias: false, B: 2, H: 3, W: 4 },
  { layer: 'groupNorm', name: '4 groups of 2, 2-D', groups: 4, channels: 8, shape: [2, 8, 5, 7] },
  { layer: 'groupNorm', name: 'one group (offset inputs)', groups: 1, channels: 6, shape: [3, 6, 4, 3], offset: 3, scale: 2 },
  { layer: 'groupNorm', name: 'a group per channel', groups: 6, channels: 6, shape: [2, 6, 3, 5] },
  { layer: 'groupNorm', name: '1-D, no affine', groups: 2, channels: 4, affine: false, shape: [2, 4, 9] },
  // Groups of 4 values: with groups of 2 a variance near eps makes float32 itself (PyTorch's too) miss 1e-5.
  { layer: 'groupNorm', name: 'no spatial dims', groups: 2, channels: 8, shape: [5, 8] },
  { layer: 'groupNorm', name: '3-D, eps 1e-3', groups: 3, channels: 6, eps: 1e-3, shape: [2, 6, 3, 2, 4] },
  { layer: 'upsample', name: 'nearest x2', mode: 'nearest', scaleFactor: 2, B: 2, C: 3, H: 5, W: 7 },
  { layer: 'upsample', name: 'nearest x3', mode: 'nearest', scaleFactor: 3, B: 1, C: 2, H: 4, W: 5 },
  { layer: 'upsample', name: 'nearest x[2, 1]', mode: 'nearest', scaleFactor: [2, 1], B: 1, C: 2, H: 3, W: 5 },
  { layer: 'upsample', name: 'nearest x1.5', mode: 'nearest', scaleFactor: 1.5, B: 2, C: 3, H: 5, W: 7 },
  { layer: 'upsample', name: 'nearest x[2.5, 1.7]', mode: 'nearest', scaleFactor: [2.5, 1.7], B: 1, C: 2, H: 5, W: 6 },
  { layer: 'upsample', name: 'nearest to size [7, 11]', mode: 'nearest', size: [7, 11], B: 2, C: 2, H: 5, W: 4 },
  { layer: 'upsample', name: 'nearest x0.5 (down)', mode: 'nearest', scaleFactor: 0.5, B: 1, C: 2, H: 7, W: 9 },
  { layer: 'upsample', name: 'bilinear x2', mode: 'bilinear', scaleFactor: 2, B: 2, C: 3, H: 5, W: 7 },
  { layer: 'upsample', name: 'bilinear x2 align corners', mode: 'bilinear', scaleFactor: 2, alignCorners: true, B: 2, C: 3, H: 5, W: 7 },
  { layer: 'upsample', name: 'bilinear x[1.5, 2.5]', mode: 'bilinear', scaleFactor: [1.5, 2.5], B: 1, C: 2, H: 5, W: 3 },
  { layer: 'upsample', name: 'bilinear to size [9, 4]', mode: 'bilinear', size: [9, 4], B: 2, C: 2, H: 5, W: 7 },
  { layer: 'upsample', name: 'bilinear to size [1, 6] align corners', mode: 'bilinear', size: [1, 6], alignCorners: true, B: 1, C: 2, H: 4, W: 3 },
  { layer: 'upsample', name: 'bilinear x0.6 (down)', mode: 'bilinear', scaleFactor: 0.6, B: 1, C: 2, H: 7, W: 8 },
  { layer: 'avgPool2d', name: 'k2', k: [2, 2], B: 2, C: 3, H: 6, W: 8 },
  { layer: 'avgPool2d', name: 'k2 on odd sizes (tail dropped)', k: [2, 2], B: 1, C: 2, H: 7, W: 5 },
  { layer: 'avgPool2d', name: 'k3 s2 p1', k: [3, 3], stride: [2, 2], padding: [1, 1], B: 2, C: 3, H: 7, W: 9 },
  { layer: 'avgPool2d', name: 'k3 s2 p1 without pad in the count', k: [3, 3], stride: [2, 2], padding: [1, 1], countIncludePad: false, B: 2, C: 3, H: 7, W: 9 },
  { layer: 'avgPool2d', name: 'k3 s2 p1 ceil mode', k: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: true, B: 1, C: 2, H: 8, W: 6 },
  {
    layer: 'avgPool2d',
    name: 'k[3, 2] s[2, 3] p1 ceil mode without pad in the count',
    k: [3, 2],
    stride: [2, 3],
    padding: [1, 1],
    ceilMode: true,
    countIncludePad: false,
    B: 2,
    C: 2,
    H: 7,
    W: 8,
  },
  { layer: 'avgPool2d', name: 'divisor override', k: [3, 3], stride: [1, 1], padding: [1, 1], divisorOverride: 5, B: 1, C: 2, H: 4, W: 5 },
  { layer: 'avgPool1d', name: '1-D k3 s2 p1 ceil mode without pad in the count', k: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false, B: 2, C: 3, T: 11 },
  { layer: 'avgPool1d', name: '1-D k4', k: 4, B: 2, C: 2, T: 14 },
];

/** Channels-first (PyTorch) <-> channels-last (Chimera) for any rank >= 2. */
const toChannelsLast = (t: tf.Tensor) => (t.rank <= 2 ? tf.clone(t) : tf.transpose(t, [0, ...Array.from({ length: t.rank - 2 }, (_, i) => i + 2), 1]));
const toChannelsFirst = (t: tf.Tensor) => (t.rank <= 2 ? tf.clone(t) : tf.transpose(t, [0, t.rank - 1, ...Array.from({ length: t.rank - 2 }, (_, i) => i + 1)]));
const stored = (s: Stored) => tf.tensor(s.data, s.shape);

function build(c: Case): Module & { forward(x: tf.Tensor): tf.Tensor } {
  switch (c.layer) {
    case 'conv1d':
      return new Conv1d(c.in, c.out, c.k, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias: c.bias });
    case 'convTranspose2d':
      return new ConvTranspose2d(c.in, c.out, c.k, {
        stride: c.stride,
        padding: c.padding,
        outputPadding: c.outputPadding,
        dilation: c.dilation,
        bias: c.bias,
      });
    case 'groupNorm':
      return new GroupNorm(c.groups, c.channels, { eps: c.eps, affine: c.affine });
    case 'upsample':
      return new Upsample({ mode: c.mode, scaleFactor: c.scaleFactor, size: c.size, alignCorners: c.alignCorners });
    case 'avgPool2d':
      return new AvgPool2d(c.k, { stride: c.stride, padding: c.padding, ceilMode: c.ceilMode, countIncludePad: c.countIncludePad, divisorOverride: c.divisorOverride });
    case 'avgPool1d':
      return new AvgPool1d(c.k, { stride: c.stride, padding: c.padding, ceilMode: c.ceilMode, countIncludePad: c.countIncludePad });
  }
}

/** PyTorch parameter layout -> Chimera's, and back, through the public helpers. */
function paramFromTorch(c: Case, name: string, t: tf.Tensor): tf.Tensor {
  if (name !== 'weight') return tf.clone(t);
  if (c.layer === 'conv1d') return conv1dFromTorch(t);
  if (c.layer === 'convTranspose2d') return convTranspose2dFromTorch(t);
  return tf.clone(t);
}
function paramToTorch(c: Case, name: string, t: tf.Tensor): tf.Tensor {
  if (name !== 'weight') return tf.clone(t);
  if (c.layer === 'conv1d') return conv1dToTorch(t);
  if (c.layer === 'convTranspose2d') return convTranspose2dToTorch(t);
  return tf.clone(t);
}

/** max |got - expected| / max(1, max |expected|): float32 against float64, relative to the tensor's scale. */
function scaledError(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  let err = 0;
  let scale = 1;
  expected.data.forEach((e, i) => {
    err = Math.max(err, Math.abs(values[i]! - e));
    scale = Math.max(scale, Math.abs(e));
  });
  return err / scale;
}

const TOLERANCE = 1e-5;
const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/conv_layers_reference.py', import.meta.url));

describe.skipIf(!hasTorch)('conv layers: parity with PyTorch', () => {
  let results: CaseResult[];
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-conv-layers-'));
    const casesPath = join(dir, 'cases.json');
    writeFileSync(casesPath, JSON.stringify(CASES));
    const path = runTorchScript(script, [casesPath, join(dir, 'reference.json')]).trim();
    results = (JSON.parse(readFileSync(path, 'utf8')) as { cases: CaseResult[] }).cases;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    beforeAll(async () => {
      await setupTestBackend(backend);
    });

    it.each(CASES.map((c, i) => [c.name, c.layer, i] as const))('%s (%s): output and gradients', (_name, _layer, index) => {
      const c = CASES[index]!;
      const ref = results[index]!;
      expect(ref.name).toBe(c.name);
      const layer = build(c);
      const state: Record<string, tf.Tensor> = {};
      for (const [name, s] of Object.entries(ref.params)) {
        const t = stored(s);
        state[name] = paramFromTorch(c, name, t);
        t.dispose();
      }
      layer.loadStateDict(state);
      Object.values(state).forEach((t) => t.dispose());
      const params = layer.namedParameters();
      expect(params.map(([n]) => n).sort()).toEqual(Object.keys(ref.params).sort());

      const errors: Record<string, number> = {};
      expectNoLeaksSync(() => {
        const x = tf.tidy(() => tf.variable(toChannelsLast(stored(ref.x))));
        const dy = tf.tidy(() => toChannelsLast(stored(ref.dy)));
        const variables = [x, ...params.map(([, v]) => v)];
        const { value, grads } = tf.variableGrads(() => {
          const y = layer.forward(x);
          tf.tidy(() => {
            errors.out = scaledError(toChannelsFirst(y), ref.out);
          });
          return tf.sum(tf.mul(y, dy));
        }, variables);
        tf.tidy(() => {
          errors['grad x'] = scaledError(toChannelsFirst(grads[x.name]!), ref.grads.x!);
          for (const [name, v] of params) errors[`grad ${name}`] = scaledError(paramToTorch(c, name, grads[v.name]!), ref.grads[name]!);
        });
        value.dispose();
        Object.values(grads).forEach((g) => g.dispose());
        x.dispose();
        dy.dispose();
      }, c.name);
      layer.dispose();
      for (const [what, err] of Object.entries(errors)) {
        expect(err, `${c.name}: ${what}`).toBeLessThanOrEqual(TOLERANCE);
      }
      expect(Object.keys(errors).length).toBe(2 + params.length);
    });
  });
});

describe.each(TEST_BACKENDS)('conv layers on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it("expresses Whisper's front end exactly: 80 mel x 3000 frames -> 3000 -> 1500 positions", () => {
    const conv1 = new Conv1d(80, 384, 3, { padding: 1 });
    const conv2 = new Conv1d(384, 384, 3, { stride: 2, padding: 1 });
    expect(conv1.weight.shape).toEqual([3, 80, 384]);
    expect(conv1.outputLength(3000)).toBe(3000);
    expect(conv2.outputLength(3000)).toBe(1500);
    conv1.dispose();
    conv2.dispose();
  });

  it('finite differences agree with the gradients (input and parameters)', () => {
    const checks: [string, Module & { forward(x: tf.Tensor): tf.Tensor }, number[]][] = [
      ['Conv1d groups 2 stride 2 dilation 2', new Conv1d(4, 6, 3, { stride: 2, padding: 2, dilation: 2, groups: 2 }), [2, 9, 4]],
      ['ConvTranspose2d k3 s2 p1 op1', new ConvTranspose2d(3, 2, 3, { stride: 2, padding: 1, outputPadding: 1 }), [1, 3, 4, 3]],
      ['GroupNorm', new GroupNorm(2, 4), [2, 3, 3, 4]],
      ['Upsample bilinear x1.5', new Upsample({ mode: 'bilinear', scaleFactor: 1.5 }), [1, 3, 4, 2]],
      ['AvgPool2d k3 s2 p1 ceil', new AvgPool2d(3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false }), [1, 5, 6, 2]],
    ];
    for (const [name, layer, shape] of checks) {
      const x = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 7));
      // A fixed random projection, so every output position matters with its own weight.
      const outShape = tf.tidy(() => layer.forward(x).shape);
      const proj = tf.randomNormal(outShape, 0, 1, 'float32', 11);
      const f = () => tf.sum(tf.mul(layer.forward(x), proj)) as tf.Scalar;
      const report = gradCheckVariables(f, [x, ...layer.trainableVariables()], { maxCoords: 12 });
      expect(report.checked, name).toBeGreaterThan(0);
      x.dispose();
      proj.dispose();
      layer.dispose();
    }
  });

  it('forward and backward leave no tensors behind', () => {
    const layers: [Module & { forward(x: tf.Tensor): tf.Tensor }, number[]][] = [
      [new Conv1d(3, 4, 3, { padding: 1, groups: 1 }), [1, 6, 3]],
      [new Conv1d(4, 4, 3, { groups: 4 }), [1, 6, 4]],
      [new Conv1d(4, 6, 3, { groups: 2, stride: 2 }), [1, 7, 4]],
      [new ConvTranspose2d(2, 3, 2, { stride: 2, padding: 2, outputPadding: 1 }), [1, 4, 4, 2]],
      [new GroupNorm(2, 4), [1, 3, 3, 4]],
      [new Upsample({ scaleFactor: 2 }), [1, 2, 3, 2]],
      [new Upsample({ scaleFactor: 1.5 }), [1, 2, 3, 2]],
      [new Upsample({ mode: 'bilinear', size: [5, 4], alignCorners: true }), [1, 2, 3, 2]],
      [new AvgPool2d(3, { stride: 2, padding: 1, countIncludePad: false }), [1, 5, 5, 2]],
      [new AvgPool1d(2), [1, 5, 2]],
    ];
    for (const [layer, shape] of layers) {
      const x = tf.randomNormal(shape);
      expectNoLeaksSync(() => layer.forward(x), `${layer.constructor.name} forward`);
      if (layer.trainableVariables().length > 0) {
        expectNoLeaksSync(() => {
          const { value, grads } = tf.variableGrads(() => tf.sum(layer.forward(x)) as tf.Scalar, layer.trainableVariables());
          value.dispose();
          Object.values(grads).forEach((g) => g.dispose());
        }, `${layer.constructor.name} parameter gradients`);
      }
      const g = expectNoLeaksSync(() => tf.grad((input: tf.Tensor) => tf.sum(layer.forward(input)))(x), `${layer.constructor.name} input gradient`);
      expect(g.shape).toEqual(x.shape);
      g.dispose();
      x.dispose();
      layer.dispose();
    }
  });
});

describe('conv layers: shapes, options and errors', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  it('Conv1d rejects bad options and inputs with what to do', () => {
    expect(() => new Conv1d(6, 4, 3, { groups: 4 })).toThrow(/divisible by groups \(4\)/);
    expect(() => new Conv1d(3, 4, 0)).toThrow(/kernelSize must be a positive integer, got 0/);
    expect(() => new Conv1d(3, 4, 3, { stride: 1.5 })).toThrow(/stride must be a positive integer/);
    expect(() => new Conv1d(3, 4, 3, { padding: -1 })).toThrow(/padding must be .* got -1/);
    expect(() => new Conv1d(3, 4, 3, { padding: 'full' as never })).toThrow(/padding must be/);
    expect(() => new Conv1d(3, 4, 3, { weightInit: tf.zeros([4, 3, 3]) })).toThrow(/\[3,3,4\] \(k, in\/groups, out\), got \[4,3,3\].*conv1dFromTorch/);
    const conv = new Conv1d(3, 4, 5);
    expect(() => conv.forward(tf.zeros([2, 3, 10]))).toThrow(/expected NWC input \[batch, length, 3\], got \[2,3,10\]; the input looks NCW/);
    expect(() => conv.forward(tf.zeros([10, 3]))).toThrow(/expected NWC input/);
    expect(() => conv.forward(tf.zeros([1, 4, 3]))).toThrow(/input length 4 \(padding 0,0\) is shorter than the kernel's span 5/);
    conv.dispose();
  });

  it("Conv1d 'same' keeps ceil(T / stride) positions", () => {
    const conv = new Conv1d(2, 3, 4, { padding: 'same', stride: 2, dilation: 2 });
    for (const T of [1, 2, 7, 8, 13]) {
      expect(conv.outputLength(T)).toBe(Math.ceil(T / 2));
      const y = conv.forward(tf.ones([1, T, 2]));
      expect(y.shape).toEqual([1, Math.ceil(T / 2), 3]);
      y.dispose();
    }
    conv.dispose();
  });

  it('ConvTranspose2d rejects bad options and inputs, and computes the output size as PyTorch', () => {
    expect(() => new ConvTranspose2d(2, 3, 3, { stride: 2, outputPadding: 2 })).toThrow(/outputPadding must be smaller than stride or dilation/);
    expect(() => new ConvTranspose2d(2, 3, 3, { padding: -1 })).toThrow(/padding must be non-negative integers/);
    expect(() => new ConvTranspose2d(2, 3, [3, 0])).toThrow(/kernelSize must be positive integers/);
    expect(() => new ConvTranspose2d(2, 3, 3, { weightInit: tf.zeros([3, 3, 2, 3]) })).toThrow(/\[3,3,3,2\] \(kH, kW, out, in\).*convTranspose2dFromTorch/);
    const conv = new ConvTranspose2d(2, 3, 4, { stride: 2, padding: 1 });
    expect(conv.outputSize(8, 5)).toEqual([16, 10]);
    expect(() => conv.forward(tf.zeros([1, 2, 5, 5]))).toThrow(/expected NHWC input \[batch, height, width, 2\], got \[1,2,5,5\]; the input looks NCHW/);
    conv.dispose();
    const cropped = new ConvTranspose2d(1, 1, 1, { padding: 1 });
    expect(() => cropped.forward(tf.zeros([1, 2, 2, 1]))).toThrow(/gives an empty output \(0x0\)/);
    cropped.dispose();
    // Dilation lets output padding reach the stride, as in PyTorch.
    const dilated = new ConvTranspose2d(1, 1, 2, { stride: 1, dilation: 3, outputPadding: 2 });
    expect(dilated.outputSize(4, 4)).toEqual([9, 9]);
    dilated.dispose();
  });

  it('GroupNorm rejects bad options and inputs', () => {
    expect(() => new GroupNorm(3, 8)).toThrow(/numChannels \(8\) must be divisible by numGroups \(3\)/);
    expect(() => new GroupNorm(0, 8)).toThrow(/positive integers/);
    const norm = new GroupNorm(2, 4);
    expect(() => norm.forward(tf.zeros([2, 4, 5, 5]))).toThrow(/expected channels-last input \[batch, \.\.\.spatial, 4\], got \[2,4,5,5\]; the input looks channels-first/);
    expect(() => norm.forward(tf.zeros([4]))).toThrow(/expected channels-last input/);
    norm.dispose();
  });

  it('Upsample rejects bad options and inputs', () => {
    expect(() => new Upsample({})).toThrow(/exactly one of scaleFactor and size/);
    expect(() => new Upsample({ scaleFactor: 2, size: [4, 4] })).toThrow(/exactly one of scaleFactor and size/);
    expect(() => new Upsample({ scaleFactor: 2, alignCorners: true })).toThrow(/alignCorners only applies to mode 'bilinear'/);
    expect(() => new Upsample({ scaleFactor: 0 })).toThrow(/scaleFactor must be positive numbers/);
    expect(() => new Upsample({ size: [2.5, 3] })).toThrow(/size must be positive integers/);
    expect(() => new Upsample({ scaleFactor: 2, mode: 'bicubic' as never })).toThrow(/mode must be 'nearest' or 'bilinear', got "bicubic"/);
    expect(() => interpolate(tf.zeros([2, 3, 4]), { scaleFactor: 2 })).toThrow(/expected an NHWC image batch/);
    expect(() => interpolate(tf.zeros([1, 3, 3, 1]), { scaleFactor: 0.2 })).toThrow(/gives an empty output \(0x0\)/);
  });

  it("Upsample nearest reproduces PyTorch's float32 index arithmetic", () => {
    // float32(1/3) is above 1/3, so no index falls one short; 2x is a shift; sizes use in/out.
    expect(nearestIndices(4, 12, 3)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(nearestIndices(3, 6, 2)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(nearestIndices(5, 7)).toEqual([0, 0, 1, 2, 2, 3, 4]);
    expect(nearestIndices(7, 3, 0.5)).toEqual([0, 2, 4]);
  });

  it('average pooling rejects bad options and inputs, and sizes outputs as PyTorch', () => {
    expect(() => new AvgPool2d(3, { padding: 2 })).toThrow(/padding \[2,2\] must be at most half the kernel \[3,3\]/);
    expect(() => new AvgPool2d(0)).toThrow(/kernelSize must be positive integers/);
    expect(() => new AvgPool2d(2, { divisorOverride: 0 })).toThrow(/divisorOverride must be a non-zero number/);
    expect(() => new AvgPool1d(2, { padding: 2 })).toThrow(/AvgPool1d: padding \[2,0\] must be at most half/);
    const pool = new AvgPool2d(3, { stride: 2, padding: 1, ceilMode: true });
    // PyTorch: ceil((8 + 2 - 3) / 2) + 1 = 5 (the last window starts at 8 - 1 = 7, inside the input); 7 -> 4.
    expect(pool.outputSize(8, 7)).toEqual([5, 4]);
    expect(() => pool.forward(tf.zeros([3, 4, 4]))).toThrow(/expected an NHWC batch/);
    expect(() => new AvgPool2d(4).forward(tf.zeros([1, 3, 3, 1]))).toThrow(/input 3x3 is smaller than the kernel \[4,4\]/);
    expect(() => new AvgPool1d(2).forward(tf.zeros([1, 4]))).toThrow(/expected an NWC batch/);
  });

  it('layout helpers and remap tables convert Conv1d and ConvTranspose2d weights both ways', () => {
    expect(layoutPermutation('conv1d', 'import')).toEqual([2, 1, 0]);
    expect(layoutPermutation('convTranspose2d', 'import')).toEqual([2, 3, 1, 0]);
    expect(layoutPermutation('convTranspose2d', 'export')).toEqual([3, 2, 0, 1]);
    const torchConv1d = tf.tensor(Array.from({ length: 24 }, (_, i) => i), [4, 3, 2]); // [out, in, k]
    const torchConvT = tf.tensor(Array.from({ length: 60 }, (_, i) => i), [2, 5, 3, 2]); // [in, out, kH, kW]
    const c1 = conv1dFromTorch(torchConv1d);
    expect(c1.shape).toEqual([2, 3, 4]);
    // element [k=1, in=2, out=3] is torch [3, 2, 1] = 3*6 + 2*2 + 1
    expect(tf.slice(c1, [1, 2, 3], [1, 1, 1]).dataSync()[0]).toBe(23);
    const ct = convTranspose2dFromTorch(torchConvT);
    expect(ct.shape).toEqual([3, 2, 5, 2]);
    // element [kH=2, kW=1, out=4, in=1] is torch [1, 4, 2, 1] = 1*30 + 4*6 + 2*2 + 1
    expect(tf.slice(ct, [2, 1, 4, 1], [1, 1, 1, 1]).dataSync()[0]).toBe(59);
    expect(Array.from(conv1dToTorch(c1).dataSync())).toEqual(Array.from(torchConv1d.dataSync()));
    expect(Array.from(convTranspose2dToTorch(ct).dataSync())).toEqual(Array.from(torchConvT.dataSync()));
    expect(() => conv1dFromTorch(torchConvT)).toThrow(/layout "conv1d" expects rank 3, got shape \[2,5,3,2\]/);

    const table: RemapTable = {
      rules: [
        { external: 'encoder.conv{i}.weight', internal: 'audio.conv{i}.weight', layout: 'conv1d' },
        { external: 'decoder.up.weight', internal: 'decoder.up.weight', layout: 'convTranspose2d' },
      ],
    };
    const imported = importStateDict({ 'encoder.conv1.weight': torchConv1d, 'decoder.up.weight': torchConvT }, table);
    expect(imported['audio.conv1.weight']!.shape).toEqual([2, 3, 4]);
    expect(imported['decoder.up.weight']!.shape).toEqual([3, 2, 5, 2]);
    const exported = exportStateDict(imported, table);
    expect(Array.from(exported['encoder.conv1.weight']!.dataSync())).toEqual(Array.from(torchConv1d.dataSync()));
    expect(exported['decoder.up.weight']!.shape).toEqual([2, 5, 3, 2]);
    expect(Array.from(exported['decoder.up.weight']!.dataSync())).toEqual(Array.from(torchConvT.dataSync()));
    // A Conv1d loads the imported weight as is.
    const conv = new Conv1d(3, 4, 2, { bias: false });
    conv.loadStateDict({ weight: imported['audio.conv1.weight']! });
    conv.dispose();
    for (const t of [torchConv1d, torchConvT, c1, ct, ...Object.values(imported), ...Object.values(exported)]) t.dispose();
  });
});
