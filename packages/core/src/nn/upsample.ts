/**
 * Nearest and bilinear resizing of NHWC images with PyTorch's `nn.Upsample` / `F.interpolate` arithmetic
 * (torch 1.13 to 2.x, `recompute_scale_factor` unset): output size floor(in * scaleFactor); 'nearest' reads
 * source min(floor(dst * s), in - 1) with s = float32(1 / scaleFactor) (or in / out when a size is given), and
 * exact copies at 1x and 2x; 'bilinear' samples at max(s * (dst + 0.5) - 0.5, 0) (alignCorners false) or
 * dst * (in - 1) / (out - 1) (alignCorners true) and blends the two neighbours, the upper clamped to the edge.
 * The indices and weights are computed here in float32 as PyTorch does, so nearest picks the same pixels.
 *
 * Each axis is a gather (gradient: one segment sum) plus, for bilinear, a weighted sum of two gathers. Whole-number
 * nearest upsampling, the common case in decoders, is a broadcast instead (gradient: a sum).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

export type UpsampleMode = 'nearest' | 'bilinear';

export interface UpsampleOptions {
  /** Multiplier per spatial axis (a number or [h, w]); give this or `size`. */
  scaleFactor?: number | [number, number];
  /** Output [height, width] (a number for both); give this or `scaleFactor`. */
  size?: number | [number, number];
  /** Default 'nearest', as PyTorch. */
  mode?: UpsampleMode;
  /** Bilinear only: align the corner pixels' centres (default false, PyTorch's default). */
  alignCorners?: boolean;
}

export class Upsample extends Module {
  readonly options: Readonly<UpsampleOptions>;

  constructor(options: UpsampleOptions) {
    super();
    checkOptions(options);
    this.options = { ...options };
  }

  /** x: [B, H, W, C] -> [B, H', W', C]. */
  forward(x: tf.Tensor): tf.Tensor {
    return interpolate(x, this.options);
  }
}

/** `F.interpolate` for NHWC images with 'nearest' or 'bilinear' (see the file comment). */
export function interpolate(x: tf.Tensor, options: UpsampleOptions): tf.Tensor {
  checkOptions(options);
  if (x.rank !== 4) {
    throw new Error(`interpolate: expected an NHWC image batch [batch, height, width, channels], got [${x.shape}]`);
  }
  const mode = options.mode ?? 'nearest';
  const [, H, W] = x.shape as [number, number, number, number];
  const scales = options.scaleFactor === undefined ? null : pairOf(options.scaleFactor);
  const sizes = options.size === undefined ? null : pairOf(options.size);
  const outH = sizes ? sizes[0] : Math.floor(H * scales![0]);
  const outW = sizes ? sizes[1] : Math.floor(W * scales![1]);
  if (outH < 1 || outW < 1) {
    throw new Error(
      `interpolate: input ${H}x${W} with scaleFactor ${JSON.stringify(options.scaleFactor)} gives an empty output ` +
        `(${outH}x${outW}); use a larger scale factor or give a size`,
    );
  }
  return tf.tidy(() => {
    if (mode === 'nearest') {
      const rows = nearestIndices(H, outH, scales?.[0]);
      const cols = nearestIndices(W, outW, scales?.[1]);
      const repeatH = repeatFactor(rows, H, outH);
      const repeatW = repeatFactor(cols, W, outW);
      if (repeatH !== null && repeatW !== null) return repeatPixels(x, repeatH, repeatW);
      let y = repeatH === 1 ? x : tf.gather(x, tf.tensor1d(rows, 'int32'), 1);
      if (repeatW !== 1) y = tf.gather(y, tf.tensor1d(cols, 'int32'), 2);
      return y;
    }
    const alignCorners = options.alignCorners ?? false;
    const y = linearAxis(x, 1, linearWeights(H, outH, alignCorners, scales?.[0]));
    return linearAxis(y, 2, linearWeights(W, outW, alignCorners, scales?.[1]));
  });
}

/** PyTorch's `nearest_idx`: source index of every output index along one axis. */
export function nearestIndices(inSize: number, outSize: number, scaleFactor?: number): number[] {
  const out = new Array<number>(outSize);
  if (outSize === inSize) {
    for (let i = 0; i < outSize; i++) out[i] = i;
  } else if (outSize === 2 * inSize) {
    for (let i = 0; i < outSize; i++) out[i] = i >> 1;
  } else {
    const scale = floatScale(inSize, outSize, scaleFactor);
    for (let i = 0; i < outSize; i++) out[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  }
  return out;
}

interface LinearWeights {
  lower: number[];
  upper: number[];
  /** Weight of the upper neighbour (the lower one gets 1 - it). */
  frac: number[];
}

/** PyTorch's linear source indices and weights (area_pixel_compute_source_index), in float32. */
export function linearWeights(inSize: number, outSize: number, alignCorners: boolean, scaleFactor?: number): LinearWeights {
  let scale: number;
  if (alignCorners) scale = outSize > 1 ? Math.fround((inSize - 1) / (outSize - 1)) : 0;
  else scale = floatScale(inSize, outSize, scaleFactor);
  const lower: number[] = [];
  const upper: number[] = [];
  const frac: number[] = [];
  for (let i = 0; i < outSize; i++) {
    let src = alignCorners ? Math.fround(scale * i) : Math.fround(Math.fround(scale * (i + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    lower.push(i0);
    upper.push(i0 < inSize - 1 ? i0 + 1 : i0);
    frac.push(Math.min(Math.max(Math.fround(src - i0), 0), 1));
  }
  return { lower, upper, frac };
}

/** float32(1 / scaleFactor) when a factor is given, else float32(in / out), as PyTorch's compute_scales_value. */
function floatScale(inSize: number, outSize: number, scaleFactor?: number): number {
  return scaleFactor !== undefined && scaleFactor > 0 ? Math.fround(1 / scaleFactor) : Math.fround(inSize / outSize);
}

/** r when indices are exactly floor(i / r) with out = in * r, else null. */
function repeatFactor(indices: number[], inSize: number, outSize: number): number | null {
  if (outSize % inSize !== 0) return null;
  const r = outSize / inSize;
  return indices.every((v, i) => v === Math.floor(i / r)) ? r : null;
}

/** Whole-number nearest upsampling as a broadcast multiply by ones (exact; its gradient is a sum). */
function repeatPixels(x: tf.Tensor, rh: number, rw: number): tf.Tensor {
  if (rh === 1 && rw === 1) return tf.clone(x);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const spread = tf.mul(tf.reshape(x, [B * H, 1, W, 1, C]), tf.ones([1, rh, 1, rw, 1]));
  return tf.reshape(spread, [B, H * rh, W * rw, C]);
}

function linearAxis(x: tf.Tensor, axis: 1 | 2, { lower, upper, frac }: LinearWeights): tf.Tensor {
  const n = lower.length;
  const shape = axis === 1 ? [1, n, 1, 1] : [1, 1, n, 1];
  const a = tf.gather(x, tf.tensor1d(lower, 'int32'), axis);
  const b = tf.gather(x, tf.tensor1d(upper, 'int32'), axis);
  const w1 = tf.tensor(frac, shape);
  const w0 = tf.tensor(frac.map((f) => Math.fround(1 - f)), shape);
  return tf.add(tf.mul(a, w0), tf.mul(b, w1));
}

function pairOf(value: number | [number, number]): [number, number] {
  return typeof value === 'number' ? [value, value] : value;
}

function checkOptions(options: UpsampleOptions): void {
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'bilinear') {
    throw new Error(`Upsample: mode must be 'nearest' or 'bilinear', got ${JSON.stringify(mode)}`);
  }
  if ((options.scaleFactor === undefined) === (options.size === undefined)) {
    throw new Error('Upsample: give exactly one of scaleFactor and size (as PyTorch)');
  }
  if (options.alignCorners !== undefined && mode !== 'bilinear') {
    throw new Error(`Upsample: alignCorners only applies to mode 'bilinear' (PyTorch refuses it for '${mode}'); leave it unset`);
  }
  if (options.scaleFactor !== undefined) {
    const [a, b] = pairOf(options.scaleFactor);
    if (!(Number.isFinite(a) && Number.isFinite(b) && a > 0 && b > 0)) {
      throw new Error(`Upsample: scaleFactor must be positive numbers (a number or [h, w]), got ${JSON.stringify(options.scaleFactor)}`);
    }
  }
  if (options.size !== undefined) {
    const [a, b] = pairOf(options.size);
    if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 1 && b >= 1)) {
      throw new Error(`Upsample: size must be positive integers (a number or [h, w]), got ${JSON.stringify(options.size)}`);
    }
  }
}
