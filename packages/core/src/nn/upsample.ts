/**
 * Nearest and bilinear resizing of NHWC images with PyTorch's `nn.Upsample` / `F.interpolate` arithmetic
 * (torch 1.13 to 2.x, `recompute_scale_factor` unset): output size floor(in * scaleFactor); 'nearest' reads
 * source min(floor(dst * s), in - 1) with s = float32(1 / scaleFactor) (or in / out when a size is given), and
 * exact copies at 1x and 2x; 'bilinear' samples at max(s * (dst + 0.5) - 0.5, 0) (alignCorners false) or
 * dst * (in - 1) / (out - 1) (alignCorners true) and blends the two neighbours, the upper clamped to the edge
 * (ATen's UpSample.h: nearest_idx, area_pixel_compute_source_index). Indices and weights are computed here in
 * float32 as PyTorch does, so nearest picks the same pixels.
 *
 * How (measured on wasm, VQ-VAE decoder shapes): whole-number nearest upsampling is a broadcast (its gradient an
 * average pool times the area, on XNNPACK); bilinear runs tfjs's resizeBilinear forward wherever its source
 * coordinates are PyTorch's (sizes, whole-number factors, alignCorners), with the gradient as the adjoint
 * resampling matrices, because tfjs's ResizeBilinearGrad ignores halfPixelCenters. Everything else resamples
 * each axis with a [out, in] matrix on matMul (gathers on wasm were 10-15x slower).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** Interpolation: 'nearest' or 'bilinear'. */
export type UpsampleMode = 'nearest' | 'bilinear';

/** Options of {@link Upsample} and {@link interpolate}; give `scaleFactor` or `size`. */
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

/**
 * Resizes NHWC images [B, H, W, C] -> [B, H', W', C] with PyTorch's `nn.Upsample` arithmetic ('nearest' or
 * 'bilinear'). No parameters.
 */
export class Upsample extends Module {
  /** The options it was built with. */
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
      return resample(x, repeatH === 1 ? null : oneHotMatrix(rows, H), repeatW === 1 ? null : oneHotMatrix(cols, W));
    }
    const alignCorners = options.alignCorners ?? false;
    const rowWeights = linearWeights(H, outH, alignCorners, scales?.[0]);
    const colWeights = linearWeights(W, outW, alignCorners, scales?.[1]);
    // tfjs samples at in/out; PyTorch at 1/scaleFactor when given: the same where in * scaleFactor is whole.
    const tfjsAgrees = alignCorners || !scales || (Number.isInteger(H * scales[0]) && Number.isInteger(W * scales[1]));
    if (!tfjsAgrees) return resample(x, linearMatrix(rowWeights, H), linearMatrix(colWeights, W));
    const resize = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: tf.image.resizeBilinear(args[0] as tf.Tensor4D, [outH, outW], alignCorners, !alignCorners) as tf.Tensor,
      // The adjoint of the resampling; matrices made here, since the gradient runs after this tidy ends.
      gradFunc: (dy: tf.Tensor) =>
        resample(dy, linearMatrix(rowWeights, H, true), linearMatrix(colWeights, W, true)),
    }));
    return resize(x);
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

/**
 * Whole-number nearest upsampling as a broadcast multiply by ones (exact). Its gradient sums each r x r block:
 * an average pool times the area (exact for powers of two), far cheaper on wasm than summing broadcast axes.
 */
function repeatPixels(x: tf.Tensor, rh: number, rw: number): tf.Tensor {
  if (rh === 1 && rw === 1) return tf.clone(x);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const repeat = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.reshape(tf.mul(tf.reshape(args[0] as tf.Tensor, [B * H, 1, W, 1, C]), tf.ones([1, rh, 1, rw, 1])), [B, H * rh, W * rw, C]),
    gradFunc: (dy: tf.Tensor) => tf.mul(tf.avgPool(dy as tf.Tensor4D, [rh, rw], [rh, rw], 'valid'), rh * rw),
  }));
  return repeat(x);
}

/** [out, in] matrix picking one source per output (nearest). */
function oneHotMatrix(indices: number[], inSize: number): tf.Tensor2D {
  const m = new Float32Array(indices.length * inSize);
  indices.forEach((src, o) => (m[o * inSize + src] = 1));
  return tf.tensor2d(m, [indices.length, inSize]);
}

/** [out, in] matrix of the two-neighbour blend (bilinear), or its transpose [in, out]. */
function linearMatrix({ lower, upper, frac }: LinearWeights, inSize: number, transposed = false): tf.Tensor2D {
  const outSize = lower.length;
  const m = new Float32Array(outSize * inSize);
  const at = (o: number, i: number) => (transposed ? i * outSize + o : o * inSize + i);
  lower.forEach((i0, o) => {
    m[at(o, i0)] += Math.fround(1 - frac[o]!);
    m[at(o, upper[o]!)] += frac[o]!;
  });
  return tf.tensor2d(m, transposed ? [inSize, outSize] : [outSize, inSize]);
}

/**
 * Applies [out, in] matrices along H and W (null: leave the axis). Each is one matMul against the image viewed
 * as [B, in, rest] (the matrix broadcast over the batch); W is moved into H's place and back by transposes.
 */
function resample(x: tf.Tensor, rows: tf.Tensor | null, cols: tf.Tensor | null): tf.Tensor {
  let y = x;
  if (cols) y = tf.transpose(alongRows(tf.transpose(y, [0, 2, 1, 3]), cols), [0, 2, 1, 3]);
  if (rows) y = alongRows(y, rows);
  return y === x ? tf.clone(x) : y;
}

function alongRows(x: tf.Tensor, matrix: tf.Tensor): tf.Tensor {
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const [out] = matrix.shape as [number, number];
  const y = tf.matMul(tf.reshape(matrix, [1, out, H]), tf.reshape(x, [B, H, W * C]));
  return tf.reshape(y, [B, out, W, C]);
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
