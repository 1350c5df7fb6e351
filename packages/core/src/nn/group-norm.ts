/**
 * Group normalisation (Wu & He 2018) over channels-last inputs [B, ...spatial, C], matching PyTorch's
 * `nn.GroupNorm(num_groups, num_channels, eps, affine)` on the channels-first transpose: the C channels are split
 * into G consecutive groups, each normalised over its channels and every spatial position with the biased
 * variance, then scaled and shifted per channel (weight ones, bias zeros at init, as PyTorch).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

export interface GroupNormOptions {
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /** Learn a per-channel scale and shift (default true). */
  affine?: boolean;
}

export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly weight: tf.Variable | null; // [C]
  readonly bias: tf.Variable | null; // [C]

  constructor(numGroups: number, numChannels: number, options: GroupNormOptions = {}) {
    super();
    if (!(Number.isInteger(numGroups) && numGroups >= 1 && Number.isInteger(numChannels) && numChannels >= 1)) {
      throw new Error(
        `GroupNorm: numGroups and numChannels must be positive integers, got ${JSON.stringify(numGroups)} and ${JSON.stringify(numChannels)}`,
      );
    }
    if (numChannels % numGroups !== 0) {
      throw new Error(
        `GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups}); ` +
          'pick a group count that divides the channels (32 for most VAEs)',
      );
    }
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = affine ? this.addParameter('weight', tf.ones([numChannels])) : null;
    this.bias = affine ? this.addParameter('bias', tf.zeros([numChannels])) : null;
  }

  /** x: [B, ...spatial, C] (channels last, any number of spatial dims, none included) -> same shape. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank < 2 || x.shape[x.rank - 1] !== this.numChannels) {
      throw new Error(
        `GroupNorm: expected channels-last input [batch, ...spatial, ${this.numChannels}], got [${x.shape}]` +
          (x.rank >= 3 && x.shape[1] === this.numChannels ? '; the input looks channels-first: move channels last' : ''),
      );
    }
    const B = x.shape[0]!;
    const positions = x.size / (B * this.numChannels);
    const G = this.numGroups;
    return tf.tidy(() => {
      const grouped = tf.reshape(x, [B, positions, G, this.numChannels / G]);
      const { mean, variance } = tf.moments(grouped, [1, 3], true);
      const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, this.eps)));
      let y = tf.reshape(normed, x.shape);
      if (this.weight) y = tf.mul(y, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
      return y;
    });
  }
}
