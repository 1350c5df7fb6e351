/** Parameter initialisers; all draw seeds from the global generator so `manualSeed` fixes them. */
import * as tf from '@tensorflow/tfjs';
import { nextSeed } from '../runtime/random';

/** A tensor of `shape` drawn from N(mean, std^2), seeded from the global generator. */
export function normal(shape: number[], std = 0.02, mean = 0): tf.Tensor {
  return tf.randomNormal(shape, mean, std, 'float32', nextSeed());
}

/** A tensor of `shape` drawn from U(-bound, bound), seeded from the global generator. */
export function uniform(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextSeed());
}

/** PyTorch's default for Linear/Conv: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function fanInUniform(shape: number[], fanIn: number): tf.Tensor {
  return uniform(shape, 1 / Math.sqrt(fanIn));
}
