/**
 * Group normalisation (Wu & He 2018) over channels-last inputs [B, ...spatial, C], matching PyTorch's
 * `nn.GroupNorm(num_groups, num_channels, eps, affine)` on the channels-first transpose: the C channels are split
 * into G consecutive groups, each normalised over its channels and every spatial position with the biased
 * variance, then scaled and shifted per channel (weight ones, bias zeros at init, as PyTorch).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** Construction options of {@link GroupNorm}. */
export interface GroupNormOptions {
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /** Learn a per-channel scale and shift (default true). */
  affine?: boolean;
}

/**
 * Group normalisation over channels-last inputs [B, ...spatial, C], matching PyTorch's `nn.GroupNorm` (weight `[C]`
 * ones and bias `[C]` zeros at init).
 */
export class GroupNorm extends Module {
  /** Groups G the channels are split into (C divisible by G). */
  readonly numGroups: number;
  /** Channels C. */
  readonly numChannels: number;
  /** Added to the variance. */
  readonly eps: number;
  /** Per-channel scale [C], or null when not affine. */
  readonly weight: tf.Variable | null; // [C]
  /** Per-channel shift [C], or null when not affine. */
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
    return tf.tidy(() => {
      const B = x.shape[0]!;
      const x3 = tf.reshape(x, [B, x.size / (B * this.numChannels), this.numChannels]);
      const affine = this.weight && this.bias ? [this.weight, this.bias] : [];
      const y = groupNorm(this.numGroups, this.eps)(x3, ...affine);
      return tf.reshape(y, x.shape);
    });
  }
}

/**
 * Group norm of [B, S, C] with an explicit gradient (per group of N values, x^ the normalised input, g = dy * gamma):
 * dx = rstd * (g - mean(g) - x^ * mean(g * x^)), dgamma = sum(dy * x^), dbeta = sum(dy). Group statistics are
 * reduced over a [B, S, G, C/G] view and broadcast back per channel ([B, 1, C]): on wasm the broadcast of a
 * [B, 1, G, 1] tensor over [B, S, G, C/G], which tf.moments and its autodiff gradient run, is ~4x slower.
 */
function groupNorm(groups: number, eps: number) {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [x, weight, bias] = args.slice(0, -1) as tf.Tensor[];
    const [B, S, C] = x!.shape as [number, number, number];
    const perGroup = C / groups;
    const groupMean = (t: tf.Tensor) => tf.mean(tf.reshape(t, [B, S, groups, perGroup]), [1, 3]);
    // [B, G] -> [B, 1, C]: each group's value repeated over its channels.
    const perChannel = (t: tf.Tensor) => tf.reshape(tf.mul(tf.reshape(t, [B, groups, 1]), tf.ones([1, 1, perGroup])), [B, 1, C]);
    const centered = tf.sub(x!, perChannel(groupMean(x!)));
    const rstd = perChannel(tf.rsqrt(tf.add(groupMean(tf.square(centered)), eps)));
    const normed = tf.mul(centered, rstd);
    save([normed, rstd, ...(weight ? [weight] : [])]);
    const value = weight ? tf.add(tf.mul(normed, weight), bias!) : normed;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xhat, r, w] = saved as [tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        const g = w ? tf.mul(dy, w) : dy;
        const dx = tf.mul(tf.sub(tf.sub(g, perChannel(groupMean(g))), tf.mul(xhat, perChannel(groupMean(tf.mul(g, xhat))))), r);
        if (!w) return [dx];
        const flat = (t: tf.Tensor) => tf.reshape(t, [B * S, C]);
        return [dx, tf.sum(flat(tf.mul(dy, xhat)), 0), tf.sum(flat(dy), 0)];
      },
    };
  });
}
