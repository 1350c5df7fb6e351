/**
 * ViT patch embedding (Dosovitskiy et al. 2021): a Conv2d whose kernel and stride are the patch size, i.e. one
 * linear map per non-overlapping patch. It is computed as patchify + plain matMul, which is the same arithmetic
 * as the conv but avoids tfjs's conv gradient (Conv2DBackpropFilter runs through the slow cpu fill-in on wasm).
 * The weight keeps the conv layout [p, p, in, out] (NHWC filters), so HF's [out, in, p, p] maps by the
 * 'conv2d' layout of a remap table.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, init } from '@chimera/core';

/** The grid of patches an image is cut into. */
export interface PatchGrid {
  /** Patch rows. */
  rows: number;
  /** Patch columns. */
  cols: number;
}

/**
 * [B, H, W, C] -> [B, rows * cols, p * p * C]: patches in row-major order, each flattened as (row in patch,
 * column in patch, channel), the order of a [p, p, C, D] filter reshaped to [p*p*C, D]. H and W must be
 * multiples of p (checked by the caller).
 */
export function patchify(pixels: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [batch, height, width, channels] = pixels.shape;
    const rows = height / patchSize;
    const cols = width / patchSize;
    // Rank-4 transposes only (ENGINE.md): [B*rows, p, cols, p*C] -> [B*rows, cols, p, p*C].
    const strips = tf.reshape(pixels, [batch * rows, patchSize, cols, patchSize * channels]);
    const patches = tf.transpose(strips, [0, 2, 1, 3]);
    return tf.reshape(patches, [batch, rows * cols, patchSize * patchSize * channels]) as tf.Tensor3D;
  });
}

/**
 * The patch projection of a ViT: non-overlapping p x p patches -> D-wide tokens, computed as patchify + matMul.
 * Weight `[p, p, in, out]` (conv layout, so HF's conv weight maps by transpose), optional bias `[out]`.
 */
export class PatchEmbedding extends Module {
  /** Patch side p in pixels. */
  readonly patchSize: number;
  /** Input channels. */
  readonly inChannels: number;
  /** Output width D. */
  readonly outChannels: number;
  /** Projection [p, p, in, out]. */
  readonly weight: tf.Variable; // [p, p, in, out]
  /** Bias [out], or null without one. */
  readonly bias: tf.Variable | null; // [out]

  constructor(inChannels: number, outChannels: number, patchSize: number, options: { bias?: boolean } = {}) {
    super();
    this.patchSize = patchSize;
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    const fanIn = patchSize * patchSize * inChannels;
    this.weight = this.addParameter('weight', init.fanInUniform([patchSize, patchSize, inChannels, outChannels], fanIn));
    this.bias = options.bias ? this.addParameter('bias', init.fanInUniform([outChannels], fanIn)) : null;
  }

  /** pixels [B, H, W, C] (H, W multiples of the patch) -> tokens [B, rows * cols, out], row-major. */
  forward(pixels: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const [batch, height, width] = pixels.shape;
      const tokens = height * width / (this.patchSize * this.patchSize);
      const flat = tf.reshape(patchify(pixels, this.patchSize), [batch * tokens, -1]) as tf.Tensor2D;
      const kernel = tf.reshape(this.weight, [-1, this.outChannels]) as tf.Tensor2D; // [p*p*in, out]
      let y: tf.Tensor = tf.matMul(flat, kernel);
      if (this.bias) y = tf.add(y, this.bias);
      return tf.reshape(y, [batch, tokens, this.outChannels]) as tf.Tensor3D;
    });
  }
}
