/**
 * Transposed 2-D convolution over NHWC images with PyTorch's `nn.ConvTranspose2d` arithmetic: output size
 * (H - 1) * stride - 2 * padding + dilation * (k - 1) + outputPadding + 1, i.e. the gradient of a Conv2d with the
 * same geometry (Dumoulin & Visin 2016, "A guide to convolution arithmetic", section 4). The weight is stored
 * [kH, kW, out, in], tfjs's conv2dTranspose filter, so the forward needs no transpose; PyTorch's [in, out, kH, kW]
 * converts at the checkpoint boundary (remap layout 'convTranspose2d', `convTranspose2dFromTorch`).
 *
 * Built on tf.conv2dTranspose (the Conv2DBackpropInput kernel): its gradients are conv2d (input) and
 * Conv2DBackpropFilter (weight), the kernels core's wasm conv fast paths cover. Dilation spreads the kernel with
 * zeros, as Conv2d does. PyTorch's padding crops the full output; tfjs's explicit padding can express a crop of
 * up to k - 1 rows per side, so larger paddings and output paddings past the full output are a slice or a pad.
 */
import * as tf from '@tensorflow/tfjs';
import { dilateKernel } from './conv';
import { Module } from './module';
import { uniform } from './init';

/** Construction options of {@link ConvTranspose2d}; the geometry arguments follow PyTorch's `nn.ConvTranspose2d`. */
export interface ConvTranspose2dOptions {
  /** Stride per axis (default 1). */
  stride?: number | [number, number];
  /** Rows/columns cropped from each side of the full output, as PyTorch's `padding=` (default 0). */
  padding?: number | [number, number];
  /** Extra rows/columns at the bottom/right, as PyTorch's `output_padding=` (smaller than stride or dilation). */
  outputPadding?: number | [number, number];
  /** Spacing between kernel taps (default 1). */
  dilation?: number | [number, number];
  /** Learn a bias [out] (default true). */
  bias?: boolean;
  /** Initial weight [kH, kW, out, in]; defaults to PyTorch's U(-b, b), b = 1/sqrt(out * kH * kW). */
  weightInit?: tf.Tensor;
}

/** How one spatial axis is computed: tfjs's crop (padBefore, padAfter) of the full output, then slice and pad. */
interface AxisPlan {
  padBefore: number;
  padAfter: number;
  /** Rows tfjs produces. */
  produced: number;
  sliceStart: number;
  sliceLength: number;
  /** Zero rows appended (output padding past the full output). */
  zerosAfter: number;
}

/**
 * Transposed 2-D convolution over NHWC images, [B, H, W, in] -> [B, H', W', out], with PyTorch's output size
 * arithmetic. Weight `[kH, kW, out, in]`, bias `[out]`.
 */
export class ConvTranspose2d extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Kernel [kH, kW]. */
  readonly kernelSize: [number, number];
  /** Stride [rows, cols]. */
  readonly stride: [number, number];
  /** Rows/columns cropped from each side of the full output [rows, cols]. */
  readonly padding: [number, number];
  /** Extra rows/columns at the bottom/right [rows, cols]. */
  readonly outputPadding: [number, number];
  /** Kernel dilation [rows, cols]. */
  readonly dilation: [number, number];
  /** Kernel [kH, kW, out, in]. */
  readonly weight: tf.Variable; // [kH, kW, out, in]
  /** Bias [out], or null without one. */
  readonly bias: tf.Variable | null; // [out]

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number | [number, number],
    options: ConvTranspose2dOptions = {},
  ) {
    super();
    for (const [value, what] of [[inChannels, 'inChannels'], [outChannels, 'outChannels']] as const) {
      if (!(Number.isInteger(value) && value >= 1)) {
        throw new Error(`ConvTranspose2d: ${what} must be a positive integer, got ${JSON.stringify(value)}`);
      }
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize, 'kernelSize', 1);
    this.stride = pair(options.stride ?? 1, 'stride', 1);
    this.dilation = pair(options.dilation ?? 1, 'dilation', 1);
    this.padding = pair(options.padding ?? 0, 'padding', 0);
    this.outputPadding = pair(options.outputPadding ?? 0, 'outputPadding', 0);
    for (const axis of [0, 1]) {
      const op = this.outputPadding[axis]!;
      if (op >= this.stride[axis]! && op >= this.dilation[axis]!) {
        throw new Error(
          `ConvTranspose2d: outputPadding must be smaller than stride or dilation (as in PyTorch), got outputPadding ` +
            `[${this.outputPadding}] with stride [${this.stride}] and dilation [${this.dilation}]`,
        );
      }
    }
    const [kH, kW] = this.kernelSize;
    const expected = [kH, kW, outChannels, inChannels];
    // PyTorch computes the fan-in of a transposed conv from its weight's dim 1, which is the output channels.
    const bound = 1 / Math.sqrt(outChannels * kH * kW);
    const init = options.weightInit ?? uniform(expected, bound);
    if (init.rank !== 4 || init.shape.some((d, i) => d !== expected[i])) {
      throw new Error(
        `ConvTranspose2d: weightInit must be [${expected}] (kH, kW, out, in), got [${init.shape}]; ` +
          'a PyTorch [in, out, kH, kW] weight converts with convTranspose2dFromTorch',
      );
    }
    this.weight = this.addParameter('weight', init);
    this.bias = options.bias === false ? null : this.addParameter('bias', uniform([outChannels], bound));
  }

  /** The output size [H', W'] for an input of size [height, width]. */
  outputSize(height: number, width: number): [number, number] {
    return [this.outputLength(height, 0), this.outputLength(width, 1)];
  }

  /** x: [B, H, W, in] -> [B, H', W', out]. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new Error(
        `ConvTranspose2d: expected NHWC input [batch, height, width, ${this.inChannels}], got [${x.shape}]` +
          (x.rank === 4 && x.shape[1] === this.inChannels ? '; the input looks NCHW: transpose it to NHWC' : ''),
      );
    }
    const [B, H, W] = x.shape as [number, number, number, number];
    const [outH, outW] = this.outputSize(H, W);
    if (outH < 1 || outW < 1) {
      throw new Error(
        `ConvTranspose2d: input ${H}x${W} gives an empty output (${outH}x${outW}) with padding [${this.padding}]; ` +
          'use a larger input or less padding',
      );
    }
    const rows = this.plan(H, 0);
    const cols = this.plan(W, 1);
    return tf.tidy(() => {
      let y: tf.Tensor = tf.conv2dTranspose(
        x as tf.Tensor4D,
        this.effectiveKernel(),
        [B, rows.produced, cols.produced, this.outChannels],
        this.stride,
        [
          [0, 0],
          [rows.padBefore, rows.padAfter],
          [cols.padBefore, cols.padAfter],
          [0, 0],
        ],
      );
      if (rows.sliceStart > 0 || cols.sliceStart > 0 || rows.sliceLength < rows.produced || cols.sliceLength < cols.produced) {
        y = tf.slice(y, [0, rows.sliceStart, cols.sliceStart, 0], [B, rows.sliceLength, cols.sliceLength, this.outChannels]);
      }
      if (rows.zerosAfter > 0 || cols.zerosAfter > 0) {
        y = tf.pad(y, [
          [0, 0],
          [0, rows.zerosAfter],
          [0, cols.zerosAfter],
          [0, 0],
        ]);
      }
      if (this.bias) y = tf.add(y, this.bias);
      return y;
    });
  }

  private span(axis: number): number {
    return (this.kernelSize[axis]! - 1) * this.dilation[axis]! + 1;
  }

  private outputLength(length: number, axis: number): number {
    return (length - 1) * this.stride[axis]! - 2 * this.padding[axis]! + this.span(axis) + this.outputPadding[axis]!;
  }

  /**
   * The full (uncropped) output has F = (n - 1) * stride + span rows; PyTorch keeps rows [p, p + out), rows past
   * F being zeros. tfjs's explicit padding (a, b), each at most span - 1, yields rows [a, F - b).
   */
  private plan(length: number, axis: number): AxisPlan {
    const span = this.span(axis);
    const full = (length - 1) * this.stride[axis]! + span;
    const p = this.padding[axis]!;
    const out = this.outputLength(length, axis);
    const end = p + out;
    const padBefore = Math.min(p, span - 1);
    const padAfter = Math.min(Math.max(full - end, 0), span - 1);
    const produced = full - padBefore - padAfter;
    const sliceStart = p - padBefore;
    const sliceLength = Math.min(out, produced - sliceStart);
    return { padBefore, padAfter, produced, sliceStart, sliceLength, zerosAfter: out - sliceLength };
  }

  /** The kernel with dilation applied: zeros between taps, [(kH-1)dH+1, (kW-1)dW+1, out, in]. */
  private effectiveKernel(): tf.Tensor4D {
    return dilateKernel(this.weight as tf.Tensor4D, this.dilation);
  }

}

function pair(value: number | [number, number], what: string, min: number): [number, number] {
  const [a, b] = typeof value === 'number' ? [value, value] : value;
  if (!(Number.isInteger(a) && Number.isInteger(b) && a >= min && b >= min)) {
    throw new Error(
      `ConvTranspose2d: ${what} must be ${min === 1 ? 'positive' : 'non-negative'} integers (a number or [h, w]), ` +
        `got ${JSON.stringify(value)}`,
    );
  }
  return [a, b];
}
