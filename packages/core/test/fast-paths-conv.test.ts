import { afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { Rng, manualSeed } from '../src/runtime/random';
import { setConvChunkFloats, setConvFilterMethod } from '../src/runtime/conv-gradients';
import { Conv2d } from '../src/nn/conv';

// The convolution-gradient fast paths (conv-gradients.ts) against tfjs's cpu kernels and gradients: each case runs
// on the cpu backend (the reference) and on wasm with the fast paths, forward and backward (the loss weights every
// output differently, so dy is an exact, non-uniform tensor on both backends). The matmul-based conv gradients sum
// in float32 in another order than the cpu kernels' float64 loops (within 1e-5); the depthwise ones, and anything
// the fast paths hand back to the kernel they replace (NCHW), must match bit for bit.

/** Float32 results of different summation orders: 1e-5 relative to the magnitude (absolute below 1). */
const TOLERANCE = 1e-5;

function values(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 2 - 1), shape);
}

/** Runs fn (returning tensors) and gives their data; checks that nothing is left behind, in tfjs or in the backend. */
function read(fn: () => tf.Tensor[]): Float32Array[] {
  const tensors = tf.memory().numTensors;
  const buffers = tf.engine().backend.numDataIds();
  const out = tf.tidy(fn);
  const data = out.map((t) => t.dataSync().slice() as Float32Array);
  tf.dispose(out);
  expect(tf.memory().numTensors, 'tensors left behind').toBe(tensors);
  expect(tf.engine().backend.numDataIds(), 'backend buffers left behind').toBe(buffers);
  return data;
}

function expectClose(actual: Float32Array[], expected: Float32Array[], label: string): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    expect(a.length, `${label} output ${i} length`).toBe(e.length);
    let worst = 0;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - e[j]!) / Math.max(1, Math.abs(e[j]!)));
    expect(worst, `${label} output ${i}: max relative difference`).toBeLessThanOrEqual(TOLERANCE);
  });
}

function expectBitwise(actual: Float32Array[], expected: Float32Array[], label: string): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    expect(Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)), `${label} output ${i}`).toEqual(
      Array.from(new Uint32Array(expected[i]!.buffer, expected[i]!.byteOffset, expected[i]!.length)),
    );
  });
}

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/**
 * Runs `fn` on the cpu backend (reference) and on wasm with the fast paths: as chosen, and with each filter-gradient
 * method forced (the patch matrix in chunks of a few output lines, so the chunked path and a ragged last chunk run).
 */
async function onBothBackends(fn: () => tf.Tensor[]): Promise<{ reference: Float32Array[]; wasm: Float32Array[]; chunked: Float32Array[]; views: Float32Array[] }> {
  await initBackend({ backend: 'cpu' });
  const reference = read(fn);
  const report = await initBackend({ backend: 'wasm' });
  expect(report.fastPaths).toEqual(expect.arrayContaining(['wasm-conv-filter-gradient', 'wasm-conv-input-gradient', 'wasm-depthwise-gradients']));
  const wasm = read(fn);
  setConvFilterMethod('patches');
  setConvChunkFloats(97);
  const chunked = read(fn);
  setConvChunkFloats();
  setConvFilterMethod('views');
  const views = read(fn);
  setConvFilterMethod();
  return { reference, wasm, chunked, views };
}

afterEach(() => {
  setConvChunkFloats();
  setConvFilterMethod();
});

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { name: '3x3 same, stride 1', x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 same, stride 2, odd sizes', x: [3, 7, 9, 5], filter: [3, 3, 5, 6], strides: 2, pad: 'same' },
  { name: '3x3 valid, stride 1', x: [1, 6, 5, 2], filter: [3, 3, 2, 3], strides: 1, pad: 'valid' },
  { name: '3x3 same, stride 2, even width (column phases)', x: [2, 6, 8, 4], filter: [3, 3, 4, 3], strides: 2, pad: 'same' },
  { name: '3x3 same, stride 3, width divisible by 3', x: [2, 7, 9, 3], filter: [3, 3, 3, 2], strides: 3, pad: 'same' },
  { name: '2x3 valid, stride [2, 3]', x: [2, 9, 11, 3], filter: [2, 3, 3, 2], strides: [2, 3], pad: 'valid' },
  { name: 'explicit asymmetric padding, stride [2, 1]', x: [2, 9, 6, 4], filter: [3, 2, 4, 5], strides: [2, 1], pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  { name: 'explicit padding 1, stride 1 (PyTorch padding=1)', x: [2, 6, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { name: 'padding wider than the kernel (stride 1 falls back to col2im)', x: [1, 5, 4, 2], filter: [3, 3, 2, 2], strides: 1, pad: [[0, 0], [3, 3], [2, 3], [0, 0]] },
  { name: '4x4 stride 2 padding 1 (VQGAN downsampling)', x: [2, 8, 8, 3], filter: [4, 4, 3, 2], strides: 2, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { name: '1x1, stride 1', x: [2, 5, 5, 8], filter: [1, 1, 8, 3], strides: 1, pad: 'valid' },
  { name: '5x5 same, stride 3', x: [1, 11, 10, 2], filter: [5, 5, 2, 4], strides: 3, pad: 'same' },
  { name: 'kernel larger than the image, same', x: [1, 2, 3, 2], filter: [3, 3, 2, 2], strides: 1, pad: 'same' },
  { name: 'conv1d-shaped [B, 1, T, C], stride 2', x: [2, 1, 17, 6], filter: [1, 3, 6, 4], strides: [1, 2], pad: 'same' },
  { name: 'conv1d-shaped, even length, stride 2, padding 1 (Whisper conv2)', x: [1, 1, 16, 5], filter: [1, 3, 5, 4], strides: [1, 2], pad: [[0, 0], [0, 0], [1, 1], [0, 0]] },
  { name: 'one output channel, one input channel', x: [2, 6, 6, 1], filter: [3, 3, 1, 1], strides: 1, pad: 'same' },
];

describe('Conv2D gradients on wasm (wasm-conv-filter-gradient, wasm-conv-input-gradient)', () => {
  it.each(CONV_CASES)('conv2d forward and gradients match the cpu backend: $name', async ({ x, filter, strides, pad }) => {
    const run = () => {
      const xs = values(x, 1);
      const w = values(filter, 2);
      const y = tf.conv2d(xs as tf.Tensor4D, w as tf.Tensor4D, strides, pad);
      const r = values(y.shape, 3);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), r)))([xs, w]);
      return [y, dx!, dw!];
    };
    const { reference, wasm, chunked, views } = await onBothBackends(run);
    expectClose(wasm, reference, 'wasm');
    expectClose(chunked, reference, 'wasm, patch matrix in chunks');
    expectClose(views, reference, 'wasm, shifted views');
  });

  it.each(CONV_CASES)(
    'conv2dTranspose (Conv2DBackpropInput as a forward pass) and its gradients match the cpu backend: $name',
    async ({ x, filter, strides, pad }) => {
      // The transposed convolution of dy (the conv's output shape) back to x's shape.
      const outShape = tf.tidy(() => tf.conv2d(tf.zeros(x) as tf.Tensor4D, tf.zeros(filter) as tf.Tensor4D, strides, pad).shape);
      const run = () => {
        const dy = values(outShape, 4);
        const w = values(filter, 5);
        const y = tf.conv2dTranspose(dy as tf.Tensor4D, w as tf.Tensor4D, x, strides, pad as 'same' | 'valid' | number);
        const r = values(x, 6);
        const [gdy, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, x, strides, pad as 'same'), r)))([dy, w]);
        return [y, gdy!, gw!];
      };
      const { reference, wasm, chunked, views } = await onBothBackends(run);
      expectClose(wasm, reference, 'wasm');
      expectClose(chunked, reference, 'wasm, patch matrix in chunks');
      expectClose(views, reference, 'wasm, shifted views');
    },
  );

  it('trains a dilated Conv2d layer (dilation by a spread kernel) like the cpu backend', async () => {
    // tfjs's gradients refuse dilation > 1; the layer spreads the kernel instead, so its gradients reach these kernels.
    for (const [stride, dilation, padding] of [[1, 2, 2], [2, 2, 'same'], [1, [3, 2], 0]] as const) {
      const run = () => {
        manualSeed(16); // the bias initialiser draws from the global generator
        const conv = new Conv2d(3, 4, 3, { stride, dilation: dilation as number | [number, number], padding, weightInit: values([3, 3, 3, 4], 7) });
        const xs = values([2, 11, 10, 3], 8);
        const r = tf.tidy(() => values(conv.forward(xs).shape, 9));
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(conv.forward(xs), r)) as tf.Scalar, conv.trainableVariables());
        const out = [value, ...conv.trainableVariables().map((v) => grads[v.name]!)];
        conv.dispose();
        return out;
      };
      const { reference, wasm, chunked, views } = await onBothBackends(run);
      expectClose(wasm, reference, `stride ${stride} dilation ${dilation}`);
      expectClose(chunked, reference, `stride ${stride} dilation ${dilation}, patch matrix in chunks`);
      expectClose(views, reference, `stride ${stride} dilation ${dilation}, shifted views`);
    }
  });

  it('computes dilated conv2d forward passes (wasm XNNPACK, no fast path) like the cpu backend', async () => {
    const run = () => {
      const xs = values([2, 9, 9, 3], 10);
      const w = values([3, 3, 3, 4], 11);
      return [tf.conv2d(xs as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2), tf.conv2d(xs as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid', 'NHWC', [2, 3])];
    };
    const { reference, wasm } = await onBothBackends(run);
    expectClose(wasm, reference, 'dilated forward');
  });

  it('hands NCHW to the kernel it replaces (the cpu fill-in): bit for bit the cpu kernel', async () => {
    const run = () => {
      const xs = values([2, 3, 7, 6], 12); // NCHW
      const dy = values([2, 4, 4, 3], 13);
      return [tf.engine().runKernel('Conv2DBackpropFilter', { x: xs, dy }, { strides: [2, 2], pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] } as never) as tf.Tensor];
    };
    const { reference, wasm } = await onBothBackends(run);
    expectBitwise(wasm, reference, 'NCHW filter gradient');
  });

  it('a step of the fill-in path with the fast paths off still trains (the fallback stays registered)', async () => {
    await initBackend({ backend: 'wasm', fastPaths: false });
    const dw = read(() => [tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(values([1, 4, 4, 2], 14) as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')))(values([3, 3, 2, 2], 15))]);
    await initBackend({ backend: 'cpu' });
    expectBitwise(dw, read(() => [tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(values([1, 4, 4, 2], 14) as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')))(values([3, 3, 2, 2], 15))]), 'fill-in');
  });
});

interface DepthwiseCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

const DEPTHWISE_CASES: DepthwiseCase[] = [
  { name: '3x3 same, stride 1, multiplier 1', x: [2, 7, 8, 5], filter: [3, 3, 5, 1], strides: 1, pad: 'same' },
  { name: '3x3 same, stride 2, multiplier 2, odd sizes', x: [3, 9, 7, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { name: '5x5 valid, stride [1, 2], multiplier 3', x: [1, 9, 10, 2], filter: [5, 5, 2, 3], strides: [1, 2], pad: 'valid' },
  { name: '7x7 explicit padding 3 (ConvNeXt), stride 1', x: [2, 8, 8, 4], filter: [7, 7, 4, 1], strides: 1, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
  { name: '2x3 explicit asymmetric padding, stride 2', x: [2, 6, 9, 3], filter: [2, 3, 3, 2], strides: 2, pad: [[0, 0], [0, 1], [2, 1], [0, 0]] },
];

describe('depthwise conv gradients on wasm (wasm-depthwise-gradients)', () => {
  it.each(DEPTHWISE_CASES)('match the cpu kernels bit for bit: $name', async ({ x, filter, strides, pad }) => {
    const run = () => {
      const xs = values(x, 20);
      const w = values(filter, 21);
      const y = tf.depthwiseConv2d(xs as tf.Tensor4D, w as tf.Tensor4D, strides, pad);
      const r = values(y.shape, 22);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), r)))([xs, w]);
      return [y, dx!, dw!];
    };
    const { reference, wasm } = await onBothBackends(run);
    // The forward pass is wasm's own XNNPACK kernel (float32 sums); the gradients get the same x, filter and dy.
    expectClose(wasm.slice(0, 1), reference.slice(0, 1), 'forward');
    expectBitwise(wasm.slice(1), reference.slice(1), 'gradients');
  });

  it('leave dilated depthwise kernels to the kernel they replace (the cpu fill-in): bit for bit', async () => {
    const run = () => {
      const xs = values([1, 9, 9, 2], 23);
      const dy = values([1, 9, 9, 2], 24);
      const w = values([3, 3, 2, 1], 25);
      const attrs = { strides: [1, 1], dilations: [2, 2], pad: 'same' };
      return [
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: xs, dy }, { ...attrs, filterShape: [3, 3, 2, 1] } as never) as tf.Tensor,
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: [1, 9, 9, 2] } as never) as tf.Tensor,
      ];
    };
    const { reference, wasm } = await onBothBackends(run);
    expectBitwise(wasm, reference, 'dilated depthwise');
  });
});
