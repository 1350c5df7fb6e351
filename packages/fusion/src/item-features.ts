/**
 * Per-item feature lists. Modalities return features as one [N_i, D] tensor per item or one [items, N, D] tensor;
 * strategies work per item. Unstacking goes through `itemList` because tfjs's Unpack gradient breaks when there is
 * a single output (it hands the gradient function one tensor instead of a list), so one item is a reshape instead.
 */
import * as tf from '@tensorflow/tfjs';
import type { ItemFeatures } from '@chimera/core';

/** [items, N, D] (or a list) -> one [N, D] tensor per item; gradients flow back to the input. */
export function itemList(features: ItemFeatures): tf.Tensor[] {
  if (Array.isArray(features)) return features;
  if (features.shape[0] === 1) return [tf.reshape(features, features.shape.slice(1))];
  return tf.unstack(features);
}
