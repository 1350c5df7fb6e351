/**
 * 2-D convolution over NHWC images. The weight is stored [kH, kW, in, out] (the tfjs layout); PyTorch's
 * [out, in, kH, kW] is converted at the checkpoint boundary. Dilation is applied by spreading the kernel with
 * zeros, because tfjs has no conv gradient for dilation > 1 and refuses stride and dilation both above 1.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { fanInUniform } from './init';

/** 'valid' (none), 'same' (output ceil(input / stride)), zeros on every side (a number) or per axis [rows, cols]. */
export type Conv2dPadding = 'valid' | 'same' | number | [number, number];

/** Construction options of {@link Conv2d}. */
export interface Conv2dOptions {
  /** Stride per axis (default 1). */
  stride?: number | [number, number];
  /**
   * 'valid' (none), 'same' (TensorFlow's rule: output = ceil(input / stride), extra padding at the bottom/right)
   * or explicit zero padding per side, as PyTorch's `padding=` (default 'valid').
   */
  padding?: Conv2dPadding;
  /** Spacing between kernel taps (default 1). */
  dilation?: number | [number, number];
  /** Learn a bias [out] (default true). */
  bias?: boolean;
  /** Initial weight [kH, kW, in, out]; defaults to PyTorch's U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
  weightInit?: tf.Tensor;
}

/**
 * 2-D convolution over NHWC images, [B, H, W, in] -> [B, H', W', out]. Weight `[kH, kW, in, out]` (tfjs layout;
 * PyTorch weights convert at the checkpoint boundary), bias `[out]`.
 */
export class Conv2d extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Kernel [kH, kW]. */
  readonly kernelSize: [number, number];
  /** Stride [rows, cols]. */
  readonly stride: [number, number];
  /** Kernel dilation [rows, cols]. */
  readonly dilation: [number, number];
  /** Padding as given (see {@link Conv2dPadding}). */
  readonly padding: Conv2dPadding;
  /** Kernel [kH, kW, in, out]. */
  readonly weight: tf.Variable; // [kH, kW, in, out]
  /** Bias [out], or null without one. */
  readonly bias: tf.Variable | null; // [out]

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number | [number, number],
    options: Conv2dOptions = {},
  ) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize, 'kernelSize');
    this.stride = pair(options.stride ?? 1, 'stride');
    this.dilation = pair(options.dilation ?? 1, 'dilation');
    this.padding = options.padding ?? 'valid';
    if (typeof this.padding !== 'string') {
      const [ph, pw] = this.paddingPair();
      if (!(Number.isInteger(ph) && Number.isInteger(pw) && ph >= 0 && pw >= 0)) {
        throw new Error(
          `Conv2d: padding must be 'valid', 'same' or non-negative integers, got ${JSON.stringify(this.padding)}`,
        );
      }
    }
    const [kH, kW] = this.kernelSize;
    const fanIn = inChannels * kH * kW;
    const init = options.weightInit ?? fanInUniform([kH, kW, inChannels, outChannels], fanIn);
    const expected = [kH, kW, inChannels, outChannels];
    if (init.rank !== 4 || init.shape.some((d, i) => d !== expected[i])) {
      throw new Error(`Conv2d: weightInit must be [${expected}] (kH, kW, in, out), got [${init.shape}]`);
    }
    this.weight = this.addParameter('weight', init);
    this.bias = options.bias === false ? null : this.addParameter('bias', fanInUniform([outChannels], fanIn));
  }

  /** x: [B, H, W, in] -> [B, H', W', out]. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new Error(
        `Conv2d: expected NHWC input [batch, height, width, ${this.inChannels}], got [${x.shape}]` +
          (x.rank === 4 && x.shape[1] === this.inChannels ? '; the input looks NCHW: transpose it to NHWC' : ''),
      );
    }
    this.checkOutputSize(x.shape[1]!, x.shape[2]!);
    return tf.tidy(() => {
      const kernel = this.effectiveKernel();
      const pad =
        typeof this.padding === 'string'
          ? this.padding
          : explicitPadding(this.paddingPair());
      let y: tf.Tensor = tf.conv2d(x as tf.Tensor4D, kernel, this.stride, pad);
      if (this.bias) y = tf.add(y, this.bias);
      return y;
    });
  }

  /** The kernel with dilation applied: zeros between taps, [(kH-1)dH+1, (kW-1)dW+1, in, out]. */
  private effectiveKernel(): tf.Tensor4D {
    return dilateKernel(this.weight as tf.Tensor4D, this.dilation);
  }

  /** Zero padding per side [rows, cols] for 'valid' and explicit padding. */
  private paddingPair(): [number, number] {
    if (this.padding === 'valid' || this.padding === 'same') return [0, 0];
    return typeof this.padding === 'number' ? [this.padding, this.padding] : this.padding;
  }

  private checkOutputSize(height: number, width: number): void {
    if (this.padding === 'same') return;
    const [ph, pw] = this.paddingPair();
    const spanH = (this.kernelSize[0] - 1) * this.dilation[0] + 1;
    const spanW = (this.kernelSize[1] - 1) * this.dilation[1] + 1;
    if (height + 2 * ph < spanH || width + 2 * pw < spanW) {
      throw new Error(
        `Conv2d: input ${height}x${width} (padding ${ph},${pw}) is smaller than the kernel's span ${spanH}x${spanW}; ` +
          "use a larger input, more padding or padding: 'same'",
      );
    }
  }
}

function pair(value: number | [number, number], what: string): [number, number] {
  const [a, b] = typeof value === 'number' ? [value, value] : value;
  if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 1 && b >= 1)) {
    throw new Error(`Conv2d: ${what} must be positive integers, got ${JSON.stringify(value)}`);
  }
  return [a, b];
}

/** tfjs's explicit padding: [[0, 0], [top, bottom], [left, right], [0, 0]] for NHWC. */
type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

function explicitPadding([ph, pw]: [number, number]): ExplicitPadding {
  return [
    [0, 0],
    [ph, ph],
    [pw, pw],
    [0, 0],
  ];
}

/**
 * A [kH, kW, a, b] kernel with dilation applied: zeros between taps, [(kH-1)dH+1, (kW-1)dW+1, a, b]. Pads each tap
 * with d-1 zeros and cuts the trailing ones, so the gradient flows back through plain pad/reshape/slice.
 */
export function dilateKernel(weight: tf.Tensor4D, [dH, dW]: readonly [number, number]): tf.Tensor4D {
  if (dH === 1 && dW === 1) return weight;
  const [kH, kW, a, b] = weight.shape;
  const taps = tf.reshape(weight, [kH, 1, kW, 1, a * b]);
  const spread = tf.pad(taps, [
    [0, 0],
    [0, dH - 1],
    [0, 0],
    [0, dW - 1],
    [0, 0],
  ]); // [kH, dH, kW, dW, a * b]
  const grid = tf.reshape(spread, [kH * dH, kW * dW, a, b]);
  return tf.slice(grid, [0, 0, 0, 0], [(kH - 1) * dH + 1, (kW - 1) * dW + 1, -1, -1]) as tf.Tensor4D;
}
