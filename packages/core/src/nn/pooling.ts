/**
 * Average pooling over NHWC images (AvgPool2d) and NWC sequences (AvgPool1d) with PyTorch's `nn.AvgPool2d` /
 * `nn.AvgPool1d` semantics: stride defaulting to the kernel, zero padding of at most half the kernel,
 * `ceilMode` (a last window may hang past the input if it starts inside it or its left padding),
 * `countIncludePad` (padding zeros count towards the divisor, except the part of a ceil-mode window past the
 * padding) and, for 2-D, `divisorOverride`. The divisor rules follow ATen's CPU avg_pool2d kernel.
 *
 * The window sums come from tfjs's avgPool ('valid', on the zero-padded input, so it divides by the full kernel
 * area) and are rescaled by a constant per-position factor where PyTorch divides by something else.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** Construction options of {@link AvgPool2d} (PyTorch's `nn.AvgPool2d` arguments). */
export interface AvgPool2dOptions {
  /** Default: the kernel size (non-overlapping windows), as PyTorch. */
  stride?: number | [number, number];
  /** Zeros on each side, at most half the kernel (default 0). */
  padding?: number | [number, number];
  /** Round the output size up instead of down (default false). */
  ceilMode?: boolean;
  /** Count padding zeros in the divisor (default true, PyTorch's default). */
  countIncludePad?: boolean;
  /** Divide every window sum by this instead. */
  divisorOverride?: number;
}

/** Construction options of {@link AvgPool1d}: those of AvgPool2d for one axis, without `divisorOverride`. */
export type AvgPool1dOptions = Omit<AvgPool2dOptions, 'divisorOverride' | 'stride' | 'padding'> & {
  /** Default: the kernel size. */
  stride?: number;
  /** Zeros on each side, at most half the kernel (default 0). */
  padding?: number;
};

interface AxisPool {
  kernel: number;
  stride: number;
  padding: number;
}

/**
 * Average pooling over NHWC images, [B, H, W, C] -> [B, H', W', C], with PyTorch's `nn.AvgPool2d` semantics (ceil
 * mode, count-include-pad, divisor override).
 */
export class AvgPool2d extends Module {
  /** Window [kH, kW]. */
  readonly kernelSize: [number, number];
  /** Stride [rows, cols]. */
  readonly stride: [number, number];
  /** Zeros per side [rows, cols]. */
  readonly padding: [number, number];
  /** Whether output sizes round up. */
  readonly ceilMode: boolean;
  /** Whether padding zeros count in the divisor. */
  readonly countIncludePad: boolean;
  /** Divisor for every window, or null for PyTorch's rule. */
  readonly divisorOverride: number | null;

  constructor(kernelSize: number | [number, number], options: AvgPool2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'kernelSize', 1, 'AvgPool2d');
    this.stride = pair(options.stride ?? this.kernelSize, 'stride', 1, 'AvgPool2d');
    this.padding = pair(options.padding ?? 0, 'padding', 0, 'AvgPool2d');
    checkPadding(this.padding, this.kernelSize, 'AvgPool2d');
    this.ceilMode = options.ceilMode ?? false;
    this.countIncludePad = options.countIncludePad ?? true;
    const d = options.divisorOverride;
    if (d !== undefined && !(Number.isFinite(d) && d !== 0)) {
      throw new Error(`AvgPool2d: divisorOverride must be a non-zero number, got ${JSON.stringify(d)}`);
    }
    this.divisorOverride = d ?? null;
  }

  /** The output size [H', W'] for an input of size [height, width]. */
  outputSize(height: number, width: number): [number, number] {
    return [pooledLength(height, this.axis(0), this.ceilMode), pooledLength(width, this.axis(1), this.ceilMode)];
  }

  /** x: [B, H, W, C] -> [B, H', W', C]. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4) {
      throw new Error(`AvgPool2d: expected an NHWC batch [batch, height, width, channels], got [${x.shape}]`);
    }
    return avgPool(x as tf.Tensor4D, [this.axis(0), this.axis(1)], this.ceilMode, this.countIncludePad, this.divisorOverride, 'AvgPool2d');
  }

  private axis(i: 0 | 1): AxisPool {
    return { kernel: this.kernelSize[i], stride: this.stride[i], padding: this.padding[i] };
  }
}

/** Average pooling over NWC sequences, [B, T, C] -> [B, T', C], with PyTorch's `nn.AvgPool1d` semantics. */
export class AvgPool1d extends Module {
  /** Window length. */
  readonly kernelSize: number;
  /** Stride. */
  readonly stride: number;
  /** Zeros on each side. */
  readonly padding: number;
  /** Whether the output length rounds up. */
  readonly ceilMode: boolean;
  /** Whether padding zeros count in the divisor. */
  readonly countIncludePad: boolean;

  constructor(kernelSize: number, options: AvgPool1dOptions = {}) {
    super();
    [this.kernelSize] = pair(kernelSize, 'kernelSize', 1, 'AvgPool1d');
    [this.stride] = pair(options.stride ?? kernelSize, 'stride', 1, 'AvgPool1d');
    [this.padding] = pair(options.padding ?? 0, 'padding', 0, 'AvgPool1d');
    checkPadding([this.padding, 0], [this.kernelSize, 1], 'AvgPool1d');
    this.ceilMode = options.ceilMode ?? false;
    this.countIncludePad = options.countIncludePad ?? true;
  }

  /** The output length T' for an input of length `length`. */
  outputLength(length: number): number {
    return pooledLength(length, this.axis(), this.ceilMode);
  }

  /** x: [B, T, C] -> [B, T', C]. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 3) throw new Error(`AvgPool1d: expected an NWC batch [batch, length, channels], got [${x.shape}]`);
    const [B, T, C] = x.shape as [number, number, number];
    return tf.tidy(() => {
      const y = avgPool(
        tf.reshape(x, [B, 1, T, C]) as tf.Tensor4D,
        [{ kernel: 1, stride: 1, padding: 0 }, this.axis()],
        this.ceilMode,
        this.countIncludePad,
        null,
        'AvgPool1d',
      );
      return tf.reshape(y, [B, y.shape[2]!, C]);
    });
  }

  private axis(): AxisPool {
    return { kernel: this.kernelSize, stride: this.stride, padding: this.padding };
  }
}

/** PyTorch's pooling_output_shape: floor or ceil, and a ceil-mode window must start inside input + left pad. */
function pooledLength(length: number, { kernel, stride, padding }: AxisPool, ceilMode: boolean): number {
  const span = length + 2 * padding - kernel;
  let out = (ceilMode ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceilMode && (out - 1) * stride >= length + padding) out--;
  return out;
}

/** Per-window divisors along one axis (ATen: the window clipped to the padded input, or to the input). */
function axisDivisors(length: number, out: number, { kernel, stride, padding }: AxisPool, countIncludePad: boolean): number[] {
  const divisors: number[] = [];
  for (let o = 0; o < out; o++) {
    const start = o * stride - padding;
    const end = Math.min(start + kernel, length + padding);
    divisors.push(countIncludePad ? end - start : Math.min(end, length) - Math.max(start, 0));
  }
  return divisors;
}

function avgPool(
  x: tf.Tensor4D,
  axes: [AxisPool, AxisPool],
  ceilMode: boolean,
  countIncludePad: boolean,
  divisorOverride: number | null,
  layer: string,
): tf.Tensor {
  const [B, H, W, C] = x.shape;
  const lengths = [H, W];
  const outs = axes.map((a, i) => pooledLength(lengths[i]!, a, ceilMode));
  if (outs.some((o) => o < 1)) {
    throw new Error(
      `${layer}: input ${H}x${W} is smaller than the kernel [${axes.map((a) => a.kernel)}] with padding ` +
        `[${axes.map((a) => a.padding)}]; use a larger input, a smaller kernel or ceilMode`,
    );
  }
  // Rows needed: the last window's end. Zeros before (padding) and after (padding and ceil-mode overhang).
  const needed = axes.map((a, i) => (outs[i]! - 1) * a.stride + a.kernel);
  const after = axes.map((a, i) => needed[i]! - lengths[i]! - a.padding);
  const area = axes[0].kernel * axes[1].kernel;
  const divisors = axes.map((a, i) => axisDivisors(lengths[i]!, outs[i]!, a, countIncludePad));
  return tf.tidy(() => {
    let padded: tf.Tensor4D = x;
    if (axes.some((a, i) => a.padding > 0 || after[i]! > 0)) {
      padded = tf.pad(x, [
        [0, 0],
        [axes[0].padding, Math.max(after[0]!, 0)],
        [axes[1].padding, Math.max(after[1]!, 0)],
        [0, 0],
      ]);
    }
    if (after.some((a) => a < 0)) padded = tf.slice(padded, [0, 0, 0, 0], [B, needed[0]!, needed[1]!, C]);
    const mean = tf.avgPool(padded, [axes[0].kernel, axes[1].kernel], [axes[0].stride, axes[1].stride], 'valid');
    // avgPool divided by the kernel area; rescale where PyTorch's divisor differs.
    const factors = divisors[0]!.flatMap((dh) => divisors[1]!.map((dw) => area / (divisorOverride ?? dh * dw)));
    if (factors.every((f) => f === 1)) return mean;
    return tf.mul(mean, tf.tensor(factors, [1, outs[0]!, outs[1]!, 1]));
  });
}

function pair(value: number | [number, number], what: string, min: number, layer: string): [number, number] {
  const [a, b] = typeof value === 'number' ? [value, value] : value;
  if (!(Number.isInteger(a) && Number.isInteger(b) && a >= min && b >= min)) {
    throw new Error(
      `${layer}: ${what} must be ${min === 1 ? 'positive' : 'non-negative'} integers, got ${JSON.stringify(value)}`,
    );
  }
  return [a, b];
}

function checkPadding(padding: [number, number], kernel: [number, number], layer: string): void {
  if (padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2) {
    throw new Error(
      `${layer}: padding [${padding}] must be at most half the kernel [${kernel}] (PyTorch's rule); use a smaller padding`,
    );
  }
}
