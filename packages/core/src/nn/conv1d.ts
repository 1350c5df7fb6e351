/**
 * 1-D convolution over NWC sequences [B, T, C], with PyTorch's `nn.Conv1d` arithmetic (stride, zero padding,
 * dilation, groups, bias). The weight is stored [k, in/groups, out]; PyTorch's [out, in/groups, k] converts at
 * the checkpoint boundary (remap layout 'conv1d', `conv1dFromTorch`). Whisper's front end is
 * `new Conv1d(80, 384, 3, { padding: 1 })` then `new Conv1d(384, 384, 3, { stride: 2, padding: 1 })`.
 *
 * Plain convolutions (one group, no dilation) run as a conv2d of height 1 (the weight viewed as [1, k, in, out], no
 * copy): measured side by side on wasm with core's conv-gradient fast paths, Whisper-sized (80 mel x 3000 frames
 * -> 384, then 384 -> 384 stride 2), it was 1.05-1.14x faster forward and 1.09-1.35x forward + backward than
 * im2col + matMul. Without those fast paths conv2d's filter gradient runs the cpu fill-in (200-330x slower), so
 * keep them on (the default) when training. Dilated and grouped convolutions use im2col: the k taps are strided
 * slices of the padded input, concatenated to [B*T', k*in] and multiplied by the weight viewed as [k*in, out]
 * (per group, one batched matMul; depthwise, elementwise), which avoids tfjs's refusal of dilated conv gradients
 * and the zeros a dilated conv2d kernel would multiply.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { fanInUniform } from './init';

/**
 * 'valid' (none), 'same' (output length ceil(T / stride); PyTorch's 'same' at stride 1, the extra pad on the
 * right), a number (zeros on both sides, PyTorch's `padding=`) or [left, right].
 */
export type Conv1dPadding = 'valid' | 'same' | number | [number, number];

/** Construction options of {@link Conv1d}; the arguments follow PyTorch's `nn.Conv1d`. */
export interface Conv1dOptions {
  /** Stride (default 1). */
  stride?: number;
  /** Padding (see {@link Conv1dPadding}; default 'valid'). */
  padding?: Conv1dPadding;
  /** Spacing between kernel taps (default 1). */
  dilation?: number;
  /** Split channels into groups convolved separately, as PyTorch's `groups` (in and out divisible by it). */
  groups?: number;
  /** Learn a bias [out] (default true). */
  bias?: boolean;
  /** Initial weight [k, in/groups, out]; defaults to PyTorch's U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
  weightInit?: tf.Tensor;
}

/**
 * 1-D convolution over NWC sequences, [B, T, in] -> [B, T', out], with PyTorch's `nn.Conv1d` arithmetic (stride,
 * padding, dilation, groups). Weight `[k, in/groups, out]`, bias `[out]`.
 */
export class Conv1d extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Kernel taps. */
  readonly kernelSize: number;
  /** Stride. */
  readonly stride: number;
  /** Spacing between taps. */
  readonly dilation: number;
  /** Channel groups convolved separately. */
  readonly groups: number;
  /** Padding as given (see {@link Conv1dPadding}). */
  readonly padding: Conv1dPadding;
  /** Kernel [k, in/groups, out]. */
  readonly weight: tf.Variable; // [k, in/groups, out]
  /** Bias [out], or null without one. */
  readonly bias: tf.Variable | null; // [out]

  constructor(inChannels: number, outChannels: number, kernelSize: number, options: Conv1dOptions = {}) {
    super();
    positiveInt(inChannels, 'inChannels');
    positiveInt(outChannels, 'outChannels');
    positiveInt(kernelSize, 'kernelSize');
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = positiveInt(options.stride ?? 1, 'stride');
    this.dilation = positiveInt(options.dilation ?? 1, 'dilation');
    this.groups = positiveInt(options.groups ?? 1, 'groups');
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new Error(
        `Conv1d: inChannels (${inChannels}) and outChannels (${outChannels}) must both be divisible by groups ` +
          `(${this.groups}); pick a groups value that divides both`,
      );
    }
    this.padding = options.padding ?? 'valid';
    if (typeof this.padding !== 'string') {
      const [l, r] = typeof this.padding === 'number' ? [this.padding, this.padding] : this.padding;
      if (!(Number.isInteger(l) && Number.isInteger(r) && l >= 0 && r >= 0)) {
        throw new Error(
          `Conv1d: padding must be 'valid', 'same', a non-negative integer or [left, right], got ${JSON.stringify(this.padding)}`,
        );
      }
    } else if (this.padding !== 'valid' && this.padding !== 'same') {
      throw new Error(`Conv1d: padding must be 'valid', 'same', a non-negative integer or [left, right], got '${this.padding}'`);
    }
    const perGroup = inChannels / this.groups;
    const fanIn = perGroup * kernelSize;
    const expected = [kernelSize, perGroup, outChannels];
    const init = options.weightInit ?? fanInUniform(expected, fanIn);
    if (init.rank !== 3 || init.shape.some((d, i) => d !== expected[i])) {
      throw new Error(
        `Conv1d: weightInit must be [${expected}] (k, in/groups, out), got [${init.shape}]; ` +
          "a PyTorch [out, in/groups, k] weight converts with conv1dFromTorch",
      );
    }
    this.weight = this.addParameter('weight', init);
    this.bias = options.bias === false ? null : this.addParameter('bias', fanInUniform([outChannels], fanIn));
  }

  /** The output length for an input of length `length`. */
  outputLength(length: number): number {
    const [left, right] = this.paddingPair(length);
    return Math.floor((length + left + right - this.span()) / this.stride) + 1;
  }

  /** x: [B, T, in] -> [B, T', out]. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.inChannels) {
      throw new Error(
        `Conv1d: expected NWC input [batch, length, ${this.inChannels}], got [${x.shape}]` +
          (x.rank === 3 && x.shape[1] === this.inChannels ? '; the input looks NCW: transpose it to [batch, length, channels]' : ''),
      );
    }
    const [B, T] = x.shape as [number, number, number];
    const [left, right] = this.paddingPair(T);
    if (T + left + right < this.span()) {
      throw new Error(
        `Conv1d: input length ${T} (padding ${left},${right}) is shorter than the kernel's span ${this.span()}; ` +
          "use a longer input, more padding or padding: 'same'",
      );
    }
    const outLength = this.outputLength(T);
    return tf.tidy(() => {
      const taps = () => extractTaps(x as tf.Tensor3D, this.kernelSize, this.stride, this.dilation, left, outLength);
      const C = this.inChannels;
      const G = this.groups;
      const perGroup = C / G;
      const outPerGroup = this.outChannels / G;
      const k = this.kernelSize;
      let y: tf.Tensor;
      if (G === 1 && this.dilation === 1) {
        const y4 = tf.conv2d(
          tf.reshape(x, [B, 1, T, C]) as tf.Tensor4D,
          tf.reshape(this.weight, [1, k, C, this.outChannels]) as tf.Tensor4D,
          [1, this.stride],
          [
            [0, 0],
            [0, 0],
            [left, right],
            [0, 0],
          ],
        );
        y = tf.reshape(y4, [B, outLength, this.outChannels]);
      } else if (G === 1) {
        const cols = tf.concat(taps(), 2);
        y = tf.matMul(tf.reshape(cols, [B * outLength, k * C]), tf.reshape(this.weight, [k * C, this.outChannels]));
      } else if (perGroup === 1 && outPerGroup === 1) {
        // Depthwise: each channel has its own k taps, so the product is elementwise (no matMul to batch).
        const w = tf.reshape(this.weight, [k, C]);
        const terms = taps().map((tap, j) => tf.mul(tap, tf.reshape(tf.slice(w, [j, 0], [1, C]), [C])));
        y = terms.length === 1 ? terms[0]! : tf.addN(terms);
      } else {
        // Group-major columns [G, B*T', k*in/G] against [G, k*in/G, out/G]: one batched matMul.
        const cols = tf.reshape(tf.stack(taps(), 2), [B * outLength, k, G, perGroup]);
        const groupedCols = tf.reshape(tf.transpose(cols, [2, 0, 1, 3]), [G, B * outLength, k * perGroup]);
        const w = tf.reshape(
          tf.transpose(tf.reshape(this.weight, [k, perGroup, G, outPerGroup]), [2, 0, 1, 3]),
          [G, k * perGroup, outPerGroup],
        );
        y = tf.transpose(tf.matMul(groupedCols, w), [1, 0, 2]);
      }
      y = tf.reshape(y, [B, outLength, this.outChannels]);
      if (this.bias) y = tf.add(y, this.bias);
      return y;
    });
  }

  private span(): number {
    return (this.kernelSize - 1) * this.dilation + 1;
  }

  /** Zeros [left, right] for an input of length `length`. */
  private paddingPair(length: number): [number, number] {
    if (this.padding === 'valid') return [0, 0];
    if (this.padding === 'same') {
      const out = Math.ceil(length / this.stride);
      const total = Math.max((out - 1) * this.stride + this.span() - length, 0);
      return [Math.floor(total / 2), total - Math.floor(total / 2)];
    }
    return typeof this.padding === 'number' ? [this.padding, this.padding] : this.padding;
  }
}

/**
 * The k taps of a strided, dilated 1-D convolution, each [B, outLength, C]: tap j reads input positions
 * t*stride + j*dilation - left. The padded input is viewed as [B, L/stride, stride, C], so every tap is a plain
 * slice (its gradient a pad) rather than a strided gather.
 */
export function extractTaps(
  x: tf.Tensor3D,
  kernelSize: number,
  stride: number,
  dilation: number,
  left: number,
  outLength: number,
): tf.Tensor[] {
  const [B, T, C] = x.shape;
  const needed = (outLength - 1) * stride + (kernelSize - 1) * dilation + 1;
  // Zeros on the right up to a whole number of stride steps covering every tap (no tap reads past the
  // caller's right padding: outLength was computed with it).
  const length = Math.ceil(Math.max(needed, T + left) / stride) * stride;
  const extra = length - T - left;
  const padded = left > 0 || extra > 0 ? tf.pad(x, [[0, 0], [left, extra], [0, 0]]) : x;
  if (stride === 1 && kernelSize === 1 && length === outLength) return [padded];
  const grouped = tf.reshape(padded, [B, length / stride, stride, C]);
  const taps: tf.Tensor[] = [];
  for (let j = 0; j < kernelSize; j++) {
    const offset = j * dilation;
    const start = Math.floor(offset / stride);
    const phase = offset % stride;
    taps.push(tf.reshape(tf.slice(grouped, [0, start, phase, 0], [B, outLength, 1, C]), [B, outLength, C]));
  }
  return taps;
}

function positiveInt(value: number, what: string): number {
  if (!(Number.isInteger(value) && value >= 1)) {
    throw new Error(`Conv1d: ${what} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
