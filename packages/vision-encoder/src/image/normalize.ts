// Per-channel normalisation presets and the RgbImage -> float32 tensor conversion ((v * rescale - mean) / std).
import * as tf from '@tensorflow/tfjs';
import { ImageInputError } from './errors';
import { assertRgbImage } from './pixels';
import type { RgbColor, RgbImage } from './types';

/** Mean and standard deviation per channel (R, G, B) of values already rescaled to 0..1. */
export interface NormalizeStats {
  /** Per-channel mean (R, G, B). */
  mean: readonly [number, number, number];
  /** Per-channel standard deviation (R, G, B). */
  std: readonly [number, number, number];
}

/** The statistics the released checkpoints were trained with (OpenAI CLIP, Google SigLIP, torchvision ImageNet). */
export const NORMALIZE_PRESETS = {
  /** OpenAI CLIP's statistics. */
  clip: { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] },
  /** Google SigLIP's: mean and std 0.5 (values in -1..1). */
  siglip: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  /** torchvision's ImageNet statistics. */
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
} as const satisfies Record<string, NormalizeStats>;

/** A key of {@link NORMALIZE_PRESETS}. */
export type NormalizePresetName = keyof typeof NORMALIZE_PRESETS;

/** A preset name or explicit statistics. */
export type Normalization = NormalizePresetName | NormalizeStats;

/** Looks up a preset, or validates explicit statistics. */
export function resolveNormalization(normalization: Normalization): NormalizeStats {
  if (typeof normalization === 'string') {
    const stats = (NORMALIZE_PRESETS as Record<string, NormalizeStats>)[normalization];
    if (!stats) {
      throw new ImageInputError(
        'bad-pixels',
        `unknown normalization preset '${normalization}'; use one of ${Object.keys(NORMALIZE_PRESETS).join(', ')} ` +
          'or pass { mean: [r, g, b], std: [r, g, b] }',
      );
    }
    return stats;
  }
  const ok = (v: unknown, positive: boolean) =>
    Array.isArray(v) && v.length === 3 && v.every((x) => Number.isFinite(x) && (!positive || x > 0));
  if (!normalization || !ok(normalization.mean, false) || !ok(normalization.std, true)) {
    throw new ImageInputError(
      'bad-pixels',
      `normalization must be a preset name or { mean: [r, g, b], std: [r, g, b] } with finite means and ` +
        `positive stds, got ${JSON.stringify(normalization)}`,
    );
  }
  return normalization;
}

/**
 * The mean as an 8-bit colour, each channel truncated (`int(m * 255)`), which is the fill LLaVA pads with.
 */
export function meanColor(normalization: Normalization): RgbColor {
  const { mean } = resolveNormalization(normalization);
  return mean.map((m) => Math.min(255, Math.max(0, Math.trunc(m * 255)))) as unknown as RgbColor;
}

/** Writes `(v * rescale - mean) / std` for every byte of `image` into `out` at `offset`. */
function writeNormalized(image: RgbImage, stats: NormalizeStats, rescale: number, out: Float32Array, offset: number): void {
  const { data } = image;
  // One lookup table per channel: the same byte always maps to the same float.
  const tables = [0, 1, 2].map((c) => {
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = (v * rescale - stats.mean[c]) / stats.std[c];
    return table;
  });
  const [t0, t1, t2] = tables;
  for (let i = 0; i < data.length; i += 3) {
    out[offset + i] = t0[data[i]];
    out[offset + i + 1] = t1[data[i + 1]];
    out[offset + i + 2] = t2[data[i + 2]];
  }
}

function checkRescale(rescale: number): void {
  if (!Number.isFinite(rescale) || rescale <= 0) {
    throw new ImageInputError('bad-pixels', `rescale must be a positive finite number (1/255 maps bytes to 0..1), got ${rescale}`);
  }
}

/** A float32 [H, W, 3] tensor of `(byte * rescale - mean) / std`; `rescale` defaults to 1/255. */
export function imageToTensor(image: RgbImage, normalization: Normalization, rescale = 1 / 255): tf.Tensor3D {
  assertRgbImage(image, 'imageToTensor');
  const stats = resolveNormalization(normalization);
  checkRescale(rescale);
  const values = new Float32Array(image.data.length);
  writeNormalized(image, stats, rescale, values, 0);
  return tf.tensor3d(values, [image.height, image.width, 3], 'float32');
}

/** A float32 [B, H, W, 3] batch; every image must have the same size. */
export function imagesToTensor(images: readonly RgbImage[], normalization: Normalization, rescale = 1 / 255): tf.Tensor4D {
  if (!Array.isArray(images) || images.length === 0) {
    throw new ImageInputError('bad-pixels', 'imagesToTensor: expected a non-empty array of images');
  }
  const stats = resolveNormalization(normalization);
  checkRescale(rescale);
  images.forEach((image, i) => assertRgbImage(image, `imagesToTensor image ${i}`));
  const { width, height } = images[0];
  images.forEach((image, i) => {
    if (image.width !== width || image.height !== height) {
      throw new ImageInputError(
        'bad-pixels',
        `imagesToTensor: image ${i} is ${image.width}x${image.height} but image 0 is ${width}x${height}; ` +
          'a batch needs one size: resize or crop first (ImageProcessor does)',
      );
    }
  });
  const stride = width * height * 3;
  const values = new Float32Array(stride * images.length);
  images.forEach((image, i) => writeNormalized(image, stats, rescale, values, i * stride));
  return tf.tensor4d(values, [images.length, height, width, 3], 'float32');
}
