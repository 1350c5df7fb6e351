/**
 * Separable convolution resampling with PIL's semantics (Pillow `ImagingResample`): bilinear (triangle) and
 * bicubic (Keys' cubic, a = -0.5) kernels, stretched by the scale factor when shrinking so downscaling
 * antialiases, and weights renormalised at the borders. HF CLIP/SigLIP processors resize with PIL bicubic;
 * matching it keeps Chimera's inputs equal to theirs. (R. Keys, "Cubic convolution interpolation for digital
 * image processing", IEEE TASSP 1981.)
 *
 * Determinism: weights are computed in float64, then quantised to 22-bit fixed point as PIL does; pixel sums
 * are exact integers (well inside 2^53), rounded half up (`floor((sum + 2^21) / 2^22)`) and clamped to 0..255.
 * The horizontal pass runs first and is stored as 8-bit, then the vertical pass, again as in PIL. An axis whose
 * size does not change is not resampled, so a same-size resize is an exact copy.
 */
import { ImageInputError } from './errors';
import { assertRgbImage, checkSize } from './pixels';
import type { RgbImage } from './types';

/** Resampling filter, with PIL's arithmetic. */
export type ResizeFilter = 'bilinear' | 'bicubic';

interface Kernel {
  support: number;
  weight(x: number): number;
}

const KERNELS: Record<ResizeFilter, Kernel> = {
  bilinear: {
    support: 1,
    weight: (x) => {
      const t = Math.abs(x);
      return t < 1 ? 1 - t : 0;
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** For each output index: the first input index, how many inputs it reads, and their fixed-point weights. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  /** [outSize, maxTaps], zero-padded. */
  weights: Float64Array;
  maxTaps: number;
}

function computeTaps(inSize: number, outSize: number, kernel: Kernel): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1); // widen the kernel when shrinking: the antialiasing
  const support = kernel.support * filterScale;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * maxTaps);
  const invScale = 1 / filterScale;
  const raw = new Float64Array(maxTaps);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale; // pixel centres align (align_corners = false)
    const first = Math.max(0, Math.trunc(center - support + 0.5));
    const last = Math.min(inSize, Math.trunc(center + support + 0.5));
    const n = last - first;
    let total = 0;
    for (let k = 0; k < n; k++) {
      raw[k] = kernel.weight((k + first - center + 0.5) * invScale);
      total += raw[k];
    }
    for (let k = 0; k < n; k++) {
      const w = total !== 0 ? raw[k] / total : raw[k];
      weights[i * maxTaps + k] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    start[i] = first;
    count[i] = n;
  }
  return { start, count, weights, maxTaps };
}

function toByte(sum: number): number {
  const v = Math.floor((sum + HALF) / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function resampleRows(src: Uint8Array, width: number, height: number, outWidth: number, taps: Taps): Uint8Array {
  const out = new Uint8Array(outWidth * height * 3);
  const { start, count, weights, maxTaps } = taps;
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    const outRow = y * outWidth * 3;
    for (let x = 0; x < outWidth; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const base = row + start[x] * 3;
      const wBase = x * maxTaps;
      for (let k = 0; k < count[x]; k++) {
        const w = weights[wBase + k];
        const p = base + k * 3;
        r += src[p] * w;
        g += src[p + 1] * w;
        b += src[p + 2] * w;
      }
      out[outRow + x * 3] = toByte(r);
      out[outRow + x * 3 + 1] = toByte(g);
      out[outRow + x * 3 + 2] = toByte(b);
    }
  }
  return out;
}

function resampleColumns(src: Uint8Array, width: number, outHeight: number, taps: Taps): Uint8Array {
  const rowLength = width * 3;
  const out = new Uint8Array(rowLength * outHeight);
  const acc = new Float64Array(rowLength);
  const { start, count, weights, maxTaps } = taps;
  for (let y = 0; y < outHeight; y++) {
    acc.fill(0);
    for (let k = 0; k < count[y]; k++) {
      const w = weights[y * maxTaps + k];
      const row = (start[y] + k) * rowLength;
      for (let i = 0; i < rowLength; i++) acc[i] += src[row + i] * w;
    }
    const outRow = y * rowLength;
    for (let i = 0; i < rowLength; i++) out[outRow + i] = toByte(acc[i]);
  }
  return out;
}

/** Resizes to exactly `width` x `height` (PIL-compatible; see the file comment). Returns a new image. */
export function resizeImage(image: RgbImage, width: number, height: number, filter: ResizeFilter = 'bicubic'): RgbImage {
  assertRgbImage(image, 'resizeImage');
  checkSize(width, height, `resizeImage target ${width}x${height}`);
  const kernel = KERNELS[filter];
  if (!kernel) {
    throw new ImageInputError('bad-pixels', `resizeImage: filter must be 'bilinear' or 'bicubic', got '${String(filter)}'`);
  }
  if (width * height * 3 > 2 ** 31 - 1) {
    throw new ImageInputError('too-large', `resizeImage: target ${width}x${height} needs more than 2 GB; choose a smaller size`);
  }
  let data = image.data;
  if (width !== image.width) data = resampleRows(data, image.width, image.height, width, computeTaps(image.width, width, kernel));
  if (height !== image.height) data = resampleColumns(data, width, height, computeTaps(image.height, height, kernel));
  return { data: data === image.data ? data.slice() : data, width, height };
}
