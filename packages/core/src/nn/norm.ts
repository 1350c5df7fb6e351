/** Normalisation layers over the last dimension: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019). */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** Construction options of {@link LayerNorm} and {@link RMSNorm}. */
export interface NormOptions {
  /** Added to the variance / mean square (default 1e-5 for LayerNorm, 1e-6 for RMSNorm). */
  eps?: number;
  /** Learn a scale (and, for LayerNorm, a shift). Default true. */
  affine?: boolean;
}

/**
 * Layer normalisation over the last dimension: (x - mean) / sqrt(var + eps) * weight + bias, weight `[dim]` ones and
 * bias `[dim]` zeros at init (`bias: false` drops the shift).
 */
export class LayerNorm extends Module {
  /** Width of the normalised last dimension. */
  readonly dim: number;
  /** Added to the variance. */
  readonly eps: number;
  /** Scale [dim], or null when not affine. */
  readonly weight: tf.Variable | null;
  /** Shift [dim], or null when not affine or without bias. */
  readonly bias: tf.Variable | null;

  constructor(dim: number, options: NormOptions & { bias?: boolean } = {}) {
    super();
    this.dim = dim;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = affine ? this.addParameter('weight', tf.ones([dim])) : null;
    this.bias = affine && options.bias !== false ? this.addParameter('bias', tf.zeros([dim])) : null;
  }

  /** x [..., dim] -> same shape. Throws when the last dimension is not `dim`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      checkLastDim('LayerNorm', x, this.dim);
      const { mean, variance } = tf.moments(x, -1, true);
      let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      if (this.weight) y = tf.mul(y, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
      return y;
    });
  }
}

/**
 * RMS normalisation over the last dimension (Llama): x / sqrt(mean(x^2) + eps) * weight, weight `[dim]` ones at init.
 */
export class RMSNorm extends Module {
  /** Width of the normalised last dimension. */
  readonly dim: number;
  /** Added to the mean square. */
  readonly eps: number;
  /** Scale [dim], or null when not affine. */
  readonly weight: tf.Variable | null;

  constructor(dim: number, options: NormOptions = {}) {
    super();
    this.dim = dim;
    this.eps = options.eps ?? 1e-6;
    this.weight = (options.affine ?? true) ? this.addParameter('weight', tf.ones([dim])) : null;
  }

  /** x [..., dim] -> same shape. Throws when the last dimension is not `dim`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      checkLastDim('RMSNorm', x, this.dim);
      const meanSquare = tf.mean(tf.square(x), -1, true);
      const y = tf.mul(x, tf.rsqrt(tf.add(meanSquare, this.eps)));
      return this.weight ? tf.mul(y, this.weight) : y;
    });
  }
}

function checkLastDim(layer: string, x: tf.Tensor, dim: number): void {
  if (x.shape[x.rank - 1] !== dim) {
    throw new Error(`${layer}: expected last dimension ${dim}, got input of shape [${x.shape}]`);
  }
}
