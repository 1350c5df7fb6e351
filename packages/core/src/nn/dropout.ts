/**
 * Dropout (Srivastava et al. 2014), inverted: in train mode each element is zeroed with probability p and the
 * survivors scaled by 1/(1-p), so eval mode is the identity. Masks draw their seed from the global generator,
 * so `manualSeed` makes them repeatable.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { nextSeed } from '../runtime/random';

/**
 * Inverted dropout: in train mode zeroes each element with probability `p` and scales the rest by 1/(1-p); the
 * identity in eval mode. Masks are seeded from the global generator.
 */
export class Dropout extends Module {
  /** Drop probability. */
  readonly p: number;

  constructor(p = 0.1) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
    this.p = p;
  }

  /** Returns `x` itself (not a copy) in eval mode or when p = 0, as PyTorch does. */
  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x;
    return tf.tidy(() => tf.dropout(x, this.p, undefined, nextSeed()));
  }
}
